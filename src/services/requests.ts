import { Fault, KumoError, invalidParams, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db, Q } from '../state/db.js';
import { Precompiled, now } from '../state/db.js';
import type { Request as RequestRow } from '../state/schema.js';
import type { Events } from './events.js';
import { visible, type Principal } from './principal.js';
import { checkRange } from './validate.js';

export const ACTIVE = ['queued', 'running'] as const;
export const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);
/** Methods whose running requests roll back on cancelRequest (their handlers watch ctx.cancelled). */
const ROLLS_BACK = new Set(['migrateVm', 'drainHost']);

export interface RequestInfo {
  requestId: string; method: string; resourceId: string;
  status: RequestRow['status']; progress: number; message: string; result: unknown;
  error: { code: number; message: string } | Record<string, never>;
  createdAt: string; startedAt: string; finishedAt: string;
}

export function requestInfo(r: RequestRow): RequestInfo {
  return {
    requestId: r.id, method: r.method, resourceId: r.resource_id, status: r.status, progress: r.progress, message: r.message,
    result: r.result === '' ? '' : JSON.parse(r.result),
    error: r.error_code === null ? {} : { code: r.error_code, message: r.error_message },
    createdAt: r.created_at, startedAt: r.started_at ?? '', finishedAt: r.finished_at ?? '',
  };
}

const activeOnQuery = (q: Q, resourceId: string) =>
  q.selectFrom('requests').select(['id', 'method', 'status']).where('resource_id', '=', resourceId)
    .where('status', 'in', ACTIVE).orderBy('seq');
const ACTIVE_ON = new Precompiled(activeOnQuery);

/** Requests that are queued or running on a resource, oldest first. Given `db`, the store `q` belongs
 * to (`db.k` or a transaction of it), the query is compiled once instead of on every call. */
export const activeOn = (q: Q, resourceId: string, db?: Db) =>
  db ? ACTIVE_ON.execute(db, q, resourceId) : activeOnQuery(q, resourceId).execute();

export class Requests {
  /** Set by the request engine so a new request starts without waiting for the next poll. */
  wake: () => void = () => {};

  constructor(private readonly db: Db, private readonly events: Events) {}

  /** Queues an async request inside the caller's transaction; the engine runs it after commit. */
  async submit(q: Q, tenantId: string, method: string, resourceId: string, params: Record<string, unknown>): Promise<string> {
    const id = newId('req');
    await q.insertInto('requests').values({
      id, tenant_id: tenantId, method, resource_id: resourceId, params: JSON.stringify(params),
      status: 'queued', progress: 0, message: 'queued', result: '', error_code: null, error_message: '',
      owner: null, lease_expires: null, attempts: 0, checkpoint: '{}', created_at: now(), started_at: null, finished_at: null,
    }).execute();
    await this.events.publish(q, tenantId, 'request.queued', resourceId, { requestId: id, method });
    setImmediate(this.wake);
    return id;
  }

  private async row(p: Principal, requestId: string): Promise<RequestRow> {
    const r = await this.db.k.selectFrom('requests').selectAll().where('id', '=', requestId).executeTakeFirst();
    if (!r || !visible(p, r.tenant_id)) throw notFound('request', requestId);
    return r;
  }

  async get(p: Principal, requestId: string): Promise<RequestInfo> {
    return requestInfo(await this.row(p, requestId));
  }

  async list(p: Principal, opts: { resourceId?: string; status?: string; limit?: number } = {}): Promise<RequestInfo[]> {
    let q = this.db.k.selectFrom('requests').selectAll().orderBy('seq', 'desc').limit(Math.min(opts.limit ?? 100, 1000));
    if (!p.admin) q = q.where('tenant_id', '=', p.tenantId);
    if (opts.resourceId) q = q.where('resource_id', '=', opts.resourceId);
    if (opts.status) q = q.where('status', '=', opts.status as RequestRow['status']);
    return (await q.execute()).map(requestInfo);
  }

  /** Long-poll: resolves when the request ends or the timeout passes, whichever is first. */
  async wait(p: Principal, requestId: string, timeoutSeconds: number): Promise<RequestInfo> {
    checkRange(timeoutSeconds, 0, 3600, 'timeoutSeconds');
    const first = await this.get(p, requestId);
    if (FINISHED.has(first.status) || timeoutSeconds === 0) return first;
    return new Promise((resolve, reject) => {
      const done = () => { clearTimeout(timer); clearInterval(poll); off(); this.get(p, requestId).then(resolve, reject); };
      const off = this.events.subscribe((e) => {
        if (e.data.requestId === requestId && e.kind.startsWith('request.') && FINISHED.has(String(e.data.status))) done();
      });
      const timer = setTimeout(done, timeoutSeconds * 1000);
      // Belt and braces: a finishing write by another controller is seen at the latest by this poll.
      const poll = setInterval(() => void this.get(p, requestId).then((r) => { if (FINISHED.has(r.status)) done(); }, () => {}), 2000);
    });
  }

  async cancel(p: Principal, requestId: string): Promise<true> {
    const r = await this.row(p, requestId);
    if (r.status === 'queued') {
      const res = await this.db.k.updateTable('requests')
        .set({ status: 'cancelled', message: `cancelled by ${p.userName}`, finished_at: now() })
        .where('id', '=', requestId).where('status', '=', 'queued').executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) {
        await this.events.publish(this.db.k, r.tenant_id, 'request.cancelled', r.resource_id, { requestId, status: 'cancelled', method: r.method });
        return true;
      }
      return this.cancel(p, requestId);
    }
    if (r.status === 'running') {
      if (!ROLLS_BACK.has(r.method)) throw new KumoError(Fault.CONFLICT, `${requestId} (${r.method}) is running and ${r.method} cannot be rolled back`);
      const res = await this.db.k.updateTable('requests').set({ cancel_requested: 1, message: `cancelling (asked by ${p.userName})` })
        .where('id', '=', requestId).where('status', '=', 'running').executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) return true;
      return this.cancel(p, requestId);
    }
    throw new KumoError(Fault.INVALID_STATE, `${requestId} has already ended (${r.status})`);
  }
}

export function checkRequestId(id: string): void {
  if (!/^req-[0-9a-f]{12}$/.test(id)) throw invalidParams(`not a request id: ${JSON.stringify(id.slice(0, 40))}`);
}
