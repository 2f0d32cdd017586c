/**
 * Copying a node's stale replicas of a volume (UKAI synchronize; resync after a node returned):
 * only blocks whose replica there is not in-sync are copied, by the node itself pulling the object
 * from the nearest in-sync copy (COPY), while the guest keeps writing.
 *
 * Order, and why it is safe:
 *  1. the node is connected first, so the writes that follow do not fail on it for want of a
 *     connection;
 *  2. all target replicas turn `syncing` (in memory, then one map.update): from here on every write
 *     to those blocks reaches the node too;
 *  3. each block is copied under its exclusive lock, so no write is in flight on any replica during
 *     the copy and the copy holds every acknowledged write; the writes after it land on the copy;
 *  4. the replica turns in-sync in memory at once (reads may use it), in the map in batches whose
 *     content is read from memory when their turn comes — a replica that failed a write since is
 *     out-of-sync in memory by then and is recorded so;
 *  5. blocks that turned stale during the pass (a write failed on the node) get another pass.
 * A target that fails (not a source: the next in-sync source is tried then) ends the sync; blocks
 * not reached go back to out-of-sync, so writes stop going there.
 */
import { BlockError } from '../nbd/backend.js';
import { NodeError, type NodeLogger } from '../node/index.js';
import type { BlockState, LiveReplica } from './block-state.js';
import type { NodePool } from './pool.js';
import type { ReplicaChanges } from './replica-changes.js';

export interface SyncProgress { done: number; total: number; copied: number }
/** `blocks`: allocated blocks with a replica on the node; `copied`: those that had to be copied. */
export interface SyncResult { blocks: number; copied: number }

/** What a sync needs from its session. */
export interface SyncHost {
  readonly volumeId: string;
  readonly pool: NodePool;
  readonly changes: ReplicaChanges;
  readonly log: NodeLogger;
  allBlocks(): Iterable<BlockState>;
  /** Non-null once the session stopped serving (fenced, closed). */
  stopped(): BlockError | null;
  markFailed(st: BlockState, r: LiveReplica, err: unknown): void;
}

export interface SyncOptions {
  signal: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
  parallel: number;
  copyTimeoutMs: number;
  commitMs: number;
  commitBlocks: number;
  /** Passes over blocks that went stale during the previous one. */
  maxPasses?: number;
}

const why = (e: unknown) => (e as Error | undefined)?.message ?? String(e);

export async function syncNode(host: SyncHost, nodeId: string, o: SyncOptions): Promise<SyncResult> {
  const progress = { done: 0, total: 0, copied: 0 };
  const report = () => {
    try { o.onProgress?.({ ...progress }); } catch (e) { host.log.warn({ err: why(e) }, 'sync progress listener threw'); }
  };
  const stale = () => {
    const out: BlockState[] = [];
    let all = 0;
    for (const st of host.allBlocks()) {
      const r = st.replica(nodeId);
      if (!r || r.detached) continue;
      all++;
      if (r.state !== 'in-sync') out.push(st);
    }
    return { all, targets: out.sort((a, b) => a.block - b.block) };
  };
  let { all: blocks, targets } = stale();
  progress.total = targets.length;
  report();
  if (targets.length === 0) return { blocks, copied: 0 };

  let unsynced = 0;
  let failure: unknown = null;
  let timer: NodeJS.Timeout | null = null;
  const commitLater = () => void host.changes.commit().catch((e) => host.log.warn({ err: why(e) }, 'cannot record copied blocks yet; retrying'));
  const commitSoon = () => {
    if (host.changes.size >= o.commitBlocks) commitLater();
    else timer ??= setTimeout(() => { timer = null; commitLater(); }, o.commitMs);
  };
  const going = () => failure === null && !o.signal.aborted && !host.stopped();
  try {
    await host.pool.connect(nodeId);
    for (let pass = 1; targets.length > 0 && going(); pass++) {
      for (const st of targets) {
        const r = st.replica(nodeId);
        if (r && r.state === 'out-of-sync' && !r.detached) { r.state = 'syncing'; host.changes.add(st, nodeId); }
      }
      await host.changes.commit();
      let next = 0;
      const worker = async () => {
        while (next < targets.length && going()) {
          const outcome = await copyBlock(host, targets[next++], nodeId, o.copyTimeoutMs);
          if (outcome === 'copied') progress.copied++;
          else if (outcome === 'unsynced') unsynced++;
          progress.done++;
          report();
          commitSoon();
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, o.parallel) }, () => worker().catch((e: unknown) => { failure ??= e; })));
      if (unsynced > 0 || pass >= (o.maxPasses ?? 3)) break;
      ({ all: blocks, targets } = stale());
      progress.total += targets.length;
      if (targets.length > 0) host.log.info({ volumeId: host.volumeId, node: nodeId, blocks: targets.length }, 'blocks went stale during the copy: another pass');
    }
  } catch (e) {
    failure ??= e;
  } finally {
    if (timer) clearTimeout(timer);
    for (const st of host.allBlocks()) {
      const r = st.replica(nodeId);
      if (r && r.state === 'syncing') { r.state = 'out-of-sync'; host.changes.add(st, nodeId); }
    }
  }
  try {
    await host.changes.commit();
  } catch (e) {
    failure ??= e;
  }
  const result = { blocks, copied: progress.copied };
  host.log.info({ volumeId: host.volumeId, node: nodeId, ...result, unsynced, aborted: o.signal.aborted, err: failure ? why(failure) : undefined }, 'sync ended');
  if (failure !== null) throw failure;
  const down = host.stopped();
  if (down) throw down;
  if (o.signal.aborted) throw o.signal.reason ?? new Error('sync aborted');
  if (unsynced > 0) throw new BlockError('EIO', `${unsynced} blocks of ${host.volumeId} could not be copied to ${nodeId}: no in-sync copy could be read`);
  return result;
}

/** One block, under its exclusive lock. A failure of the target is thrown; a failing source is replaced by the next. */
async function copyBlock(host: SyncHost, st: BlockState, nodeId: string, timeoutMs: number): Promise<'copied' | 'skipped' | 'unsynced'> {
  await st.lock.acquireExclusive();
  try {
    const r = st.replica(nodeId);
    if (st.gone || !r || r.detached || r.state === 'in-sync') return 'skipped';
    const sources = host.pool.nearest(st.readable().map((x) => x.nodeId).filter((id) => id !== nodeId));
    let last: unknown = null;
    for (const src of sources) {
      const addr = host.pool.address(src);
      if (!addr) continue;
      try {
        const target = host.pool.client(nodeId) ?? (await host.pool.connect(nodeId));
        await target.copyObject(st.objectId, { host: addr.host, port: addr.port, token: addr.token }, { timeoutMs });
      } catch (e) {
        if (e instanceof NodeError) { last = e; continue; } // the node answered: reading the source failed
        host.markFailed(st, r, e);
        throw e;
      }
      r.state = 'in-sync';
      host.changes.add(st, nodeId);
      return 'copied';
    }
    // Nothing to copy from now: it stays out of the writes until a later sync.
    host.log.warn({ volumeId: host.volumeId, node: nodeId, block: st.block, err: last ? why(last) : 'no in-sync copy' }, 'cannot copy a block');
    r.state = 'out-of-sync';
    host.changes.add(st, nodeId);
    return 'unsynced';
  } finally {
    st.lock.releaseExclusive();
  }
}
