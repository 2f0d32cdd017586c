/**
 * CapacityIndex's own SDN view: edges and VLAN pools that follow the placements the index records,
 * so the next placement sees them (the MAC entries and VLANs a VM added to its edge, the VLAN IDs
 * its networks took from the pools). snapshot() turns it back into Snapshot fields that
 * snapshotView reads the same way.
 */
import { missingVlans, nicCount, type EdgeView, type SdnView } from './sdn-view.js';
import type { EdgeCapacity, HostCapacity, Snapshot, VlanPool, VmDemand } from './types.js';

/** Networks without a VLAN in a zone → the VLANs the caller gave them there (see CapacityIndex.place). */
export type VlanAllocator = (zone: string, networkIds: readonly string[]) => Readonly<Record<string, number>>;

/**
 * VLANs count the VMs recorded on them, so one goes when the last of them is released. VLANs the
 * snapshot listed count as Infinity: the index never learnt who uses them, so it never drops them.
 */
class EdgeLoad implements EdgeView {
  readonly refs = new Map<number, number>();
  constructor(readonly edgeId: string, readonly zone: string, readonly macBudget: number, public macs: number, vlans: readonly number[]) {
    for (const v of vlans) this.refs.set(v, Infinity);
  }
  carries(vlan: number): boolean { return this.refs.has(vlan); }
  add(vlan: number, by: 1 | -1): void {
    const n = (this.refs.get(vlan) ?? 0) + by;
    if (n <= 0) this.refs.delete(vlan); else this.refs.set(vlan, n);
  }
}

export class SdnLoad implements SdnView {
  private readonly edges = new Map<string, EdgeLoad>();
  private readonly pools = new Map<string, number>();
  gatewayZone: string | null;

  constructor(s: Snapshot) {
    for (const e of s.edges ?? []) this.upsertEdge(e);
    for (const p of s.vlanPools ?? []) this.setVlanPool(p);
    this.gatewayZone = s.gatewayZone ?? null;
  }

  /** True while it holds nothing: scans then skip the SDN checks altogether. */
  get empty(): boolean { return this.edges.size === 0 && this.pools.size === 0 && this.gatewayZone === null; }

  edge(edgeId: string): EdgeView | undefined { return this.edges.get(edgeId); }
  freeVlans(zone: string): number { return this.pools.get(zone) ?? Infinity; }

  upsertEdge(e: EdgeCapacity): void { this.edges.set(e.edgeId, new EdgeLoad(e.edgeId, e.zone, e.macBudget, e.macs, e.vlans)); }
  setVlanPool(p: VlanPool): void { this.pools.set(p.zone, p.free); }

  /**
   * The VM is now on `h`: its NICs join the edge's table and its networks' VLANs in the zone its
   * trunks; each network without a VLAN in the zone (or in the gateway zone) takes one from that
   * pool. `allocated` names the VLANs the caller gave those networks in the host's zone.
   */
  record(h: HostCapacity, vm: VmDemand, allocated: Readonly<Record<string, number>> = {}): void {
    const nets = vm.networks ?? [];
    // A network the caller just gave a VLAN counts as new here even if its demand already shows it.
    let fresh = 0;
    for (const n of nets) if (n.zoneVlans[h.zone] === undefined || Object.hasOwn(allocated, n.networkId)) fresh++;
    this.charge(h.zone, fresh);
    const gw = this.gatewayZone;
    if (gw !== null && gw !== h.zone) this.charge(gw, missingVlans(nets, gw));
    const e = this.hostEdge(h);
    if (!e) return;
    e.macs += nicCount(vm);
    for (const n of nets) {
      const v = allocated[n.networkId] ?? n.zoneVlans[h.zone];
      if (v !== undefined) e.add(v, 1);
    }
  }

  /**
   * Takes the VM off its edge (call it with the VM's networks as they are now, VLANs included).
   * VLAN IDs stay charged to the pools: the network model gives them back with a network's last
   * member, and setVlanPool tells the index.
   */
  unrecord(h: HostCapacity, vm: VmDemand): void {
    const e = this.hostEdge(h);
    if (!e) return;
    e.macs = Math.max(0, e.macs - nicCount(vm));
    for (const n of vm.networks ?? []) {
      const v = n.zoneVlans[h.zone];
      if (v !== undefined) e.add(v, -1);
    }
  }

  /** Snapshot fields standing for this view (omitted when empty, so plain snapshots stay plain). */
  snapshotFields(): Pick<Snapshot, 'edges' | 'vlanPools' | 'gatewayZone'> {
    const out: Pick<Snapshot, 'edges' | 'vlanPools' | 'gatewayZone'> = {};
    if (this.edges.size) {
      out.edges = [...this.edges.values()].map((e) => ({
        edgeId: e.edgeId, zone: e.zone, macBudget: e.macBudget, macs: e.macs, vlans: [...e.refs.keys()].sort((a, b) => a - b),
      }));
    }
    if (this.pools.size) out.vlanPools = [...this.pools].map(([zone, free]) => ({ zone, free }));
    if (this.gatewayZone !== null) out.gatewayZone = this.gatewayZone;
    return out;
  }

  private hostEdge(h: HostCapacity): EdgeLoad | undefined {
    return h.edgeId === undefined || h.edgeId === null ? undefined : this.edges.get(h.edgeId);
  }

  private charge(zone: string, n: number): void {
    const free = this.pools.get(zone);
    if (n > 0 && free !== undefined) this.pools.set(zone, Math.max(0, free - n));
  }
}
