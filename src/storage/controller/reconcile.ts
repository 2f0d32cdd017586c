import type { Logger } from 'pino';
import type { Services } from '../../services/index.js';
import type { NodePool } from '../frontend/pool.js';

/** Objects deleted per node per round: bounded so one huge deallocation does not stall the loop. */
const GARBAGE_BATCH = 512;
/** A (volume, node) still stale after a resync request waits this long before the next, doubling up to the max: a node that just died still looks up for a while. */
const RESYNC_BACKOFF_MS = 2_000;
const RESYNC_BACKOFF_MAX_MS = 60_000;

/**
 * The controller's storage housekeeping, every few seconds: storage nodes that stopped
 * heartbeating are marked down; objects of deleted blocks, volumes and locations are deleted on
 * their nodes (the rows stay until the node confirms, so a node that is away is cleaned when it is
 * back); and every volume with stale replicas on a node that is up gets a syncVolume request, which
 * copies only those blocks (a returning node is brought in-sync without a full rebuild).
 */
export class StorageReconciler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly tried = new Map<string, { at: number; waitMs: number }>();

  constructor(private readonly s: Services, private readonly pool: NodePool, private readonly log: Logger, private readonly everyMs = 3000) {}

  start(): void {
    this.timer = setInterval(() => { this.running ??= this.round().finally(() => { this.running = null; }); }, this.everyMs);
    this.timer.unref();
  }

  async round(): Promise<void> {
    try {
      const down = await this.s.storageNodes.markSilentDown();
      if (down.length) this.log.warn({ nodes: down }, 'storage nodes went quiet: marked down');
      await this.collectGarbage();
      await this.resync();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'storage housekeeping failed; trying again');
    }
  }

  private async collectGarbage(): Promise<void> {
    for (const n of await this.s.storageNodes.list()) {
      if (n.status !== 'up') continue;
      const ids = await this.s.blockMaps.garbage(n.nodeId, GARBAGE_BATCH);
      if (ids.length === 0) continue;
      try {
        const client = await this.pool.get(await this.s.storageNodes.address(n.nodeId));
        await Promise.all(ids.map((id) => client.delete(id)));
        await this.s.blockMaps.garbageDone(n.nodeId, ids);
        this.log.info({ node: n.nodeId, objects: ids.length }, 'deleted objects nothing refers to any more');
      } catch (e) {
        this.log.warn({ node: n.nodeId, err: (e as Error).message }, 'could not delete garbage objects yet');
      }
    }
  }

  private async resync(): Promise<void> {
    const now = Date.now();
    const stale = new Set<string>();
    for (const { volumeId, nodeId } of await this.s.blockMaps.needsResync()) {
      const key = `${volumeId}/${nodeId}`;
      stale.add(key);
      const last = this.tried.get(key);
      if (last && now - last.at < last.waitMs) continue;
      this.tried.set(key, { at: now, waitMs: last ? Math.min(RESYNC_BACKOFF_MAX_MS, last.waitMs * 2) : RESYNC_BACKOFF_MS });
      const requestId = await this.s.volumes.submitSync(volumeId, nodeId);
      if (requestId) this.log.info({ volumeId, nodeId, requestId }, 'stale replicas on a node that is up: resync requested');
    }
    for (const k of this.tried.keys()) if (!stale.has(k)) this.tried.delete(k);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
