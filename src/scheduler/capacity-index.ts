import { applyPlacement, releasePlacement } from './capacity.js';
import { DEFAULT_POLICY, compile, type Compiled } from './policy.js';
import { explain } from './reason.js';
import { scan } from './scan.js';
import { SdnLoad, type VlanAllocator } from './sdn-load.js';
import { NO_SDN, missingVlans, type SdnView } from './sdn-view.js';
import type { EdgeCapacity, HostCapacity, Placement, SchedulerPolicy, Snapshot, VlanPool, VmDemand } from './types.js';

// Pool keys: a VM can only ever land in the bucket of its own key (the pool filter), so a
// placement scans that bucket alone. '\0' keeps tenant ids from colliding with the fixed keys.
const SHARED = 's';
const hostPoolKey = (h: HostCapacity): string =>
  (h.pool === 'shared' ? SHARED : h.dedicatedTenant === null ? 'u' : `d\0${h.dedicatedTenant}`);
const vmPoolKey = (vm: VmDemand): string => (vm.resourceType === 'dedicated' ? `d\0${vm.tenantId}` : SHARED);
const zoneKey = (zone: string, pool: string): string => `${zone}\u0001${pool}`;

const cloneHost = (h: HostCapacity): HostCapacity => ({
  ...h,
  architectures: [...h.architectures],
  used: { guaranteed: { ...h.used.guaranteed }, bestEffort: { ...h.used.bestEffort } },
});

const NONE: readonly HostCapacity[] = [];

/**
 * A mutable copy of a snapshot for placing many VMs in a row (bulk creates, draining a host):
 * each placement is recorded at once so the next one sees it. Hosts are bucketed by pool and by
 * zone+pool, so a zone-pinned or dedicated VM scans only the hosts it could ever use. The
 * snapshot's edges and VLAN pools follow the placements too (sdn-load.ts).
 */
export class CapacityIndex {
  private readonly byId = new Map<string, HostCapacity>();
  private readonly buckets = new Map<string, HostCapacity[]>();
  private readonly zoneSize = new Map<string, number>();
  private readonly c: Compiled;
  private readonly sdn: SdnLoad;

  constructor(snapshot: Snapshot, readonly policy: SchedulerPolicy = DEFAULT_POLICY) {
    this.c = compile(policy);
    this.sdn = new SdnLoad(snapshot);
    for (const h of snapshot.hosts) this.upsert(h);
  }

  /** The view the filters read; NO_SDN while there is none, which lets scans skip the SDN checks. */
  private get view(): SdnView { return this.sdn.empty ? NO_SDN : this.sdn; }

  get size(): number { return this.byId.size; }

  /** The index's own record of a host; read it, do not change it (use upsert). */
  get(hostId: string): Readonly<HostCapacity> | undefined { return this.byId.get(hostId); }

  /** A deep copy, e.g. to hand to place() or to check invariants. */
  snapshot(): Snapshot { return { hosts: [...this.byId.values()].map(cloneHost), ...this.sdn.snapshotFields() }; }

  /** Adds an edge switch or replaces its record (its VLANs then count as the snapshot's, see sdn-load.ts). */
  upsertEdge(edge: EdgeCapacity): void { this.sdn.upsertEdge(edge); }

  /** Sets a zone's count of free VLAN IDs, e.g. after networks gave theirs back. */
  setVlanPool(pool: VlanPool): void { this.sdn.setVlanPool(pool); }

  /** Adds a host or replaces its record (maintenance, up, capacity or pool changed). */
  upsert(host: HostCapacity): void {
    this.remove(host.hostId);
    const h = cloneHost(host);
    this.byId.set(h.hostId, h);
    const pool = hostPoolKey(h);
    this.bucket(pool).push(h);
    this.bucket(zoneKey(h.zone, pool)).push(h);
    this.zoneSize.set(h.zone, (this.zoneSize.get(h.zone) ?? 0) + 1);
  }

  remove(hostId: string): void {
    const h = this.byId.get(hostId);
    if (!h) return;
    this.byId.delete(hostId);
    const pool = hostPoolKey(h);
    for (const key of [pool, zoneKey(h.zone, pool)]) {
      const b = this.bucket(key);
      const at = b.indexOf(h);
      if (at >= 0) b.splice(at, 1);
    }
    this.zoneSize.set(h.zone, (this.zoneSize.get(h.zone) ?? 1) - 1);
  }

  /** Chooses a host without recording anything. */
  choose(vm: VmDemand): Placement {
    const pool = vmPoolKey(vm);
    const hosts = this.buckets.get(vm.zone ? zoneKey(vm.zone, pool) : pool) ?? NONE;
    const sdn = this.view;
    const h = scan(hosts, vm, this.c, sdn);
    if (h) return { ok: true, hostId: h.hostId };
    // Hosts never scanned are charged as a full scan would charge them: zone first, then pool.
    const inZone = vm.zone ? this.zoneSize.get(vm.zone) ?? 0 : this.byId.size;
    const pre = { zone: this.byId.size - inZone, pool: inZone - hosts.length };
    return { ok: false, reason: explain(hosts, vm, this.c, pre, sdn) };
  }

  /**
   * Chooses a host and records the VM on it. `allocate`, when given, is asked for the VLANs of the
   * VM's networks that have none in the chosen zone yet (the caller's network model hands them
   * out), so the edge is seen carrying them by the next placement.
   */
  place(vm: VmDemand, allocate?: VlanAllocator): Placement {
    const p = this.choose(vm);
    if (!p.ok) return p;
    const h = this.byId.get(p.hostId)!;
    let allocated: Readonly<Record<string, number>> | undefined;
    if (allocate && vm.networks && missingVlans(vm.networks, h.zone) > 0) {
      allocated = allocate(h.zone, vm.networks.filter((n) => n.zoneVlans[h.zone] === undefined).map((n) => n.networkId));
    }
    this.apply(p.hostId, vm, allocated);
    return p;
  }

  /**
   * Records a VM placed elsewhere (e.g. by a scheduler run on another controller): its usage, its
   * NICs and VLANs on the host's edge, and a VLAN ID from the pool for each network that had none
   * in the zone (`allocated`: the VLANs they were given there).
   */
  apply(hostId: string, vm: VmDemand, allocated?: Readonly<Record<string, number>>): void {
    const h = this.must(hostId);
    applyPlacement(h, vm);
    this.sdn.record(h, vm, allocated);
  }

  /** Takes a deleted or migrated VM's usage off its host, and its NICs and VLANs off the host's edge. */
  release(hostId: string, vm: VmDemand): void {
    const h = this.must(hostId);
    releasePlacement(h, vm);
    this.sdn.unrecord(h, vm);
  }

  private must(hostId: string): HostCapacity {
    const h = this.byId.get(hostId);
    if (!h) throw new Error(`unknown host ${hostId}`);
    return h;
  }

  private bucket(key: string): HostCapacity[] {
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = []));
    return b;
  }
}
