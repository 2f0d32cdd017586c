/*
 * Capacity rule — the invariant every placement keeps, for cpu and memory separately:
 *
 *     G ≤ P   and   BE ≤ (P − G) × ratio
 *
 * P is the host's physical amount, G the guaranteed total (dedicated VMs included), BE the
 * best-effort total, ratio the policy's overcommit for that dimension. Guaranteed VMs reserve
 * 1:1, so they can never be squeezed; best-effort VMs share only what guaranteed ones left.
 *
 *   best-effort VM of size d fits:  BE + d ≤ (P − G) × ratio
 *   guaranteed VM of size d fits:   G + d ≤ P  and  BE ≤ (P − G − d) × ratio
 *
 * The second clause of the guaranteed rule matters: reserving d shrinks the best-effort share,
 * and a placement must not push the best-effort VMs already on the host over their limit.
 * Comparisons stay in multiplied form so integer usage never meets a rounding division.
 */
import type { HostCapacity, Overcommit, Usage, VmDemand } from './types.js';

/** Guaranteed and dedicated VMs both draw on the 1:1 reserved share. */
export const reserves = (vm: VmDemand): boolean => vm.resourceType !== 'best-effort';

export function dimensionFits(P: number, G: number, BE: number, d: number, ratio: number, reserved: boolean): boolean {
  return reserved ? G + d <= P && BE <= (P - G - d) * ratio : BE + d <= (P - G) * ratio;
}

/** The largest size that would still fit; only for telling people how close a host came. */
export function dimensionHeadroom(P: number, G: number, BE: number, ratio: number, reserved: boolean): number {
  return Math.max(0, reserved ? P - G - BE / ratio : (P - G) * ratio - BE);
}

export const cpuFits = (h: HostCapacity, vm: VmDemand, oc: Overcommit): boolean =>
  dimensionFits(h.vcpus, h.used.guaranteed.vcpus, h.used.bestEffort.vcpus, vm.vcpus, oc.vcpu, reserves(vm));

export const memoryFits = (h: HostCapacity, vm: VmDemand, oc: Overcommit): boolean =>
  dimensionFits(h.memoryMiB, h.used.guaranteed.memoryMiB, h.used.bestEffort.memoryMiB, vm.memoryMiB, oc.memory, reserves(vm));

export const cpuHeadroom = (h: HostCapacity, vm: VmDemand, oc: Overcommit): number =>
  dimensionHeadroom(h.vcpus, h.used.guaranteed.vcpus, h.used.bestEffort.vcpus, oc.vcpu, reserves(vm));

export const memoryHeadroom = (h: HostCapacity, vm: VmDemand, oc: Overcommit): number =>
  dimensionHeadroom(h.memoryMiB, h.used.guaranteed.memoryMiB, h.used.bestEffort.memoryMiB, oc.memory, reserves(vm));

export function holdsInvariant(h: HostCapacity, oc: Overcommit): boolean {
  const g = h.used.guaranteed, be = h.used.bestEffort;
  return g.vcpus <= h.vcpus && be.vcpus <= (h.vcpus - g.vcpus) * oc.vcpu
    && g.memoryMiB <= h.memoryMiB && be.memoryMiB <= (h.memoryMiB - g.memoryMiB) * oc.memory;
}

const bucketOf = (h: HostCapacity, vm: VmDemand): Usage => (reserves(vm) ? h.used.guaranteed : h.used.bestEffort);

/** Records the VM's usage on the host, in place. It does not check fit: callers placed it first. */
export function applyPlacement(h: HostCapacity, vm: VmDemand): void {
  const u = bucketOf(h, vm);
  u.vcpus += vm.vcpus;
  u.memoryMiB += vm.memoryMiB;
}

/** Takes the VM's usage back off the host. Going below zero means the books are wrong, so it throws. */
export function releasePlacement(h: HostCapacity, vm: VmDemand): void {
  const u = bucketOf(h, vm);
  if (u.vcpus < vm.vcpus || u.memoryMiB < vm.memoryMiB) {
    throw new Error(`release of ${vm.vmId} from ${h.hostId} exceeds its recorded ${vm.resourceType} usage`);
  }
  u.vcpus -= vm.vcpus;
  u.memoryMiB -= vm.memoryMiB;
}
