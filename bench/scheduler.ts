/**
 * bench/scheduler: 10,000 hosts in 10 zones, 10,000 mixed VMs placed one after another through
 * CapacityIndex, each placement timed. Anchor: the Nova filter scheduler took 26 s for 100 VMs
 * (OpenStack Essex, 2012). Seeded, so every run places the same VMs on the same hosts.
 */
import { CapacityIndex, holdsInvariant, type Arch, type HostCapacity, type ResourceType, type VmDemand } from '../src/scheduler/index.js';
import { prng } from './lib/prng.js';

const HOSTS = 10_000, ZONES = 10, VMS = 10_000;
const TENANTS = ['tenant-a', 'tenant-b', 'tenant-c', 'tenant-d', 'tenant-e'];

const rnd = prng(20120405);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];

const SIZES = [{ vcpus: 32, memoryMiB: 128 << 10 }, { vcpus: 64, memoryMiB: 256 << 10 }, { vcpus: 96, memoryMiB: 384 << 10 }, { vcpus: 128, memoryMiB: 1024 << 10 }];
const FLAVORS = [[1, 1], [1, 2], [2, 4], [4, 8], [8, 16], [8, 32], [16, 64], [32, 128]].map(([c, g]) => ({ vcpus: c, memoryMiB: g << 10 }));

function buildHosts(): HostCapacity[] {
  const hosts: HostCapacity[] = [];
  for (let i = 0; i < HOSTS; i++) {
    const size = pick(SIZES);
    const dedicated = rnd() < 0.05;
    // Hosts start 0-90% used, so the capacity filters have real work to do and some placements fail.
    const fill = rnd() * 0.9;
    const gFrac = dedicated ? fill : fill * rnd();
    const g = { vcpus: Math.floor(size.vcpus * gFrac), memoryMiB: Math.floor(size.memoryMiB * gFrac) };
    const beFrac = dedicated ? 0 : fill - gFrac;
    const be = { vcpus: Math.floor((size.vcpus - g.vcpus) * 4 * beFrac), memoryMiB: Math.floor((size.memoryMiB - g.memoryMiB) * beFrac) };
    hosts.push({
      hostId: `host-${i.toString(16).padStart(12, '0')}`,
      zone: `zone-${i % ZONES}`,
      ...size,
      pool: dedicated ? 'dedicated' : 'shared',
      dedicatedTenant: dedicated ? pick(TENANTS) : null,
      maintenance: rnd() < 0.01,
      up: true,
      architectures: rnd() < 0.98 ? ['x86_64', 'i686'] : ['i686'],
      used: { guaranteed: g, bestEffort: be },
    });
  }
  return hosts;
}

function buildVms(): VmDemand[] {
  const vms: VmDemand[] = [];
  for (let i = 0; i < VMS; i++) {
    const r = rnd();
    const resourceType: ResourceType = r < 0.6 ? 'best-effort' : r < 0.9 ? 'guaranteed' : 'dedicated';
    const arch: Arch = rnd() < 0.95 ? 'x86_64' : 'i686';
    vms.push({
      vmId: `vm-${i.toString(16).padStart(12, '0')}`,
      tenantId: pick(TENANTS),
      ...pick(FLAVORS),
      resourceType,
      architecture: arch,
      zone: rnd() < 0.5 ? `zone-${Math.floor(rnd() * ZONES)}` : null,
    });
  }
  return vms;
}

const hosts = buildHosts();
const vms = buildVms();
const index = new CapacityIndex({ hosts });
const ns = new Float64Array(VMS);
let failed = 0;
let sampleReason = '';
for (let i = 0; i < VMS; i++) {
  const t0 = process.hrtime.bigint();
  const p = index.place(vms[i]);
  ns[i] = Number(process.hrtime.bigint() - t0);
  if (!p.ok) { failed++; sampleReason ||= p.reason; }
}

const sorted = Float64Array.from(ns).sort();
const ms = (n: number): number => n / 1e6;
const mean = ms(ns.reduce((a, b) => a + b, 0) / VMS);
const p50 = ms(sorted[Math.floor(VMS * 0.5)]);
const p99 = ms(sorted[Math.min(VMS - 1, Math.floor(VMS * 0.99))]);
const invariant = index.snapshot().hosts.every((h) => holdsInvariant(h, index.policy.overcommit));
const anchorMs = 26_000 / 100;

console.log(`scheduler: ${HOSTS} hosts in ${ZONES} zones, ${VMS} VMs (60% best-effort, 30% guaranteed, 10% dedicated; half zone-pinned)`);
console.log(`per placement: mean ${mean.toFixed(4)} ms, p50 ${p50.toFixed(4)} ms, p99 ${p99.toFixed(4)} ms`);
console.log(`NO_CAPACITY: ${failed} of ${VMS}${sampleReason ? ` (e.g. "${sampleReason}")` : ''}`);
console.log(`invariant G <= P and BE <= (P - G) x ratio on every host afterwards: ${invariant ? 'holds' : 'BROKEN'}`);
console.log(`anchor: Nova filter scheduler, Essex 2012: 26 s for 100 VMs = ${anchorMs} ms per placement; goal < 1 ms mean`);
console.log(`ratio: ${(anchorMs / mean).toFixed(0)}x faster than the anchor; goal ${mean < 1 ? 'met' : 'NOT met'}`);
console.log(JSON.stringify({
  bench: 'scheduler', hosts: HOSTS, zones: ZONES, vms: VMS, meanMs: mean, p50Ms: p50, p99Ms: p99,
  noCapacity: failed, invariantHolds: invariant, anchorMsPerPlacement: anchorMs, speedup: anchorMs / mean, goalMet: mean < 1,
}));
