import { setTimeout as sleep } from 'node:timers/promises';
import { KumoError, faultName } from '../../core/errors.js';
import type { Services } from '../../services/index.js';
import { SYSTEM } from '../../services/principal.js';
import { FINISHED } from '../../services/requests.js';
import { RequestCancelled, type Handler, type RequestContext } from '../engine.js';

export interface DrainDeps { s: Services; /** Live migrations a drain runs at once. */ concurrency: number }

export interface Moved { vmId: string; to: string; downtimeMs: number; requestId: string }
export interface CannotMove { vmId: string; reason: string; code: string; requestId?: string }

/** Child requests by VM, saved so a resumed drain waits for them instead of starting them again. */
interface Checkpoint { children?: Record<string, string> }

/**
 * drainHost: the host is already in maintenance (no new placements); each VM on it is moved by its
 * own migrateVm request (progress per VM, placement by the scheduler), a few at a time. A VM that
 * cannot move — predicted not to converge, no capacity, not running — is listed with the reason so
 * the operator can ask its owner to stop it. cancelRequest stops the drain and cancels the
 * migrations it started; the host stays in maintenance.
 */
export function drainHandlers(d: DrainDeps): Record<string, Handler> {
  const db = d.s.db;

  async function drainHost(ctx: RequestContext): Promise<unknown> {
    const hostId = ctx.req.resource_id;
    const host = await db.k.selectFrom('hosts').select(['id', 'name']).where('id', '=', hostId).executeTakeFirstOrThrow();
    const children: Record<string, string> = { ...((ctx.checkpoint as Checkpoint).children ?? {}) };
    const onHost = await db.k.selectFrom('vms').select(['id', 'status']).where('host_id', '=', hostId).orderBy('id').execute();
    const todo = onHost.filter((v) => !(v.id in children)).map((v) => v.id);
    const total = Object.keys(children).length + todo.length;
    const moved: Moved[] = [];
    const cannot: CannotMove[] = [];
    const inFlight = new Set(Object.values(children));
    const say = () => ctx.progress(total ? (100 * (moved.length + cannot.length)) / total : 99,
      `${host.name}: ${moved.length} of ${total} VMs moved, ${cannot.length} cannot move, ${inFlight.size} migrating`);
    await say();

    const stopAll = async () => {
      for (const id of inFlight) await d.s.requests.cancel(SYSTEM, id).catch(() => undefined);
    };
    while (todo.length || inFlight.size) {
      if (ctx.cancelled.aborted) {
        await stopAll();
        throw new RequestCancelled(`drain of ${host.name} cancelled after ${moved.length} of ${total} VMs moved; the host stays in maintenance`);
      }
      while (todo.length && inFlight.size < d.concurrency) {
        const vmId = todo.shift()!;
        try {
          const id = await d.s.vms.migrate(SYSTEM, vmId, {});
          children[vmId] = id;
          inFlight.add(id);
          await ctx.saveCheckpoint({ children } satisfies Checkpoint);
        } catch (e) {
          cannot.push({ vmId, reason: (e as Error).message, code: e instanceof KumoError ? faultName(e.code) : 'INTERNAL' });
          await say();
        }
      }
      await sleep(500);
      for (const [vmId, id] of Object.entries(children)) {
        if (!inFlight.has(id)) continue;
        const r = await db.k.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        if (!FINISHED.has(r.status)) continue;
        inFlight.delete(id);
        if (r.status === 'succeeded') {
          const res = JSON.parse(r.result) as { host: string; downtimeMs?: number };
          moved.push({ vmId, to: res.host, downtimeMs: res.downtimeMs ?? 0, requestId: id });
        } else {
          cannot.push({ vmId, reason: r.error_message || r.message, code: r.error_code === null ? r.status.toUpperCase() : faultName(r.error_code), requestId: id });
        }
        await say();
      }
    }
    const left = await db.k.selectFrom('vms').select('id').where('host_id', '=', hostId).execute();
    ctx.log.info({ hostId, moved: moved.length, cannotMove: cannot.length, left: left.length }, 'drain finished');
    return { hostId, moved, cannotMove: cannot, empty: left.length === 0 };
  }

  return { drainHost };
}
