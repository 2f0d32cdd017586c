/**
 * The volume block map's pure core: block arithmetic, object replicas and their states, and the
 * placement of a new object's copies. No I/O; the state store keeps the map, the frontend uses it.
 */
export {
  DEFAULT_BLOCK_SIZE, isPowerOfTwo, checkBlockSize, blockCount, splitRange, coveredRange, blockSpan,
  blocksTouched, coversBlock,
} from './blocks.js';
export type { Segment, ByteRange } from './blocks.js';
export {
  REPLICA_STATES, readableReplicas, writeTargets, replicaSummary, lastInSyncCopies, removesLastInSyncCopy,
  replicaProblems, objectsOf,
} from './replicas.js';
export type { ReplicaState, Replica, ObjectReplicas, BlockIndex, ReplicaCounts } from './replicas.js';
export { placeReplicas, placeObjects } from './placement.js';
export type { NodeCandidate, PlacementRequest, PlacementResult } from './placement.js';
export { OBJECT_ID, OBJECT_ID_BYTES, isObjectId, newObjectId } from './ids.js';
