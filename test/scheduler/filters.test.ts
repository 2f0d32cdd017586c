import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FILTERS, fits, makePolicy, place, rejectedBy } from '../../src/scheduler/index.js';
import { host, vm } from './gen.js';

const used = (g: [number, number], be: [number, number]) => ({
  guaranteed: { vcpus: g[0], memoryMiB: g[1] }, bestEffort: { vcpus: be[0], memoryMiB: be[1] },
});

test('filters run in a fixed order, zone and pool first', () => {
  assert.deepEqual(FILTERS.map((f) => f.name), ['zone', 'pool', 'exclude', 'up', 'maintenance', 'architecture', 'cpu', 'memory', 'vlanPool', 'macBudget']);
});

test('zone: a pinned VM goes only to its zone; an unpinned one anywhere', () => {
  const h = host({ hostId: 'h', zone: 'z2' });
  assert.equal(rejectedBy(h, vm({ zone: 'z1' })), 'zone');
  assert.equal(rejectedBy(h, vm({ zone: 'z2' })), null);
  assert.equal(rejectedBy(h, vm({ zone: null })), null);
  assert.equal(rejectedBy(h, vm()), null);
});

test('pool: best-effort and guaranteed stay off dedicated hosts', () => {
  const d = host({ hostId: 'h', pool: 'dedicated', dedicatedTenant: 't1' });
  assert.equal(rejectedBy(d, vm({ resourceType: 'best-effort' })), 'pool');
  assert.equal(rejectedBy(d, vm({ resourceType: 'guaranteed' })), 'pool');
});

test("pool: dedicated VMs go only to their own tenant's dedicated hosts", () => {
  assert.equal(rejectedBy(host({ hostId: 'h', pool: 'dedicated', dedicatedTenant: 't1' }), vm({ resourceType: 'dedicated', tenantId: 't1' })), null);
  assert.equal(rejectedBy(host({ hostId: 'h', pool: 'dedicated', dedicatedTenant: 't2' }), vm({ resourceType: 'dedicated', tenantId: 't1' })), 'pool');
  assert.equal(rejectedBy(host({ hostId: 'h', pool: 'dedicated', dedicatedTenant: null }), vm({ resourceType: 'dedicated', tenantId: 't1' })), 'pool');
  assert.equal(rejectedBy(host({ hostId: 'h' }), vm({ resourceType: 'dedicated', tenantId: 't1' })), 'pool');
});

test('exclude: listed hosts are skipped', () => {
  const h = host({ hostId: 'h' });
  assert.equal(rejectedBy(h, vm({ excludeHosts: ['x', 'h'] })), 'exclude');
  assert.equal(rejectedBy(h, vm({ excludeHosts: ['x'] })), null);
  assert.equal(rejectedBy(h, vm({ excludeHosts: [] })), null);
});

test('up and maintenance: hosts whose agent is down or in maintenance take nothing', () => {
  assert.equal(rejectedBy(host({ hostId: 'h', up: false }), vm()), 'up');
  assert.equal(rejectedBy(host({ hostId: 'h', maintenance: true }), vm()), 'maintenance');
});

test('architecture: x86_64 hosts run i686 guests, i686 hosts do not run x86_64 ones', () => {
  assert.equal(rejectedBy(host({ hostId: 'h' }), vm({ architecture: 'i686' })), null);
  assert.equal(rejectedBy(host({ hostId: 'h', architectures: ['i686'] }), vm({ architecture: 'x86_64' })), 'architecture');
  assert.equal(rejectedBy(host({ hostId: 'h', architectures: ['i686'] }), vm({ architecture: 'i686' })), null);
});

test('cpu: best-effort shares (P - G) x 4 by default', () => {
  const h = host({ hostId: 'h', vcpus: 4, used: used([1, 0], [11, 0]) }); // (4 - 1) x 4 = 12
  assert.equal(rejectedBy(h, vm({ vcpus: 1 })), null);
  assert.equal(rejectedBy(h, vm({ vcpus: 2 })), 'cpu');
});

test('memory: best-effort is not overcommitted by default (1:1)', () => {
  const h = host({ hostId: 'h', memoryMiB: 4096, used: used([0, 1024], [0, 2048]) });
  assert.equal(rejectedBy(h, vm({ memoryMiB: 1024 })), null);
  assert.equal(rejectedBy(h, vm({ memoryMiB: 1025 })), 'memory');
});

test('guaranteed: reserves 1:1 and must not squeeze the best-effort VMs already there', () => {
  const h = host({ hostId: 'h', vcpus: 8, used: used([0, 0], [24, 0]) });
  assert.equal(rejectedBy(h, vm({ resourceType: 'guaranteed', vcpus: 2 })), null); // (8 - 2) x 4 = 24
  assert.equal(rejectedBy(h, vm({ resourceType: 'guaranteed', vcpus: 3 })), 'cpu'); // G + d <= P, but 20 < 24
  const full = host({ hostId: 'h', vcpus: 8, used: used([7, 0], [0, 0]) });
  assert.equal(rejectedBy(full, vm({ resourceType: 'guaranteed', vcpus: 1 })), null);
  assert.equal(rejectedBy(full, vm({ resourceType: 'guaranteed', vcpus: 2 })), 'cpu');
});

test('dedicated VMs are accounted like guaranteed ones (1:1)', () => {
  const h = host({ hostId: 'h', vcpus: 8, pool: 'dedicated', dedicatedTenant: 't1', used: used([7, 0], [0, 0]) });
  assert.equal(rejectedBy(h, vm({ resourceType: 'dedicated', vcpus: 1 })), null);
  assert.equal(rejectedBy(h, vm({ resourceType: 'dedicated', vcpus: 2 })), 'cpu');
});

test('the policy sets the overcommit ratios', () => {
  const h = host({ hostId: 'h', vcpus: 4, memoryMiB: 4096, used: used([0, 0], [4, 4096]) });
  assert.equal(fits(h, vm({ vcpus: 1, memoryMiB: 1 })), false);
  assert.equal(fits(h, vm({ vcpus: 1, memoryMiB: 1 }), makePolicy({ overcommit: { memory: 1.5 } })), true);
  assert.equal(fits(h, vm({ vcpus: 1, memoryMiB: 1 }), makePolicy({ overcommit: { vcpu: 1, memory: 2 } })), false);
});

test('a host is charged to the first filter that rejects it', () => {
  const h = host({ hostId: 'h', zone: 'z2', maintenance: true, vcpus: 1 });
  assert.equal(rejectedBy(h, vm({ zone: 'z1', vcpus: 64 })), 'zone');
  assert.equal(rejectedBy(h, vm({ vcpus: 64 })), 'maintenance');
});

test('failure reason: counts per filter, and the closest miss for capacity', () => {
  const hosts = [
    host({ hostId: 'a', maintenance: true }),
    host({ hostId: 'b', memoryMiB: 4096, used: used([0, 3584], [0, 0]) }), // 512 MiB left
    host({ hostId: 'c', memoryMiB: 4096, used: used([0, 0], [0, 3840]) }), // 256 MiB left
  ];
  const p = place({ hosts }, vm({ vmId: 'vm-x', memoryMiB: 1024 }));
  assert.deepEqual(p, { ok: false, reason: 'no host can take vm-x: 1 in maintenance, 2 lack memory (best fit 512 MiB free, need 1024 MiB)' });
});

test('failure reason: guaranteed headroom counts best-effort use at 1/ratio', () => {
  const hosts = [host({ hostId: 'a', vcpus: 8, used: used([2, 0], [20, 0]) })]; // 8 - 2 - 20/4 = 1
  const p = place({ hosts }, vm({ vmId: 'vm-g', resourceType: 'guaranteed', vcpus: 2 }));
  assert.deepEqual(p, { ok: false, reason: 'no host can take vm-g: 1 lack vCPUs (best fit 1 vCPUs free, need 2 vCPUs)' });
});

test('failure reason: structural filters', () => {
  const hosts = [
    host({ hostId: 'a', zone: 'z2' }),
    host({ hostId: 'b', pool: 'dedicated', dedicatedTenant: 't2' }),
    host({ hostId: 'c', up: false, pool: 'dedicated', dedicatedTenant: 't1' }),
    host({ hostId: 'd', architectures: ['i686'], pool: 'dedicated', dedicatedTenant: 't1' }),
    host({ hostId: 'e', pool: 'dedicated', dedicatedTenant: 't1' }),
  ];
  const p = place({ hosts }, vm({ vmId: 'vm-d', resourceType: 'dedicated', tenantId: 't1', zone: 'z1', excludeHosts: ['e'] }));
  assert.deepEqual(p, {
    ok: false,
    reason: 'no host can take vm-d: 1 outside zone z1, 1 not dedicated to t1, 1 excluded, 1 with the agent down, 1 without x86_64',
  });
  assert.deepEqual(place({ hosts: [] }, vm({ vmId: 'vm-0' })), { ok: false, reason: 'no host can take vm-0: no hosts' });
  assert.deepEqual(place({ hosts: hosts.slice(1) }, vm()), { ok: false, reason: 'no host can take vm-1: 4 in the dedicated pool' });
});

test('makePolicy rejects unknown weighers and nonsense ratios', () => {
  assert.throws(() => makePolicy({ weighers: [{ name: 'nope', weight: 1 }] }), /unknown weigher nope/);
  assert.throws(() => makePolicy({ overcommit: { vcpu: 0 } }), /overcommit vcpu/);
  assert.throws(() => makePolicy({ weighers: [{ name: 'freeMemory', weight: Number.NaN }] }), /finite weight/);
});
