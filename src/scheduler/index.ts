export * from './types.js';
export {
  applyPlacement, releasePlacement, holdsInvariant, dimensionFits, dimensionHeadroom,
  cpuFits, memoryFits, reserves,
} from './capacity.js';
export { FILTERS, SDN_FILTERS, type Filter } from './filters.js';
export { WEIGHERS, type Weigher } from './weighers.js';
export { DEFAULT_POLICY, DEFAULT_OVERCOMMIT, DEFAULT_WEIGHERS, makePolicy } from './policy.js';
export { place, fits, rejectedBy } from './place.js';
export { CapacityIndex } from './capacity-index.js';
export { NO_SDN, snapshotView, nicCount, missingVlans, type EdgeView, type SdnView } from './sdn-view.js';
export type { VlanAllocator } from './sdn-load.js';
