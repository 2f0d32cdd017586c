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
}

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
}

export interface Overcommit { vcpu: number; memory: number }

export interface Snapshot { hosts: HostCapacity[] }

/** `reason` is meant for people, e.g. "no host can take vm-1: 3 in maintenance, 5 lack memory (…)". */
export type Placement = { ok: true; hostId: string } | { ok: false; reason: string };

/** A weigher from the registry in weighers.ts and its weight; a negative weight inverts it (pack instead of spread). */
export interface WeigherSpec { name: string; weight: number }

export interface SchedulerPolicy {
  overcommit: Overcommit;
  weighers: readonly WeigherSpec[];
}
