import { DEFAULT_POLICY, compile } from './policy.js';
import { explain } from './reason.js';
import { scan } from './scan.js';
import { NO_SDN, snapshotView, type SdnView } from './sdn-view.js';
import type { HostCapacity, Placement, SchedulerPolicy, Snapshot, VmDemand } from './types.js';

/** Picks a host for the VM from the snapshot. Pure: the snapshot is left as it was. */
export function place(snapshot: Snapshot, vm: VmDemand, policy: SchedulerPolicy = DEFAULT_POLICY): Placement {
  const c = compile(policy);
  const sdn = snapshotView(snapshot);
  const h = scan(snapshot.hosts, vm, c, sdn);
  return h ? { ok: true, hostId: h.hostId } : { ok: false, reason: explain(snapshot.hosts, vm, c, {}, sdn) };
}

/**
 * The name of the first filter that rejects the host, or null when the host could take the VM.
 * `sdn` (snapshotView of the host's snapshot) is needed only for the edge and VLAN filters.
 */
export function rejectedBy(host: HostCapacity, vm: VmDemand, policy: SchedulerPolicy = DEFAULT_POLICY, sdn: SdnView = NO_SDN): string | null {
  return compile(policy).filters.find((f) => !f.pass(host, vm, policy, sdn))?.name ?? null;
}

export const fits = (host: HostCapacity, vm: VmDemand, policy: SchedulerPolicy = DEFAULT_POLICY, sdn: SdnView = NO_SDN): boolean =>
  rejectedBy(host, vm, policy, sdn) === null;
