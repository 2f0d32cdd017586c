import { applyPlacement, releasePlacement } from './capacity.js';
import { DEFAULT_POLICY, compile, type Compiled } from './policy.js';
import { explain } from './reason.js';
import { scan } from './scan.js';
import type { HostCapacity, Placement, SchedulerPolicy, Snapshot, VmDemand } from './types.js';

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
 * zone+pool, so a zone-pinned or dedicated VM scans only the hosts it could ever use.
 */
export class CapacityIndex {
  private readonly byId = new Map<string, HostCapacity>();
  private readonly buckets = new Map<string, HostCapacity[]>();
  private readonly zoneSize = new Map<string, number>();
  private readonly c: Compiled;

  constructor(snapshot: Snapshot, readonly policy: SchedulerPolicy = DEFAULT_POLICY) {
    this.c = compile(policy);
    for (const h of snapshot.hosts) this.upsert(h);
  }

  get size(): number { return this.byId.size; }

  /** The index's own record of a host; read it, do not change it (use upsert). */
  get(hostId: string): Readonly<HostCapacity> | undefined { return this.byId.get(hostId); }

  /** A deep copy, e.g. to hand to place() or to check invariants. */
  snapshot(): Snapshot { return { hosts: [...this.byId.values()].map(cloneHost) }; }

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
    const h = scan(hosts, vm, this.c);
    if (h) return { ok: true, hostId: h.hostId };
    // Hosts never scanned are charged as a full scan would charge them: zone first, then pool.
    const inZone = vm.zone ? this.zoneSize.get(vm.zone) ?? 0 : this.byId.size;
    const pre = { zone: this.byId.size - inZone, pool: inZone - hosts.length };
    return { ok: false, reason: explain(hosts, vm, this.c, pre) };
  }

  /** Chooses a host and records the VM's usage on it. */
  place(vm: VmDemand): Placement {
    const p = this.choose(vm);
    if (p.ok) applyPlacement(this.byId.get(p.hostId)!, vm);
    return p;
  }

  /** Records a VM placed elsewhere (e.g. by a scheduler run on another controller). */
  apply(hostId: string, vm: VmDemand): void { applyPlacement(this.must(hostId), vm); }

  /** Takes a deleted or migrated VM's usage off its host. */
  release(hostId: string, vm: VmDemand): void { releasePlacement(this.must(hostId), vm); }

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
