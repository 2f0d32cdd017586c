/**
 * The UKAI frontend: a volume served as a BlockBackend (VolumeSession) over replicated storage
 * nodes reached through a shared NodePool, with its block map behind a MapSource.
 */
export { NodePool } from './pool.js';
export type { NodePoolOptions } from './pool.js';
export { VolumeSession } from './session.js';
export type { VolumeSessionOptions, LocationCounts, SyncProgress, SyncResult } from './session.js';
export { LeaseHeld, LeaseLost } from './map.js';
export type { MapSource, VolumeMap, BlockEntry, NodeAddress, ReplicaChange } from './map.js';
export { isLocalHost } from './local-host.js';
