import { reserves } from './capacity.js';
import { NO_SDN, edgeOf, type SdnView } from './sdn-view.js';
import type { HostCapacity, SchedulerPolicy, VmDemand } from './types.js';

/** Scores a host that passed every filter; higher wins. Scores stay within [0, 1] so weights compare. */
export type Weigher = (host: HostCapacity, vm: VmDemand, policy: SchedulerPolicy, sdn?: SdnView) => number;

/**
 * The fraction of physical capacity left uncommitted once the VM is placed, counting best-effort
 * use at 1/ratio: that is what the capacity rule charges it against the physical amount.
 */
function freeFractionAfter(P: number, G: number, BE: number, d: number, ratio: number, reserved: boolean): number {
  if (P <= 0) return 0;
  return reserved ? (P - G - d - BE / ratio) / P : (P - G - (BE + d) / ratio) / P;
}

export const freeMemory: Weigher = (h, vm, p) => freeFractionAfter(
  h.memoryMiB, h.used.guaranteed.memoryMiB, h.used.bestEffort.memoryMiB, vm.memoryMiB, p.overcommit.memory, reserves(vm));

export const freeVcpu: Weigher = (h, vm, p) => freeFractionAfter(
  h.vcpus, h.used.guaranteed.vcpus, h.used.bestEffort.vcpus, vm.vcpus, p.overcommit.vcpu, reserves(vm));

/**
 * NHN's VLAN affinity: the share of the VM's networks whose VLAN in the host's zone the host's edge
 * already carries. Placing a network's VMs behind the edges that already trunk its VLAN keeps edge
 * trunks short and their MAC tables small (every edge on a VLAN learns every MAC on it).
 */
export const vlanAffinity: Weigher = (h, vm, _p, sdn = NO_SDN) => {
  const nets = vm.networks;
  if (nets === undefined || nets.length === 0) return 0;
  const e = edgeOf(h, sdn);
  if (e === undefined) return 0;
  let carried = 0;
  for (let i = 0; i < nets.length; i++) {
    const v = nets[i].zoneVlans[h.zone];
    if (v !== undefined && e.carries(v)) carried++;
  }
  return carried / nets.length;
};

/**
 * Policies name weighers from here; new ones are added to this table. freeMemory and freeVcpu
 * and vlanAffinity are also called directly by the scan (see scan.ts); others are called through the table.
 */
export const WEIGHERS: Readonly<Record<string, Weigher>> = { freeMemory, freeVcpu, vlanAffinity };
