/**
 * Replica state changes on their way to the map. A change names a (block, node); what gets sent is
 * the replica's in-memory state when the batch's turn in the map queue comes, so a batch can never
 * record in-sync for a replica that failed a write after its copy: the failure changed the
 * in-memory state first, and the failure's own commit is queued after this one if it came later.
 * Commits coalesce: everything added before a commit starts goes in that one map.update.
 *
 * While the update is on its way, the states it carries already count as durable (the map may hold
 * them at any moment): a write that fails on a replica whose in-sync mark is in flight then sees
 * the map ahead of the truth and waits for its own out-of-sync commit, queued after this one,
 * before it is acknowledged. If the update fails, the durable states it assumed are taken back.
 */
import type { BlockState, LiveReplica } from './block-state.js';
import type { ReplicaState } from '../blockmap/replicas.js';
import type { ReplicaChange } from './map.js';
import type { MapQueue } from './map-queue.js';

interface Pending { st: BlockState; nodeId: string }

export class ReplicaChanges {
  private pending = new Map<string, Pending>();
  private queued: Promise<void> | null = null;

  constructor(private readonly queue: MapQueue) {}

  /** Changes not yet sent. */
  get size(): number {
    return this.pending.size;
  }

  add(st: BlockState, nodeId: string): void {
    const key = `${st.block}/${nodeId}`;
    if (!this.pending.has(key)) this.pending.set(key, { st, nodeId });
  }

  /** Sends every change added so far (joining a commit that has not started yet); resolves once committed. */
  commit(): Promise<void> {
    if (this.queued) return this.queued;
    const p: Promise<void> = this.queue.run(async (map) => {
      if (this.queued === p) this.queued = null;
      const batch = this.pending;
      if (batch.size === 0) return;
      this.pending = new Map();
      const changes: ReplicaChange[] = [];
      const sent: { r: LiveReplica; state: ReplicaState; was: ReplicaState }[] = [];
      for (const { st, nodeId } of batch.values()) {
        const r = st.gone ? undefined : st.replica(nodeId);
        if (!r || r.state === r.durable) continue;
        changes.push({ block: st.block, nodeId, state: r.state });
        sent.push({ r, state: r.state, was: r.durable });
        r.durable = r.state; // in flight: see the file comment
      }
      if (changes.length === 0) return;
      try {
        await map.update(changes);
      } catch (e) {
        for (const { r, state, was } of sent) if (r.durable === state) r.durable = was;
        // Still owed: the next commit sends them again (with the states of that moment).
        for (const [k, v] of batch) if (!this.pending.has(k)) this.pending.set(k, v);
        throw e;
      }
    });
    this.queued = p;
    return p;
  }
}
