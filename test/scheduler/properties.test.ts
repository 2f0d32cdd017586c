import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CapacityIndex, DEFAULT_POLICY, WEIGHERS, fits, holdsInvariant, makePolicy, place,
  type HostCapacity, type SchedulerPolicy, type VmDemand, type WeigherSpec,
} from '../../src/scheduler/index.js';
import { demandArb, hostsArb, overcommitArb } from './gen.js';

/** Policies with random ratios and weights; weighers in the default order, so scores sum alike everywhere. */
const policyArb: fc.Arbitrary<SchedulerPolicy> = fc.record({
  overcommit: overcommitArb,
  memory: fc.option(fc.constantFrom(1, 0.5, 0, -1), { nil: undefined }),
  vcpu: fc.option(fc.constantFrom(0.001, 1, -0.5), { nil: undefined }),
}).map(({ overcommit, memory, vcpu }) => {
  const weighers: WeigherSpec[] = [];
  if (memory !== undefined) weighers.push({ name: 'freeMemory', weight: memory });
  if (vcpu !== undefined) weighers.push({ name: 'freeVcpu', weight: vcpu });
  return makePolicy({ overcommit, weighers });
});

const worldArb = policyArb.chain((policy) => fc.record({
  policy: fc.constant(policy),
  hosts: hostsArb(policy.overcommit),
  demands: fc.array(demandArb, { minLength: 1, maxLength: 40 }),
}));

const score = (h: HostCapacity, vm: VmDemand, p: SchedulerPolicy): number =>
  p.weighers.reduce((s, { name, weight }) => s + weight * WEIGHERS[name](h, vm, p), 0);

test('(1) every host keeps G <= P and BE <= (P - G) x ratio after every placement', () => {
  fc.assert(fc.property(worldArb, ({ policy, hosts, demands }) => {
    const index = new CapacityIndex({ hosts }, policy);
    for (const d of demands) {
      const p = index.place(d);
      for (const h of index.snapshot().hosts) assert.ok(holdsInvariant(h, policy.overcommit), `${h.hostId} broke the invariant after ${d.vmId}`);
      if (p.ok) {
        const before = hosts.find((h) => h.hostId === p.hostId)!;
        assert.ok(index.get(p.hostId)!.used.guaranteed.vcpus + index.get(p.hostId)!.used.bestEffort.vcpus
          > before.used.guaranteed.vcpus + before.used.bestEffort.vcpus);
      }
    }
  }), { numRuns: 200 });
});

test("(2) a dedicated VM only ever lands on its tenant's dedicated host", () => {
  fc.assert(fc.property(worldArb, ({ policy, hosts, demands }) => {
    const index = new CapacityIndex({ hosts }, policy);
    for (const d of demands) {
      const p = index.place(d);
      if (!p.ok) continue;
      const h = index.get(p.hostId)!;
      if (d.resourceType === 'dedicated') {
        assert.equal(h.pool, 'dedicated');
        assert.equal(h.dedicatedTenant, d.tenantId);
      } else {
        assert.equal(h.pool, 'shared');
      }
    }
  }), { numRuns: 200 });
});

test('(3) place() returns only hosts that pass every filter, and fails only when none does', () => {
  fc.assert(fc.property(worldArb, ({ policy, hosts, demands }) => {
    for (const d of demands) {
      const p = place({ hosts }, d, policy);
      const fitting = hosts.filter((h) => fits(h, d, policy));
      if (p.ok) assert.ok(fitting.some((h) => h.hostId === p.hostId), `${p.hostId} fails a filter for ${d.vmId}`);
      else assert.equal(fitting.length, 0, `no host chosen though ${fitting.map((h) => h.hostId)} fit: ${p.reason}`);
    }
  }), { numRuns: 200 });
});

test('(3b) the chosen host has the best weighed score, ties to the smallest hostId', () => {
  fc.assert(fc.property(worldArb, ({ policy, hosts, demands }) => {
    for (const d of demands) {
      const p = place({ hosts }, d, policy);
      if (!p.ok) continue;
      const best = hosts.filter((h) => fits(h, d, policy))
        .map((h) => ({ id: h.hostId, s: score(h, d, policy) }))
        .sort((a, b) => b.s - a.s || (a.id < b.id ? -1 : 1))[0];
      assert.equal(p.hostId, best.id);
    }
  }), { numRuns: 200 });
});

test('(4) placement is deterministic and independent of host order; place() is pure', () => {
  fc.assert(fc.property(worldArb, fc.integer(), ({ policy, hosts, demands }, seed) => {
    const shuffled = [...hosts].sort((a, b) => ((hashOf(a.hostId, seed) - hashOf(b.hostId, seed)) || (a.hostId < b.hostId ? -1 : 1)));
    const frozen = structuredClone(hosts);
    for (const d of demands) {
      const p = place({ hosts }, d, policy);
      assert.deepEqual(place({ hosts }, d, policy), p);
      assert.deepEqual(place({ hosts: shuffled }, d, policy), p);
    }
    assert.deepEqual(hosts, frozen);
  }), { numRuns: 200 });
});

test('CapacityIndex chooses exactly what place() would over its current state, reason included', () => {
  fc.assert(fc.property(worldArb, ({ policy, hosts, demands }) => {
    const index = new CapacityIndex({ hosts }, policy);
    for (const d of demands) {
      assert.deepEqual(index.choose(d), place(index.snapshot(), d, policy));
      index.place(d);
    }
  }), { numRuns: 200 });
});

test('the default policy is what place() uses when given none', () => {
  fc.assert(fc.property(hostsArb(DEFAULT_POLICY.overcommit), demandArb, (hosts, d) => {
    assert.deepEqual(place({ hosts }, d), place({ hosts }, d, DEFAULT_POLICY));
  }));
});

function hashOf(s: string, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x9e3779b1);
  return h;
}
