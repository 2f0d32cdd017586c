/**
 * What the SDN filters and weigher read besides the host itself: the host's edge switch (MAC entries
 * against its budget, VLANs it carries) and each zone's free VLAN IDs. place() reads it from a
 * Snapshot (snapshotView); CapacityIndex keeps a mutable one (sdn-load.ts) that follows its
 * placements. Both answer the same questions, so the index chooses what place() would.
 */
import type { EdgeCapacity, HostCapacity, NetworkDemand, Snapshot, VmDemand } from './types.js';

export interface EdgeView {
  readonly edgeId: string;
  readonly macBudget: number;
  readonly macs: number;
  carries(vlan: number): boolean;
}

export interface SdnView {
  edge(edgeId: string): EdgeView | undefined;
  /** Free VLAN IDs in the zone's pool; Infinity when nothing is known about it. */
  freeVlans(zone: string): number;
  readonly gatewayZone: string | null;
}

/** A view with no edges and no pools: every SDN filter passes, the weigher scores 0. */
export const NO_SDN: SdnView = Object.freeze({ edge: () => undefined, freeVlans: () => Infinity, gatewayZone: null });

/** MAC entries the VM adds to its edge. */
export const nicCount = (vm: VmDemand): number => vm.nics ?? vm.networks?.length ?? 0;

/** Whether any SDN rule can apply to the VM: scans skip the SDN checks otherwise. */
export const usesSdn = (vm: VmDemand): boolean => nicCount(vm) > 0 || (vm.networks !== undefined && vm.networks.length > 0);

/** How many of the networks hold no VLAN yet in the zone (each would take one from its pool). */
export function missingVlans(networks: readonly NetworkDemand[], zone: string): number {
  let n = 0;
  for (let i = 0; i < networks.length; i++) if (networks[i].zoneVlans[zone] === undefined) n++;
  return n;
}

export const edgeOf = (h: HostCapacity, sdn: SdnView): EdgeView | undefined =>
  (h.edgeId === undefined || h.edgeId === null ? undefined : sdn.edge(h.edgeId));

/** An edge from a snapshot; its VLAN set is built on first use, since most edges are never asked. */
class SnapshotEdge implements EdgeView {
  private set: Set<number> | null = null;
  constructor(private readonly e: EdgeCapacity) {}
  get edgeId(): string { return this.e.edgeId; }
  get macBudget(): number { return this.e.macBudget; }
  get macs(): number { return this.e.macs; }
  carries(vlan: number): boolean {
    this.set ??= new Set(this.e.vlans);
    return this.set.has(vlan);
  }
}

export function snapshotView(s: Snapshot): SdnView {
  if (!s.edges?.length && !s.vlanPools?.length && (s.gatewayZone ?? null) === null) return NO_SDN;
  const edges = new Map((s.edges ?? []).map((e) => [e.edgeId, new SnapshotEdge(e)]));
  const pools = new Map((s.vlanPools ?? []).map((p) => [p.zone, p.free]));
  return {
    edge: (id) => edges.get(id),
    freeVlans: (zone) => pools.get(zone) ?? Infinity,
    gatewayZone: s.gatewayZone ?? null,
  };
}
