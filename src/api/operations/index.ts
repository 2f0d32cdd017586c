import { adminOperations } from './admin.js';
import { consoleOperations } from './console.js';
import { initOperations } from './init.js';
import { networkOperations } from './networks.js';
import { otherOperations } from './others.js';
import { topologyOperations } from './topology.js';
import type { Operation } from './types.js';
import { vmOperations } from './vms.js';
import { volumeOperations } from './volumes.js';

export type { Operation, Param } from './types.js';

export const OPERATIONS: readonly Operation[] = [
  ...vmOperations, ...consoleOperations, ...networkOperations, ...volumeOperations, ...initOperations, ...otherOperations, ...adminOperations, ...topologyOperations,
];

export const OPERATION_BY_NAME = new Map(OPERATIONS.map((o) => [o.name, o]));
