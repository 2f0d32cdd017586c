/**
 * bench/sdn: a simulated datacenter — 10 zones × 1,000 hosts behind 50 edges (20 hosts each),
 * 50,000 private networks, 200,000 VMs — placed by the real scheduler (CapacityIndex, the same scan
 * as place()) twice, with and without the VLAN-affinity weigher, then compiled to device configs.
 *
 * Reports: full compile time (goal < 1 s); one VM start through the incremental compiler (goal
 * < 1 ms, median and p99 over --starts single-VM starts); VLANs and MAC entries per edge with and
 * without the weigher; VLAN IDs used per zone against the 4,094 ceiling that stopped GIO (anchor).
 *
 * Workload (seeded, so every run is the same):
 *  - tenants own 5 private networks each (50,000 networks → 10,000 tenants); a tenant's size (its
 *    share of the VMs) is lognormal (σ = 1.5: most tenants have a handful of VMs, a few have
 *    hundreds); a NIC picks among its tenant's networks with weights 1, 1/2, … 1/5 (a main network
 *    and smaller ones), so small tenants leave some networks without a running VM;
 *  - a VM has 1 NIC (60%), 2 (30%) or 3 (10%), on distinct networks of its tenant;
 *  - every tenant has a home zone; 10% of tenants, and every tenant expected to run over 300 VMs,
 *    use a second zone (their L2 networks then span zones over VXLAN); a VM is pinned to one of its
 *    tenant's zones, as a user picks the zone when creating it;
 *  - hosts: 64 vCPUs, 256 GiB; VMs 1–8 vCPUs, 2–16 GiB, 70% best-effort; edges hold --mac-budget
 *    local MAC entries (VM NICs behind them, default 1,000).
 * No zone is the gateway zone here: under the rule that every network with members anywhere holds
 * a VLAN there, the gateway zone would need one ID per active network (printed below).
 *
 * Usage: node dist/bench/sdn.js [--scale 0.1] [--starts N] [--mac-budget N] [--seed N]
 */
import { loadavg } from 'node:os';
import { CapacityIndex, makePolicy, type EdgeCapacity, type HostCapacity, type NetworkDemand, type SchedulerPolicy, type VmDemand } from '../src/scheduler/index.js';
import { SdnState, compile } from '../src/sdn/compiler/index.js';
import { VLAN_MAX, VLAN_MIN, type DesiredConfig, type PlacedNetwork, type PlacedNic, type Placement, type Topology } from '../src/sdn/types.js';
import { summarize } from './lib/stats.js';
import { prng } from './lib/prng.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}
const SCALE = flag('scale', 1);
const ZONES = 10, HOSTS_PER_EDGE = 20;
const HOSTS_PER_ZONE = Math.max(HOSTS_PER_EDGE, Math.round(1000 * SCALE / HOSTS_PER_EDGE) * HOSTS_PER_EDGE);
const EDGES_PER_ZONE = HOSTS_PER_ZONE / HOSTS_PER_EDGE;
const NETS_PER_TENANT = 5;
const NETWORKS = Math.round(50_000 * SCALE / NETS_PER_TENANT) * NETS_PER_TENANT;
const TENANTS = NETWORKS / NETS_PER_TENANT;
const VMS = Math.round(200_000 * SCALE);
const STARTS = Math.round(flag('starts', 10_000));
const MAC_BUDGET = Math.round(flag('mac-budget', 1000));
const SEED = Math.round(flag('seed', 20031108));
const GIO_CEILING = 4094;
const USABLE = VLAN_MAX - VLAN_MIN + 1;

// ------------------------------------------------------------------ seeded randomness

const rnd = prng(SEED);
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
/** Index into cumulative weights `cum` (last = total) by binary search. */
function pickCum(cum: Float64Array): number {
  const x = rnd() * cum[cum.length - 1];
  let lo = 0, hi = cum.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (cum[mid] > x) hi = mid; else lo = mid + 1; }
  return lo;
}
const hex12 = (n: number): string => n.toString(16).padStart(12, '0');
const zoneId = (z: number): string => `z${String(z).padStart(2, '0')}`;

// ------------------------------------------------------------------ the datacenter

const topology: Topology = { zones: [], edges: [], hosts: [] };
const hostCaps: HostCapacity[] = [];
const edgeCaps: EdgeCapacity[] = [];
for (let z = 0; z < ZONES; z++) {
  topology.zones.push({ zoneId: zoneId(z), gateway: { underlayIp: `198.51.100.${z + 1}`, downlink: 'gwd0' }, gatewayZone: false });
  for (let e = 0; e < EDGES_PER_ZONE; e++) {
    const edgeId = `e-${zoneId(z)}-${String(e).padStart(2, '0')}`;
    topology.edges.push({ edgeId, zoneId: zoneId(z), uplink: 'up0', macBudget: MAC_BUDGET });
    edgeCaps.push({ edgeId, zone: zoneId(z), macBudget: MAC_BUDGET, macs: 0, vlans: [] });
    for (let k = 0; k < HOSTS_PER_EDGE; k++) {
      const hostId = `h-${zoneId(z)}-${String(e * HOSTS_PER_EDGE + k).padStart(4, '0')}`;
      topology.hosts.push({ hostId, zoneId: zoneId(z), edge: { edgeId, port: `p${k}` }, uplink: 'eth0' });
      hostCaps.push({
        hostId, zone: zoneId(z), vcpus: 64, memoryMiB: 256 << 10, pool: 'shared', dedicatedTenant: null, maintenance: false, up: true,
        architectures: ['x86_64', 'i686'], used: { guaranteed: { vcpus: 0, memoryMiB: 0 }, bestEffort: { vcpus: 0, memoryMiB: 0 } }, edgeId,
      });
    }
  }
}

// ------------------------------------------------------------------ tenants, networks, VMs

const tenantCum = new Float64Array(TENANTS);
const tenantZones: number[][] = [];
{
  const w = Array.from({ length: TENANTS }, () => Math.exp(1.5 * gauss()));
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  for (let t = 0; t < TENANTS; t++) {
    tenantCum[t] = (acc += w[t]);
    const home = Math.floor(rnd() * ZONES);
    const second = rnd() < 0.1 || (w[t] / total) * VMS > 300;
    tenantZones.push(second ? [home, (home + 1 + Math.floor(rnd() * (ZONES - 1))) % ZONES] : [home]);
  }
}
const NET_WEIGHTS = Array.from({ length: NETS_PER_TENANT }, (_, i) => 1 / (i + 1));
const netCum = Float64Array.from(NET_WEIGHTS.map((_, i) => NET_WEIGHTS.slice(0, i + 1).reduce((a, b) => a + b, 0)));
const FLAVORS = [[1, 2, 0.3], [2, 4, 0.35], [4, 8, 0.25], [8, 16, 0.1]] as const;
const flavorCum = Float64Array.from(FLAVORS.map((_, i) => FLAVORS.slice(0, i + 1).reduce((a, f) => a + f[2], 0)));

/** Live zone VLANs of every network (the network model's state; demands read them as they are). */
const netVlans: Record<string, number>[] = Array.from({ length: NETWORKS }, () => ({}));
const netId = (n: number): string => `net-${n}`;

interface Vm { id: string; tenant: number; zone: number; nets: number[]; vcpus: number; memoryMiB: number; guaranteed: boolean }
let vmSeq = 0;
function newVm(): Vm {
  const tenant = pickCum(tenantCum);
  const zs = tenantZones[tenant];
  const r = rnd(), count = r < 0.6 ? 1 : r < 0.9 ? 2 : 3;
  const nets = new Set<number>();
  while (nets.size < count) nets.add(tenant * NETS_PER_TENANT + pickCum(netCum));
  const f = FLAVORS[pickCum(flavorCum)];
  return { id: `vm-${hex12(++vmSeq)}`, tenant, zone: zs[Math.floor(rnd() * zs.length)], nets: [...nets], vcpus: f[0], memoryMiB: f[1] << 10, guaranteed: rnd() < 0.3 };
}
const demandOf = (v: Vm): VmDemand => ({
  vmId: v.id, tenantId: `t${v.tenant}`, vcpus: v.vcpus, memoryMiB: v.memoryMiB, resourceType: v.guaranteed ? 'guaranteed' : 'best-effort',
  architecture: 'x86_64', zone: zoneId(v.zone),
  networks: v.nets.map((n): NetworkDemand => ({ networkId: netId(n), zoneVlans: netVlans[n] })), nics: v.nets.length,
});

const vms = Array.from({ length: VMS }, newVm);

// ------------------------------------------------------------------ VLAN pools (lowest free first, as src/sdn/model/vlans.ts)

class Pools {
  private readonly taken = Array.from({ length: ZONES }, () => new Uint8Array(VLAN_MAX + 1));
  readonly free = new Array<number>(ZONES).fill(USABLE);
  take(z: number): number {
    const t = this.taken[z];
    for (let v = VLAN_MIN; v <= VLAN_MAX; v++) if (!t[v]) { t[v] = 1; this.free[z]--; return v; }
    throw new Error(`zone ${zoneId(z)} is out of VLANs: the vlanPool filter should have kept the VM out`);
  }
  give(z: number, v: number): void { this.taken[z][v] = 0; this.free[z]++; }
}

// ------------------------------------------------------------------ one placement run

interface Run { index: CapacityIndex; pools: Pools; placed: { vm: Vm; hostId: string }[]; noCapacity: number; reason: string; seconds: number }

function placeAll(policy: SchedulerPolicy): Run {
  for (const r of netVlans) for (const k of Object.keys(r)) delete r[k];
  const pools = new Pools();
  const index = new CapacityIndex({ hosts: hostCaps, edges: edgeCaps, vlanPools: Array.from({ length: ZONES }, (_, z) => ({ zone: zoneId(z), free: USABLE })) }, policy);
  const allocate = (zone: string, ids: readonly string[]) => Object.fromEntries(ids.map((id) => {
    const z = Number(zone.slice(1)), v = pools.take(z);
    netVlans[Number(id.slice(4))][zone] = v;
    return [id, v];
  }));
  const placed: Run['placed'] = [];
  let noCapacity = 0, reason = '';
  const t0 = process.hrtime.bigint();
  for (const vm of vms) {
    const p = index.place(demandOf(vm), allocate);
    if (p.ok) placed.push({ vm, hostId: p.hostId });
    else { noCapacity++; reason ||= p.reason; }
  }
  return { index, pools, placed, noCapacity, reason, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

let macSeq = 0;
const nicOf = (vm: Vm, slot: number, hostId: string): PlacedNic => {
  const m = ++macSeq;
  return {
    vmId: vm.id, slot, hostId, networkId: netId(vm.nets[slot]),
    mac: `52:54:00:${((m >> 16) & 255).toString(16).padStart(2, '0')}:${((m >> 8) & 255).toString(16).padStart(2, '0')}:${(m & 255).toString(16).padStart(2, '0')}`,
    ips: [`10.${(m >> 8) & 15}.${m & 255}.${(vm.nets[slot] % 250) + 2}`],
  };
};

/** Tenants' networks overlap (each tenant's k-th network is 10.(16k).0.0/20): allowed, they never meet. */
const placedNetwork = (n: number): PlacedNetwork =>
  ({ networkId: netId(n), vni: 4096 + n, zoneVlans: { ...netVlans[n] }, gateway: `10.${(n % NETS_PER_TENANT) * 16}.0.1`, prefix: 20 });

function placementOf(run: Run): Placement {
  const networks: PlacedNetwork[] = [];
  for (let n = 0; n < NETWORKS; n++) if (Object.keys(netVlans[n]).length > 0) networks.push(placedNetwork(n));
  return { networks, nics: run.placed.flatMap(({ vm, hostId }) => vm.nets.map((_, slot) => nicOf(vm, slot, hostId))) };
}

/** VLANs and MAC entries per edge; "learnable" MACs count every NIC of every network whose VLAN the edge carries (all zones). */
function edgeFigures(c: DesiredConfig, p: Placement) {
  const nicsOfNet = new Map<string, number>();
  for (const n of p.nics) nicsOfNet.set(n.networkId, (nicsOfNet.get(n.networkId) ?? 0) + 1);
  const hostPorts = new Map(c.hosts.map((h) => [h.hostId, h.ports.length]));
  const zoneNet = new Map<string, string>();
  for (const n of p.networks) for (const [z, v] of Object.entries(n.zoneVlans)) zoneNet.set(`${z}:${v}`, n.networkId);
  const zoneOfEdge = new Map(topology.edges.map((e) => [e.edgeId, e.zoneId]));
  const vl: number[] = [], local: number[] = [], learn: number[] = [];
  for (const e of c.edges) {
    vl.push(e.uplink.vlans.length);
    local.push(e.downlinks.reduce((a, d) => a + hostPorts.get(d.hostId)!, 0));
    learn.push(e.uplink.vlans.reduce((a, v) => a + nicsOfNet.get(zoneNet.get(`${zoneOfEdge.get(e.edgeId)}:${v}`)!)!, 0));
  }
  const stat = (xs: number[]) => ({ mean: xs.reduce((a, b) => a + b, 0) / xs.length, max: Math.max(...xs) });
  return { vlans: stat(vl), localMacs: stat(local), learnableMacs: stat(learn), edgesAtBudget: local.filter((x) => x >= MAC_BUDGET - 2).length };
}

function zoneVlanFigures(p: Placement) {
  const perZone = new Array<number>(ZONES).fill(0);
  for (const n of p.networks) for (const z of Object.keys(n.zoneVlans)) perZone[Number(z.slice(1))]++;
  return { max: Math.max(...perZone), mean: perZone.reduce((a, b) => a + b, 0) / ZONES, perZone };
}

/** Wall and CPU time of each compile: CPU time (all of the process's threads, GC included) is the steadier figure on a shared machine. */
function timeCompile(p: Placement, reps: number): { ms: number[]; cpuMs: number[]; config: DesiredConfig } {
  const ms: number[] = [], cpuMs: number[] = [];
  let config!: DesiredConfig;
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    config = compile(topology, p);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpuMs.push((c.user + c.system) / 1000);
  }
  return { ms, cpuMs, config };
}

// ------------------------------------------------------------------ run

/** How fast this CPU runs plain JS, for comparing runs on other machines: 1e8 steps of an integer loop. */
function calibrate(): number {
  const t0 = process.hrtime.bigint();
  let x = 0;
  for (let i = 0; i < 1e8; i++) x = (x + (i & 7)) | 0;
  if (x === 42) console.log('');
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const load0 = loadavg();
const calibrationMs = calibrate();
const t00 = Date.now();
console.log(`sdn: ${ZONES} zones x ${HOSTS_PER_ZONE} hosts x ${EDGES_PER_ZONE} edges, ${NETWORKS} networks (${TENANTS} tenants), ${VMS} VMs; mac budget ${MAC_BUDGET}/edge; load ${load0.map((x) => x.toFixed(2)).join(' ')}; 1e8-step JS loop ${calibrationMs.toFixed(0)} ms`);

const WITH = makePolicy(); // default weighers: freeMemory 1, freeVcpu 0.001, vlanAffinity 1
const WITHOUT = makePolicy({ weighers: [{ name: 'freeMemory', weight: 1 }, { name: 'freeVcpu', weight: 0.001 }] });

const runWithout = placeAll(WITHOUT);
const pWithout = placementOf(runWithout);
const cWithout = timeCompile(pWithout, 1);
const figWithout = { edges: edgeFigures(cWithout.config, pWithout), zones: zoneVlanFigures(pWithout) };

const runWith = placeAll(WITH); // leaves netVlans as this run's: the incremental part continues from it
const pWith = placementOf(runWith);
const compiled = timeCompile(pWith, 5);
const figWith = { edges: edgeFigures(compiled.config, pWith), zones: zoneVlanFigures(pWith) };
const bytes = Buffer.byteLength(JSON.stringify(compiled.config));
const deterministic = JSON.stringify(compile(topology, { networks: [...pWith.networks].reverse(), nics: [...pWith.nics].reverse() })) === JSON.stringify(compiled.config);

for (const [name, r] of [['without', runWithout], ['with', runWith]] as const) {
  console.log(`placement ${name} VLAN affinity: ${r.placed.length} placed in ${r.seconds.toFixed(1)} s (${(r.seconds * 1e6 / VMS).toFixed(0)} us/VM), NO_CAPACITY ${r.noCapacity}${r.reason ? ` (e.g. "${r.reason}")` : ''}`);
}

// Incremental: single-VM starts (and their stops) against the state built from the with-weigher run.
const tState = process.hrtime.bigint();
const state = new SdnState(topology, pWith);
const stateMs = Number(process.hrtime.bigint() - tState) / 1e6;
const inState = new Set(pWith.networks.map((n) => Number(n.networkId.slice(4))));
const members = new Map<string, number>(); // network + zone → NICs there
for (const { vm, hostId } of runWith.placed) for (const n of vm.nets) {
  const k = `${n}:${hostId.slice(2, 5)}`;
  members.set(k, (members.get(k) ?? 0) + 1);
}
const startNs = new Float64Array(STARTS), stopNs = new Float64Array(STARTS);
let starts = 0, touched = 0, startFailed = 0;
const allocateLater = (zone: string, ids: readonly string[]) => Object.fromEntries(ids.map((id) => [id, runWith.pools.take(Number(zone.slice(1)))]));
for (let i = 0; i < STARTS; i++) {
  const vm = newVm();
  let given: Record<string, number> = {};
  const p = runWith.index.place(demandOf(vm), (zone, ids) => (given = allocateLater(zone, ids)));
  if (!p.ok) { startFailed++; continue; }
  const zone = zoneId(vm.zone);
  const nics = vm.nets.map((_, slot) => nicOf(vm, slot, p.hostId));
  for (const [id, v] of Object.entries(given)) netVlans[Number(id.slice(4))][zone] = v; // the network model commits them
  // Timed: what the controller does to the compiled state when this one VM starts.
  const t0 = process.hrtime.bigint();
  let changes = 0;
  for (const [id, v] of Object.entries(given)) {
    const n = Number(id.slice(4));
    // A network with no VLAN anywhere is not in the compiled state yet: it enters with this one.
    if (inState.has(n)) changes += state.setZoneVlan(id, zone, v).length;
    else { changes += state.addNetwork(placedNetwork(n)).length; inState.add(n); }
  }
  for (const nic of nics) changes += state.addNic(nic).length;
  startNs[starts] = Number(process.hrtime.bigint() - t0);
  touched += changes;
  for (const n of vm.nets) members.set(`${n}:${zone}`, (members.get(`${n}:${zone}`) ?? 0) + 1);
  runWith.index.release(p.hostId, demandOf(vm)); // while its networks still show their VLANs here
  // Timed apart: its stop, which gives back VLANs its networks no longer use in the zone.
  const t1 = process.hrtime.bigint();
  for (const nic of nics) state.removeNic(nic.vmId, nic.slot);
  const released: [number, number][] = [];
  for (const n of vm.nets) {
    const k = `${n}:${zone}`, left = members.get(k)! - 1;
    members.set(k, left);
    if (left > 0) continue;
    released.push([vm.zone, netVlans[n][zone]]);
    delete netVlans[n][zone];
    if (Object.keys(netVlans[n]).length > 0) state.setZoneVlan(netId(n), zone, null);
    else { state.removeNetwork(netId(n)); inState.delete(n); }
  }
  stopNs[starts] = Number(process.hrtime.bigint() - t1);
  for (const [z, v] of released) runWith.pools.give(z, v);
  runWith.index.setVlanPool({ zone, free: runWith.pools.free[vm.zone] });
  starts++;
}
const start = summarize(startNs.subarray(0, starts)), stop = summarize(stopNs.subarray(0, starts));
const configAfter = state.config();
const incrementalMatches = JSON.stringify(configAfter) === JSON.stringify(compiled.config);

// ------------------------------------------------------------------ report

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const compileMs = { best: Math.min(...compiled.ms), median: med(compiled.ms), cpuMedian: med(compiled.cpuMs), runs: compiled.ms, cpuRuns: compiled.cpuMs };
const pct = (a: number, b: number) => `${(100 * (1 - a / b)).toFixed(0)}%`;
const f1 = (x: number) => x.toFixed(1);
const activeNetworks = pWith.networks.length;
const load1 = loadavg();

console.log(`full compile: ${pWith.nics.length} NICs on ${topology.hosts.length} hosts -> ${(bytes / 1e6).toFixed(1)} MB of config: best ${compileMs.best.toFixed(0)} ms, median ${compileMs.median.toFixed(0)} ms of ${compiled.ms.length} (CPU median ${compileMs.cpuMedian.toFixed(0)} ms); goal < 1000 ms ${compileMs.median < 1000 ? 'met' : 'NOT met'}; same JSON from reversed input: ${deterministic}`);
console.log(`incremental state: built in ${stateMs.toFixed(0)} ms; one VM start (${starts} starts, ${(touched / Math.max(1, starts)).toFixed(2)} device changes each): median ${(start.p50Ms * 1000).toFixed(1)} us, p99 ${(start.p99Ms * 1000).toFixed(1)} us, max ${(start.maxMs * 1000).toFixed(0)} us; goal < 1 ms ${start.p99Ms < 1 ? 'met' : 'NOT met'}`);
console.log(`  its stop: median ${(stop.p50Ms * 1000).toFixed(1)} us, p99 ${(stop.p99Ms * 1000).toFixed(1)} us; after all starts and stops the state equals the full compile: ${incrementalMatches}${startFailed ? `; ${startFailed} starts found no host` : ''}`);
console.log('per edge                      without affinity   with affinity   reduction');
const row = (label: string, a: { mean: number; max: number }, b: { mean: number; max: number }) =>
  console.log(`  ${label.padEnd(28)}${`${f1(a.mean)} / ${a.max}`.padStart(16)}${`${f1(b.mean)} / ${b.max}`.padStart(16)}   mean ${pct(b.mean, a.mean)}, max ${pct(b.max, a.max)}`);
row('VLANs (mean / max)', figWithout.edges.vlans, figWith.edges.vlans);
row('learnable MACs (mean / max)', figWithout.edges.learnableMacs, figWith.edges.learnableMacs);
row('local MACs (mean / max)', figWithout.edges.localMacs, figWith.edges.localMacs);
console.log(`  edges at their MAC budget: ${figWithout.edges.edgesAtBudget} without, ${figWith.edges.edgesAtBudget} with`);
console.log(`VLAN IDs per zone (max / mean): ${figWith.zones.max} / ${f1(figWith.zones.mean)} with affinity, ${figWithout.zones.max} / ${f1(figWithout.zones.mean)} without; ${USABLE} usable per zone`);
console.log(`anchor: GIO's single VLAN domain stopped at ${GIO_CEILING} IDs; these ${activeNetworks} networks with running VMs would need ${activeNetworks} (${(activeNetworks / GIO_CEILING).toFixed(1)}x the ceiling); per zone P2 needs at most ${figWith.zones.max} (${(100 * figWith.zones.max / GIO_CEILING).toFixed(0)}% of it)`);
console.log(`gateway zone (none here): under "every network with members holds a VLAN in the gateway zone" it would need ${activeNetworks} IDs, ${activeNetworks > USABLE ? 'more than the zone has' : 'within the zone\'s pool'}`);
console.log(`took ${((Date.now() - t00) / 1000).toFixed(0)} s; load ${load1.map((x) => x.toFixed(2)).join(' ')}`);
console.log(JSON.stringify({
  bench: 'sdn', scale: SCALE, zones: ZONES, hosts: topology.hosts.length, edgeSwitches: topology.edges.length, networks: NETWORKS, activeNetworks, vms: VMS,
  macBudget: MAC_BUDGET, loadavgBefore: load0, loadavgAfter: load1, calibrationMs,
  placement: { with: { seconds: runWith.seconds, noCapacity: runWith.noCapacity }, without: { seconds: runWithout.seconds, noCapacity: runWithout.noCapacity } },
  compileMs, configBytes: bytes, deterministic, stateBuildMs: stateMs,
  start: { n: starts, p50Ms: start.p50Ms, p99Ms: start.p99Ms, maxMs: start.maxMs, changesPerStart: touched / Math.max(1, starts) },
  stop: { p50Ms: stop.p50Ms, p99Ms: stop.p99Ms }, incrementalMatchesFull: incrementalMatches,
  edges: { with: figWith.edges, without: figWithout.edges }, zoneVlans: { with: figWith.zones, without: figWithout.zones },
  anchor: { gioCeiling: GIO_CEILING, singleDomainNeed: activeNetworks }, goals: { compile: compileMs.median < 1000, start: start.p99Ms < 1 },
}));
