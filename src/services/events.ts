import { EventEmitter } from 'node:events';
import type { Db, Q } from '../state/db.js';
import { now } from '../state/db.js';

export interface KumoEvent { seq: number; tenantId: string | null; kind: string; resourceId: string; data: Record<string, unknown>; at: string }

/**
 * Events are rows first (so every controller on a shared PostgreSQL sees them and a websocket
 * client can resume from a sequence number) and then fanned out in-process by a tailer.
 */
export class Events {
  private readonly bus = new EventEmitter();
  private last = 0;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private again = false;

  constructor(private readonly db: Db) { this.bus.setMaxListeners(0); }

  async publish(q: Q, tenantId: string | null, kind: string, resourceId: string, data: Record<string, unknown> = {}): Promise<void> {
    await q.insertInto('events').values({ tenant_id: tenantId, kind, resource_id: resourceId, data: JSON.stringify(data), at: now() }).execute();
    // Commit happens after this returns; the next poll delivers it. A prompt poll keeps latency low.
    setImmediate(() => void this.poll());
  }

  subscribe(fn: (e: KumoEvent) => void): () => void {
    this.bus.on('event', fn);
    return () => this.bus.off('event', fn);
  }

  async start(intervalMs = 200): Promise<void> {
    const row = await this.db.k.selectFrom('events').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst();
    this.last = Number(row?.m ?? 0);
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void { if (this.timer) clearInterval(this.timer); this.timer = null; }

  async since(seq: number, limit = 1000): Promise<KumoEvent[]> {
    const rows = await this.db.k.selectFrom('events').selectAll().where('seq', '>', seq).orderBy('seq').limit(limit).execute();
    return rows.map((r) => ({ seq: r.seq, tenantId: r.tenant_id, kind: r.kind, resourceId: r.resource_id, data: JSON.parse(r.data), at: r.at }));
  }

  /** One poll at a time; a call during a poll asks for exactly one more afterwards. */
  private poll(): Promise<void> {
    if (this.polling) { this.again = true; return this.polling; }
    this.polling = (async () => {
      do {
        this.again = false;
        try {
          for (const e of await this.since(this.last)) { this.last = e.seq; this.bus.emit('event', e); }
        } catch { /* the store may be closing; the next tick retries */ }
      } while (this.again);
    })().finally(() => { this.polling = null; });
    return this.polling;
  }
}
