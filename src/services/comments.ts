import { invalidParams, notFound } from '../core/errors.js';
import { kindOf } from '../core/ids.js';
import type { Db } from '../state/db.js';
import { visible, type Principal } from './principal.js';

const MAX_COMMENT = 4096;

/** Which table holds each commentable kind and who owns its rows (null: shared by everyone, admin writes). */
const OWNERS = {
  vm: 'vms', net: 'networks', vol: 'volumes', img: 'images', req: 'requests',
} as const;

export class Comments {
  constructor(private readonly db: Db) {}

  private async check(p: Principal, resourceId: string, write: boolean): Promise<void> {
    const table = OWNERS[kindOf(resourceId) as keyof typeof OWNERS];
    const row = table && await this.db.k.selectFrom(table).select('tenant_id').where('id', '=', resourceId).executeTakeFirst();
    if (!row || !visible(p, row.tenant_id) || (write && row.tenant_id === null && !p.admin)) throw notFound('resource', resourceId);
  }

  async get(p: Principal, resourceId: string): Promise<string> {
    await this.check(p, resourceId, false);
    const c = await this.db.k.selectFrom('comments').select('comment').where('resource_id', '=', resourceId).executeTakeFirst();
    return c?.comment ?? '';
  }

  async set(p: Principal, resourceId: string, comment: string): Promise<true> {
    if (comment.length > MAX_COMMENT) throw invalidParams(`a comment is at most ${MAX_COMMENT} characters (got ${comment.length})`);
    await this.check(p, resourceId, true);
    await this.db.k.insertInto('comments').values({ resource_id: resourceId, comment })
      .onConflict((oc) => oc.column('resource_id').doUpdateSet({ comment })).execute();
    return true;
  }
}
