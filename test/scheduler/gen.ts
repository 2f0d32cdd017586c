/** Builders and fast-check arbitraries shared by the scheduler tests. */
import fc from 'fast-check';
import type { Arch, HostCapacity, Overcommit, ResourceType, VmDemand } from '../../src/scheduler/index.js';

export function host(over: Partial<HostCapacity> & { hostId: string }): HostCapacity {
  return {
    zone: 'z1', vcpus: 16, memoryMiB: 32768, pool: 'shared', dedicatedTenant: null, maintenance: false, up: true,
    architectures: ['x86_64', 'i686'],
    used: { guaranteed: { vcpus: 0, memoryMiB: 0 }, bestEffort: { vcpus: 0, memoryMiB: 0 } },
    ...over,
  };
}

export function vm(over: Partial<VmDemand> = {}): VmDemand {
  return {
    vmId: 'vm-1', tenantId: 't1', vcpus: 1, memoryMiB: 1024, resourceType: 'best-effort', architecture: 'x86_64', ...over,
  };
}

export const ZONES = ['z1', 'z2', 'z3'];
export const TENANTS = ['t1', 't2', 't3'];

export const overcommitArb: fc.Arbitrary<Overcommit> = fc.record({
  vcpu: fc.constantFrom(1, 1.1, 1.5, 2, 4, 8, 16),
  memory: fc.constantFrom(1, 1.1, 1.25, 1.5, 2),
});

/** A host whose usage already keeps the invariant under `oc` (as any real host's would). */
const hostArb = (oc: Overcommit): fc.Arbitrary<Omit<HostCapacity, 'hostId'>> => fc.record({
  zone: fc.constantFrom(...ZONES),
  vcpus: fc.integer({ min: 1, max: 64 }),
  memoryMiB: fc.integer({ min: 1, max: 64 }).map((g) => g * 1024),
  pool: fc.constantFrom('shared', 'shared', 'dedicated') as fc.Arbitrary<'shared' | 'dedicated'>,
  tenant: fc.option(fc.constantFrom(...TENANTS), { freq: 5 }),
  maintenance: fc.constantFrom(false, false, false, true),
  up: fc.constantFrom(true, true, true, false),
  architectures: fc.constantFrom<Arch[]>(['x86_64', 'i686'], ['x86_64', 'i686'], ['i686']),
  fill: fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 })),
}).map(({ tenant, pool, fill: [gc, bc, gm, bm], ...h }) => {
  const gv = Math.floor((h.vcpus * gc) / 100), gmem = Math.floor((h.memoryMiB * gm) / 100);
  return {
    ...h,
    pool,
    dedicatedTenant: pool === 'dedicated' ? tenant : null,
    used: {
      guaranteed: { vcpus: gv, memoryMiB: gmem },
      bestEffort: {
        vcpus: pool === 'dedicated' ? 0 : Math.floor(((h.vcpus - gv) * oc.vcpu * bc) / 100),
        memoryMiB: pool === 'dedicated' ? 0 : Math.floor(((h.memoryMiB - gmem) * oc.memory * bm) / 100),
      },
    },
  };
});

export const hostsArb = (oc: Overcommit, maxLength = 25): fc.Arbitrary<HostCapacity[]> =>
  fc.array(hostArb(oc), { minLength: 0, maxLength }).map((hs) => hs.map((h, i) => ({ hostId: `host-${String(i).padStart(3, '0')}`, ...h })));

export const demandArb: fc.Arbitrary<VmDemand> = fc.record({
  vmId: fc.integer({ min: 0, max: 1e6 }).map((n) => `vm-${n}`),
  tenantId: fc.constantFrom(...TENANTS),
  vcpus: fc.integer({ min: 1, max: 32 }),
  memoryMiB: fc.integer({ min: 1, max: 64 }).map((g) => g * 512),
  resourceType: fc.constantFrom<ResourceType>('best-effort', 'guaranteed', 'dedicated'),
  architecture: fc.constantFrom<Arch>('x86_64', 'x86_64', 'i686'),
  zone: fc.option(fc.constantFrom(...ZONES, 'z-none'), { freq: 2 }),
  excludeHosts: fc.option(fc.array(fc.integer({ min: 0, max: 25 }).map((i) => `host-${String(i).padStart(3, '0')}`), { maxLength: 3 }), { nil: undefined }),
});
