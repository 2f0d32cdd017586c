export * from './types.js';
export {
  applyPlacement, releasePlacement, holdsInvariant, dimensionFits, dimensionHeadroom,
  cpuFits, memoryFits, reserves,
} from './capacity.js';
export { FILTERS, type Filter } from './filters.js';
export { WEIGHERS, type Weigher } from './weighers.js';
export { DEFAULT_POLICY, DEFAULT_OVERCOMMIT, DEFAULT_WEIGHERS, makePolicy } from './policy.js';
export { place, fits, rejectedBy } from './place.js';
export { CapacityIndex } from './capacity-index.js';
