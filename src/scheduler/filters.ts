import { cpuFits, cpuHeadroom, memoryFits, memoryHeadroom } from './capacity.js';
import { NO_SDN, edgeOf, missingVlans, nicCount, type SdnView } from './sdn-view.js';
import type { HostCapacity, SchedulerPolicy, VmDemand } from './types.js';

/**
 * A filter names one reason a host must never take a VM. A rejected host is charged to the first
 * filter that rejects it, which is what the failure reason counts. The structural filters (zone,
 * pool) come first so that CapacityIndex, which skips whole zones and pools, reports the same
 * counts as a full scan.
 */
export interface Filter {
  readonly name: string;
  /** `sdn` is the edge/VLAN view (sdn-view.ts); filters that do not need it ignore it. */
  readonly pass: (host: HostCapacity, vm: VmDemand, policy: SchedulerPolicy, sdn?: SdnView) => boolean;
  /** What follows the count in the reason: "3 in maintenance". */
  readonly rejects: (vm: VmDemand) => string;
  /** Capacity filters report the closest miss: "(best fit 512 MiB free, need 1024 MiB)". */
  readonly shortfall?: {
    readonly unit: string;
    readonly headroom: (host: HostCapacity, vm: VmDemand, policy: SchedulerPolicy, sdn?: SdnView) => number;
    readonly need: (vm: VmDemand) => number;
  };
}

export const inZone = (h: HostCapacity, vm: VmDemand): boolean => !vm.zone || h.zone === vm.zone;

/** Dedicated VMs go only to their tenant's hosts; everything else stays off dedicated hosts. */
export const inPool = (h: HostCapacity, vm: VmDemand): boolean => (vm.resourceType === 'dedicated'
  ? h.pool === 'dedicated' && h.dedicatedTenant === vm.tenantId
  : h.pool === 'shared');

export const notExcluded = (h: HostCapacity, vm: VmDemand): boolean =>
  vm.excludeHosts === undefined || vm.excludeHosts.length === 0 || !vm.excludeHosts.includes(h.hostId);

export const isUp = (h: HostCapacity): boolean => h.up;
export const notInMaintenance = (h: HostCapacity): boolean => !h.maintenance;
/** A plain loop: Array#includes is a builtin call the scan cannot inline. */
export function runsArch(h: HostCapacity, vm: VmDemand): boolean {
  const archs = h.architectures;
  for (let i = 0; i < archs.length; i++) if (archs[i] === vm.architecture) return true;
  return false;
}
export const hasVcpus = (h: HostCapacity, vm: VmDemand, p: SchedulerPolicy): boolean => cpuFits(h, vm, p.overcommit);
export const hasMemory = (h: HostCapacity, vm: VmDemand, p: SchedulerPolicy): boolean => memoryFits(h, vm, p.overcommit);

export const zoneFilter: Filter = { name: 'zone', pass: inZone, rejects: (vm) => `outside zone ${vm.zone}` };
export const poolFilter: Filter = {
  name: 'pool',
  pass: inPool,
  rejects: (vm) => (vm.resourceType === 'dedicated' ? `not dedicated to ${vm.tenantId}` : 'in the dedicated pool'),
};
export const excludeFilter: Filter = { name: 'exclude', pass: notExcluded, rejects: () => 'excluded' };
export const upFilter: Filter = { name: 'up', pass: isUp, rejects: () => 'with the agent down' };
export const maintenanceFilter: Filter = { name: 'maintenance', pass: notInMaintenance, rejects: () => 'in maintenance' };
export const architectureFilter: Filter = { name: 'architecture', pass: runsArch, rejects: (vm) => `without ${vm.architecture}` };
export const cpuFilter: Filter = {
  name: 'cpu',
  pass: hasVcpus,
  rejects: () => 'lack vCPUs',
  shortfall: { unit: 'vCPUs', headroom: (h, vm, p) => cpuHeadroom(h, vm, p.overcommit), need: (vm) => vm.vcpus },
};
export const memoryFilter: Filter = {
  name: 'memory',
  pass: hasMemory,
  rejects: () => 'lack memory',
  shortfall: { unit: 'MiB', headroom: (h, vm, p) => memoryHeadroom(h, vm, p.overcommit), need: (vm) => vm.memoryMiB },
};

/** Order matters (see Filter); CapacityIndex relies on zone and pool coming first. */
export const CORE_FILTERS: readonly Filter[] = [
  zoneFilter, poolFilter, excludeFilter, upFilter, maintenanceFilter, architectureFilter, cpuFilter, memoryFilter,
];

/**
 * CORE_FILTERS as one function. Calling filters through the list costs a megamorphic call each
 * (~15 ns, eight per host: most of a 10,000-host scan); direct calls to the same predicates get
 * inlined. Keep it in step with CORE_FILTERS — the property tests compare scans with the list.
 */
export const passesCore = (h: HostCapacity, vm: VmDemand, p: SchedulerPolicy): boolean =>
  inZone(h, vm) && inPool(h, vm) && notExcluded(h, vm) && isUp(h) && notInMaintenance(h) && runsArch(h, vm)
  && hasVcpus(h, vm, p) && hasMemory(h, vm, p);

/**
 * VLAN-pool exhaustion is NO_CAPACITY (issue 5): a host is out when one of the VM's networks has no
 * VLAN in the host's zone yet and the zone has too few free IDs to give one to each such network,
 * or likewise in the gateway zone, where every network with members anywhere holds a VLAN.
 */
export function vlansAvailable(h: HostCapacity, vm: VmDemand, _p?: SchedulerPolicy, sdn: SdnView = NO_SDN): boolean {
  const nets = vm.networks;
  if (nets === undefined || nets.length === 0) return true;
  const need = missingVlans(nets, h.zone);
  if (need > 0 && need > sdn.freeVlans(h.zone)) return false;
  const gw = sdn.gatewayZone;
  if (gw === null || gw === h.zone) return true;
  const gwNeed = missingVlans(nets, gw);
  return gwNeed === 0 || gwNeed <= sdn.freeVlans(gw);
}

/** The edge's MAC table must hold the VM's NICs too. A host with no known edge is not limited. */
export function withinMacBudget(h: HostCapacity, vm: VmDemand, _p?: SchedulerPolicy, sdn: SdnView = NO_SDN): boolean {
  const n = nicCount(vm);
  if (n === 0) return true;
  const e = edgeOf(h, sdn);
  return e === undefined || e.macs + n <= e.macBudget;
}

export const vlanPoolFilter: Filter = {
  name: 'vlanPool',
  pass: vlansAvailable,
  rejects: () => "in zones with no VLAN ID left for the VM's networks (or none left in the gateway zone)",
};
export const macBudgetFilter: Filter = {
  name: 'macBudget',
  pass: withinMacBudget,
  rejects: () => 'behind edges whose MAC table budget is full',
  shortfall: {
    unit: 'MAC entries',
    headroom: (h, _vm, _p, sdn = NO_SDN) => { const e = edgeOf(h, sdn); return e ? Math.max(0, e.macBudget - e.macs) : Infinity; },
    need: nicCount,
  },
};

/** After the core; scan answers them through SdnMemo (sdn-memo.ts), once per zone and edge. */
export const SDN_FILTERS: readonly Filter[] = [vlanPoolFilter, macBudgetFilter];

/** New filters append here (after the core and SDN ones); they run through the list, after those. */
export const FILTERS: readonly Filter[] = [...CORE_FILTERS, ...SDN_FILTERS];
