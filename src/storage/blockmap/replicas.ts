/**
 * Block objects and their replicas (pure). A volume's block index maps a block to an object id;
 * the object — not the block — has replicas, so snapshots and clones share objects copy-on-write.
 * Each replica is in one state:
 *  - `in-sync`: holds every acknowledged write; reads may go there;
 *  - `syncing`: being copied (relocation, resync); writes go there too, reads do not;
 *  - `out-of-sync`: missed writes (its node failed a write); neither reads nor writes go there.
 */

export type ReplicaState = 'in-sync' | 'syncing' | 'out-of-sync';
export const REPLICA_STATES: readonly ReplicaState[] = ['in-sync', 'syncing', 'out-of-sync'];

export interface Replica { nodeId: string; state: ReplicaState }

/** One block object and where its copies live. */
export interface ObjectReplicas { objectId: string; replicas: readonly Replica[] }

/** A volume's block index: block number → object id; a block without an entry was never written (zeros). */
export interface BlockIndex {
  blockSize: number;
  sizeBytes: number;
  blocks: ReadonlyMap<number, string>;
}

export interface ReplicaCounts { inSync: number; syncing: number; outOfSync: number; total: number }

const emptyCounts = (): ReplicaCounts => ({ inSync: 0, syncing: 0, outOfSync: 0, total: 0 });

/** Replicas a read may use. */
export const readableReplicas = (o: ObjectReplicas): Replica[] => o.replicas.filter((r) => r.state === 'in-sync');

/** Replicas a write must reach: in-sync ones and the copies being built (writes continue during a copy). */
export const writeTargets = (o: ObjectReplicas): Replica[] => o.replicas.filter((r) => r.state !== 'out-of-sync');

/** Per storage node: how many object replicas it holds in each state. Nodes come out sorted by id. */
export function replicaSummary(objects: Iterable<ObjectReplicas>): Map<string, ReplicaCounts> {
  const byNode = new Map<string, ReplicaCounts>();
  for (const o of objects) {
    for (const r of o.replicas) {
      let c = byNode.get(r.nodeId);
      if (!c) byNode.set(r.nodeId, (c = emptyCounts()));
      c.total++;
      if (r.state === 'in-sync') c.inSync++;
      else if (r.state === 'syncing') c.syncing++;
      else c.outOfSync++;
    }
  }
  return new Map([...byNode].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The objects that would be left without any in-sync replica if the replicas on `nodeIds` went
 * away (a location removed, a node drained): each has one now and all of them are on those nodes.
 * Objects already without an in-sync replica are not counted: removing a node does not lose them.
 */
export function lastInSyncCopies(objects: Iterable<ObjectReplicas>, nodeIds: Iterable<string>): string[] {
  const removed = new Set(nodeIds);
  const out: string[] = [];
  for (const o of objects) {
    const inSync = readableReplicas(o);
    if (inSync.length > 0 && inSync.every((r) => removed.has(r.nodeId))) out.push(o.objectId);
  }
  return out;
}

/** The refusal check before removing a location: true iff some object would lose its last in-sync copy. */
export function removesLastInSyncCopy(objects: Iterable<ObjectReplicas>, nodeIds: Iterable<string>): boolean {
  return lastInSyncCopies(objects, nodeIds).length > 0;
}

/** What is wrong with an object's replica list (empty when nothing): two copies on one node, no copy at all. */
export function replicaProblems(o: ObjectReplicas): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const r of o.replicas) {
    if (seen.has(r.nodeId)) problems.push(`object ${o.objectId} has two copies on node ${r.nodeId}`);
    seen.add(r.nodeId);
  }
  if (o.replicas.length === 0) problems.push(`object ${o.objectId} has no replica`);
  else if (readableReplicas(o).length === 0) problems.push(`object ${o.objectId} has no in-sync replica`);
  return problems;
}

/** The objects a volume's blocks use (each once, in block order). */
export function objectsOf(index: BlockIndex): string[] {
  const blocks = [...index.blocks].sort(([a], [b]) => a - b);
  return [...new Set(blocks.map(([, id]) => id))];
}
