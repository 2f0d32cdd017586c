/** Scheduler vocabulary: what a host offers, what a VM asks for, and the policy that weighs them. */

export type ResourceType = 'best-effort' | 'guaranteed' | 'dedicated';
export type Arch = 'x86_64' | 'i686';

export interface Usage { vcpus: number; memoryMiB: number }

export interface HostCapacity {
  hostId: string;
  zone: string;
  /** Physical capacity; overcommit is applied by the policy, never baked in here. */
  vcpus: number;
  memoryMiB: number;
  pool: 'shared' | 'dedicated';
  dedicatedTenant: string | null;
  maintenance: boolean;
  /** The agent is alive; a host whose agent is gone cannot start anything. */
  up: boolean;
  /** An x86_64 host lists both, since it runs i686 guests too. */
  architectures: Arch[];
  /** Dedicated VMs count as guaranteed: both reserve 1:1. */
  used: { guaranteed: Usage; bestEffort: Usage };
  /** The edge switch the host hangs off (Snapshot.edges); absent or null: no edge limit or preference applies. */
  edgeId?: string | null;
}

/** One private network of a VM, with the VLANs it already holds (zone → VLAN ID). */
export interface NetworkDemand { networkId: string; zoneVlans: Readonly<Record<string, number>> }

export interface VmDemand {
  vmId: string;
  tenantId: string;
  vcpus: number;
  memoryMiB: number;
  resourceType: ResourceType;
  architecture: Arch;
  zone?: string | null;
  /** Hosts to avoid, e.g. the source of a migration or a host that just failed to start the VM. */
  excludeHosts?: string[];
  /** The VM's private networks, each once (SDN filters and weighers); absent: none. */
  networks?: readonly NetworkDemand[];
  /** MAC entries the VM adds to its edge's table: its NIC count. Defaults to networks.length. */
  nics?: number;
}

export interface Overcommit { vcpu: number; memory: number }

/**
 * An edge switch as the scheduler sees it: how many MAC entries its table holds (the VM NICs behind
 * it) against its budget, and the VLANs its trunks carry (DESIGN.md §7, NHN).
 */
export interface EdgeCapacity { edgeId: string; zone: string; macBudget: number; macs: number; vlans: number[] }

/** Free VLAN IDs in a zone's pool. A zone not listed is not limited. */
export interface VlanPool { zone: string; free: number }

export interface Snapshot {
  hosts: HostCapacity[];
  /** Optional SDN view: without it, the edge and VLAN filters pass and the VLAN weigher scores 0. */
  edges?: EdgeCapacity[];
  vlanPools?: VlanPool[];
  /** A network needs a VLAN in the gateway zone too, wherever its VMs run (src/sdn/model/vlan-needs.ts). */
  gatewayZone?: string | null;
}

/** `reason` is meant for people, e.g. "no host can take vm-1: 3 in maintenance, 5 lack memory (…)". */
export type Placement = { ok: true; hostId: string } | { ok: false; reason: string };

/** A weigher from the registry in weighers.ts and its weight; a negative weight inverts it (pack instead of spread). */
export interface WeigherSpec { name: string; weight: number }

export interface SchedulerPolicy {
  overcommit: Overcommit;
  weighers: readonly WeigherSpec[];
}
