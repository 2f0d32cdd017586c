import { notFound } from '../core/errors.js';
import type { Db } from '../state/db.js';
import { visible, type Principal } from './principal.js';

/** Images are read-only here; the compute issue registers `tiny-linux` and `kumo image import`. */
export class Images {
  constructor(private readonly db: Db) {}

  async list(p: Principal) {
    let q = this.db.k.selectFrom('images').selectAll().orderBy('name');
    if (!p.admin) q = q.where((eb) => eb.or([eb('tenant_id', '=', p.tenantId), eb('tenant_id', 'is', null)]));
    return (await q.execute()).map((i) => ({ imageId: i.id, name: i.name, os: i.os, sizeGiB: i.size_gib, kind: i.kind }));
  }

  async info(p: Principal, imageId: string) {
    const i = await this.db.k.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!i || !visible(p, i.tenant_id)) throw notFound('image', imageId);
    return { imageId: i.id, name: i.name, os: i.os, sizeGiB: i.size_gib, kind: i.kind, createdAt: i.created_at, source: i.source };
  }
}
