import type { Logger } from 'pino';
import { Fault, KumoError } from '../core/errors.js';
import type { Db } from '../state/db.js';
import { now } from '../state/db.js';
import type { Request } from '../state/schema.js';
import type { Events } from '../services/events.js';

export interface RequestContext {
  req: Request;
  params: Record<string, unknown>;
  /** True when an earlier run was cut off (controller killed): the handler must resume, not repeat blindly. */
  resumed: boolean;
  checkpoint: Record<string, unknown>;
  progress(percent: number, message: string): Promise<void>;
  saveCheckpoint(c: Record<string, unknown>): Promise<void>;
  /** Aborted when this controller lost the lease: another one now owns the request. */
  signal: AbortSignal;
  /**
   * Aborted when cancelRequest asked this request to roll back (any controller may have been asked).
   * A handler that rolled back throws RequestCancelled; the request then ends `cancelled`.
   */
  cancelled: AbortSignal;
  log: Logger;
}

export type Handler = (ctx: RequestContext) => Promise<unknown>;

export interface EngineOptions {
  /** Stable per controller (survives its restarts) and unique among controllers sharing a store. */
  owner: string;
  leaseMs?: number; pollMs?: number; concurrency?: number;
  /** Runs of one request, counting resumes, before it is failed instead of resumed again. */
  maxAttempts?: number;
}

class LeaseLost extends Error {}

/** Thrown by a handler that rolled back on cancelRequest: the request ends `cancelled`, not `failed`. */
export class RequestCancelled extends Error {
  constructor(message: string) { super(message); this.name = 'RequestCancelled'; }
}

/**
 * Runs async requests from the store. A claim takes the request and its resource's lock row in
 * one transaction (the lock's primary key makes it exclusive even across controllers on one
 * PostgreSQL); a lease renewed while the handler runs lets another controller — or this one after
 * a restart — resume a request whose runner died, instead of leaving it `running` forever.
 */
export class RequestEngine {
  private readonly o: Required<EngineOptions>;
  /** Per running request: `lost` when another controller owns it now, `cancel` when cancelRequest asked. */
  private readonly running = new Map<string, { lost: AbortController; cancel: AbortController }>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(private readonly db: Db, private readonly events: Events, private readonly handlers: Record<string, Handler>,
    private readonly log: Logger, opts: EngineOptions) {
    this.o = { owner: opts.owner, leaseMs: opts.leaseMs ?? 15_000, pollMs: opts.pollMs ?? 500, concurrency: opts.concurrency ?? 16, maxAttempts: opts.maxAttempts ?? 3 };
  }

  async start(): Promise<void> {
    // Our own earlier incarnation's requests need no lease expiry: that process is gone.
    const mine = await this.db.k.selectFrom('requests').selectAll().where('status', '=', 'running').where('owner', '=', this.o.owner).execute();
    for (const r of mine) await this.takeOver(r);
    this.timer = setInterval(() => this.wake(), this.o.pollMs);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // Its handlers learn at once that the request is no longer theirs, as if this controller had died.
    for (const r of this.running.values()) r.lost.abort();
    await this.ticking;
  }

  get active(): number { return this.running.size; }

  wake = (): void => {
    if (this.stopped) return;
    if (this.ticking) { this.again = true; return; }
    this.ticking = (async () => {
      do {
        this.again = false;
        try { await this.reapExpired(); await this.claimQueued(); await this.noticeCancels(); } catch (e) {
          if (!this.stopped) this.log.error({ err: (e as Error).message }, 'request engine tick failed');
        }
      } while (this.again && !this.stopped);
    })().finally(() => { this.ticking = null; });
  };

  private leaseUntil = () => new Date(Date.now() + this.o.leaseMs).toISOString();

  private async claimQueued(): Promise<void> {
    const room = this.o.concurrency - this.running.size;
    if (room <= 0) return;
    const queued = await this.db.k.selectFrom('requests').selectAll().where('status', '=', 'queued').orderBy('seq').limit(200).execute();
    const seen = new Set<string>();
    let claimed = 0;
    for (const r of queued) {
      if (claimed >= room || this.stopped) break;
      if (seen.has(r.resource_id)) continue; // only the oldest queued request of a resource may start
      seen.add(r.resource_id);
      if (await this.claim(r)) { claimed++; this.run({ ...r, status: 'running', owner: this.o.owner }, false); }
    }
  }

  private async claim(r: Request): Promise<boolean> {
    return this.db.k.transaction().execute(async (trx) => {
      const lock = await trx.insertInto('resource_locks')
        .values({ resource_id: r.resource_id, request_id: r.id, owner: this.o.owner, expires_at: this.leaseUntil() })
        .onConflict((oc) => oc.column('resource_id').doNothing()).executeTakeFirst();
      if (Number(lock.numInsertedOrUpdatedRows ?? 0) !== 1) return false;
      const at = now();
      const upd = await trx.updateTable('requests')
        .set((eb) => ({ status: 'running', owner: this.o.owner, lease_expires: this.leaseUntil(), started_at: at, message: 'running', attempts: eb('attempts', '+', 1) }))
        .where('id', '=', r.id).where('status', '=', 'queued').executeTakeFirst();
      if (Number(upd.numUpdatedRows) !== 1) throw new Rollback();
      await this.events.publish(trx, r.tenant_id, 'request.running', r.resource_id, { requestId: r.id, method: r.method, status: 'running' });
      return true;
    }).catch((e) => { if (e instanceof Rollback) return false; throw e; });
  }

  /** Passes cancelRequest's flag to the handlers running here (the flag may come from any controller). */
  private async noticeCancels(): Promise<void> {
    if (this.running.size === 0) return;
    const asked = await this.db.k.selectFrom('requests').select('id').where('status', '=', 'running')
      .where('owner', '=', this.o.owner).where('cancel_requested', '=', 1).execute();
    for (const r of asked) {
      const c = this.running.get(r.id)?.cancel;
      if (c && !c.signal.aborted) { this.log.info({ requestId: r.id }, 'cancel requested; rolling back'); c.abort(); }
    }
  }

  private async reapExpired(): Promise<void> {
    const expired = await this.db.k.selectFrom('requests').selectAll()
      .where('status', '=', 'running').where('lease_expires', '<', now()).execute();
    for (const r of expired) if (!this.running.has(r.id)) await this.takeOver(r);
  }

  /** Compare-and-set on the old owner and expiry, so of two controllers reaping at once one wins. */
  private async takeOver(r: Request): Promise<void> {
    const won = await this.db.k.transaction().execute(async (trx) => {
      let q = trx.updateTable('requests').set((eb) => ({ owner: this.o.owner, lease_expires: this.leaseUntil(), attempts: eb('attempts', '+', 1) }))
        .where('id', '=', r.id).where('status', '=', 'running');
      q = r.owner === null ? q.where('owner', 'is', null) : q.where('owner', '=', r.owner);
      q = r.lease_expires === null ? q.where('lease_expires', 'is', null) : q.where('lease_expires', '=', r.lease_expires);
      if (Number((await q.executeTakeFirst()).numUpdatedRows) !== 1) return false;
      await trx.insertInto('resource_locks').values({ resource_id: r.resource_id, request_id: r.id, owner: this.o.owner, expires_at: this.leaseUntil() })
        .onConflict((oc) => oc.column('resource_id').doUpdateSet({ request_id: r.id, owner: this.o.owner, expires_at: this.leaseUntil() })).execute();
      return true;
    });
    if (!won) return;
    const attempts = r.attempts + 1;
    this.log.warn({ requestId: r.id, method: r.method, previousOwner: r.owner, attempts }, 'taking over a request whose runner stopped');
    if (attempts > this.o.maxAttempts) {
      await this.finish(r, { error: new KumoError(Fault.INTERNAL, `abandoned: its controller stopped while it ran ${attempts - 1} times`) });
      return;
    }
    this.run({ ...r, owner: this.o.owner, attempts }, true);
  }

  private run(r: Request, resumed: boolean): void {
    const abort = new AbortController();
    const cancel = new AbortController();
    this.running.set(r.id, { lost: abort, cancel });
    const log = this.log.child({ requestId: r.id, method: r.method, resourceId: r.resource_id });
    const renew = setInterval(() => {
      // A stopped engine lets its leases lapse so that another controller (or its own restart)
      // resumes what it was running, instead of holding them for as long as a handler hangs.
      if (this.stopped) { clearInterval(renew); abort.abort(); return; }
      void this.renew(r).catch((e) => {
        if (e instanceof LeaseLost) { log.warn('lost the lease of this request; another controller runs it now'); abort.abort(); }
      });
    }, Math.max(200, this.o.leaseMs / 3));
    const handler = this.handlers[r.method];
    const ctx: RequestContext = {
      req: r, params: JSON.parse(r.params), resumed, checkpoint: JSON.parse(r.checkpoint), signal: abort.signal, cancelled: cancel.signal, log,
      progress: async (percent, message) => {
        await this.ownedUpdate(r, { progress: Math.max(0, Math.min(100, Math.round(percent))), message });
        await this.events.publish(this.db.k, r.tenant_id, 'request.progress', r.resource_id, { requestId: r.id, status: 'running', progress: percent, message });
      },
      saveCheckpoint: async (c) => { ctx.checkpoint = c; await this.ownedUpdate(r, { checkpoint: JSON.stringify(c) }); },
    };
    log.info({ resumed }, resumed ? 'resuming request' : 'running request');
    const work = handler ? handler(ctx) : Promise.reject(new KumoError(Fault.INTERNAL, `no handler for ${r.method}`));
    void work.then((result) => ({ result }), (error: Error) => ({ error }))
      .then((outcome) => abort.signal.aborted ? undefined : this.finish(r, outcome))
      .catch((e) => log.error({ err: (e as Error).message }, 'could not record the end of a request'))
      .finally(() => { clearInterval(renew); this.running.delete(r.id); this.wake(); });
  }

  private async renew(r: Request): Promise<void> {
    await this.ownedUpdate(r, { lease_expires: this.leaseUntil() });
    await this.db.k.updateTable('resource_locks').set({ expires_at: this.leaseUntil() }).where('request_id', '=', r.id).execute();
  }

  private async ownedUpdate(r: Request, set: Partial<Pick<Request, 'progress' | 'message' | 'checkpoint' | 'lease_expires'>>): Promise<void> {
    const res = await this.db.k.updateTable('requests').set(set).where('id', '=', r.id).where('owner', '=', this.o.owner).where('status', '=', 'running').executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new LeaseLost();
  }

  private async finish(r: Request, outcome: { result?: unknown; error?: Error }): Promise<void> {
    const cancelled = outcome.error instanceof RequestCancelled;
    const err = cancelled ? undefined : outcome.error;
    const code = err instanceof KumoError ? err.code : err ? Fault.INTERNAL : null;
    if (err && !(err instanceof KumoError)) this.log.error({ requestId: r.id, err: err.message, stack: err.stack }, 'request failed unexpectedly');
    const status = cancelled ? 'cancelled' : err ? 'failed' : 'succeeded';
    await this.db.k.transaction().execute(async (trx) => {
      const res = await trx.updateTable('requests').set({
        status, progress: err || cancelled ? undefined : 100, finished_at: now(), lease_expires: null,
        message: err ? err.message : cancelled ? outcome.error!.message : 'done', result: err || cancelled ? '' : JSON.stringify(outcome.result ?? true),
        error_code: code, error_message: err ? (err instanceof KumoError ? err.message : `${err.message} (log reference ${r.id})`) : '',
      }).where('id', '=', r.id).where('owner', '=', this.o.owner).where('status', '=', 'running').executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) return;
      await trx.deleteFrom('resource_locks').where('request_id', '=', r.id).execute();
      await this.events.publish(trx, r.tenant_id, `request.${status}`, r.resource_id, { requestId: r.id, method: r.method, status, ...(err ? { error: err.message } : {}) });
    });
    this.log.info({ requestId: r.id, method: r.method, status, ...(err ? { error: err.message } : {}) }, 'request ended');
  }
}

class Rollback extends Error {}
