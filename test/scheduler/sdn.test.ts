import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapacityIndex, makePolicy, place, rejectedBy, snapshotView, type EdgeCapacity, type Snapshot } from '../../src/scheduler/index.js';
import { host, vm } from './gen.js';

const edge = (edgeId: string, over: Partial<EdgeCapacity> = {}): EdgeCapacity => ({ edgeId, zone: 'z1', macBudget: 100, macs: 0, vlans: [], ...over });
const net = (networkId: string, zoneVlans: Record<string, number>) => ({ networkId, zoneVlans });
const used = (memoryMiB: number) => ({ guaranteed: { vcpus: 0, memoryMiB }, bestEffort: { vcpus: 0, memoryMiB: 0 } });

test('macBudget: an edge whose table cannot take the VM\'s NICs is out, with the closest miss', () => {
  const s: Snapshot = {
    hosts: [host({ hostId: 'a', edgeId: 'e1' }), host({ hostId: 'b', edgeId: 'e2' })],
    edges: [edge('e1', { macBudget: 10, macs: 9 }), edge('e2', { macBudget: 10, macs: 10 })],
  };
  const two = vm({ vmId: 'vm-2', networks: [net('n1', { z1: 5 })], nics: 2 });
  assert.equal(rejectedBy(s.hosts[0], two, undefined, snapshotView(s)), 'macBudget');
  assert.deepEqual(place(s, two), { ok: false, reason: 'no host can take vm-2: 2 behind edges whose MAC table budget is full (best fit 1 MAC entries free, need 2 MAC entries)' });
  assert.deepEqual(place(s, { ...two, nics: 1 }), { ok: true, hostId: 'a' });
  // nics defaults to the number of networks; a VM without NICs adds nothing to any table.
  assert.deepEqual(place(s, vm({ networks: [net('n1', { z1: 5 })] })), { ok: true, hostId: 'a' });
  assert.deepEqual(place(s, vm()), { ok: true, hostId: 'a' });
  // A host with no edge, or an edge the snapshot does not list, is not limited.
  assert.equal(rejectedBy(host({ hostId: 'c' }), two, undefined, snapshotView(s)), null);
  assert.equal(rejectedBy(host({ hostId: 'c', edgeId: 'e9' }), two, undefined, snapshotView(s)), null);
});

test('vlanPool: a zone where the network has no VLAN and the pool is empty is NO_CAPACITY', () => {
  const s: Snapshot = {
    hosts: [host({ hostId: 'a', zone: 'z1' }), host({ hostId: 'b', zone: 'z2' })],
    vlanPools: [{ zone: 'z1', free: 0 }, { zone: 'z2', free: 1 }],
  };
  const v = vm({ vmId: 'vm-v', networks: [net('n1', {})] });
  assert.deepEqual(place(s, v), { ok: true, hostId: 'b' });
  // Already holding a VLAN in z1, it needs none from the empty pool.
  assert.equal(rejectedBy(s.hosts[0], vm({ networks: [net('n1', { z1: 7 })] }), undefined, snapshotView(s)), null);
  // Two networks new to z2 need two IDs; z2 has one.
  const two = vm({ vmId: 'vm-w', networks: [net('n1', {}), net('n2', {})] });
  assert.deepEqual(place(s, two), { ok: false, reason: "no host can take vm-w: 2 in zones with no VLAN ID left for the VM's networks (or none left in the gateway zone)" });
});

test('vlanPool: the gateway zone must have a VLAN for every network too', () => {
  const s: Snapshot = {
    hosts: [host({ hostId: 'a', zone: 'z1' }), host({ hostId: 'g', zone: 'gw' })],
    vlanPools: [{ zone: 'gw', free: 0 }],
    gatewayZone: 'gw',
  };
  assert.equal(place(s, vm({ networks: [net('n1', {})] })).ok, false);
  assert.deepEqual(place(s, vm({ networks: [net('n1', { gw: 9 })] })), { ok: true, hostId: 'a' });
});

test('vlanAffinity: the host behind an edge carrying the VM\'s VLAN wins over more free memory', () => {
  const s: Snapshot = {
    hosts: [host({ hostId: 'a', edgeId: 'e1', used: used(16384) }), host({ hostId: 'b', edgeId: 'e2' })],
    edges: [edge('e1', { vlans: [5] }), edge('e2', { vlans: [6] })],
  };
  const v = vm({ networks: [net('n1', { z1: 5 })] });
  assert.deepEqual(place(s, v), { ok: true, hostId: 'a' });
  assert.deepEqual(place(s, v, makePolicy({ weighers: [{ name: 'freeMemory', weight: 1 }] })), { ok: true, hostId: 'b' });
  // A VLAN carried in another zone does not count: VLAN IDs mean something only within their zone.
  assert.deepEqual(place(s, vm({ networks: [net('n1', { z2: 5 })] })), { ok: true, hostId: 'b' });
});

test('CapacityIndex: a placement adds its NICs and VLANs to the edge, the pool pays for new VLANs, release takes them back', () => {
  const s: Snapshot = {
    hosts: [host({ hostId: 'a', edgeId: 'e1' }), host({ hostId: 'b', edgeId: 'e2' })],
    edges: [edge('e1', { macBudget: 3 }), edge('e2', { macBudget: 3 })],
    vlanPools: [{ zone: 'z1', free: 5 }],
  };
  const index = new CapacityIndex(s);
  const first = vm({ vmId: 'v1', networks: [net('n1', {})], nics: 2 });
  const asked: string[][] = [];
  assert.deepEqual(index.place(first, (zone, ids) => { asked.push([zone, ...ids]); return { n1: 42 }; }), { ok: true, hostId: 'a' });
  assert.deepEqual(asked, [['z1', 'n1']]);
  assert.deepEqual(index.snapshot().edges![0], { edgeId: 'e1', zone: 'z1', macBudget: 3, macs: 2, vlans: [42] });
  assert.deepEqual(index.snapshot().vlanPools, [{ zone: 'z1', free: 4 }]);
  // The next VM of n1 (now holding VLAN 42) goes behind e1 again, though b has more memory free.
  const second = vm({ vmId: 'v2', networks: [net('n1', { z1: 42 })] });
  assert.deepEqual(index.place(second), { ok: true, hostId: 'a' });
  // e1 is full now (3 of 3): the third goes behind e2, and e2 carries 42 from then on.
  assert.deepEqual(index.place({ ...second, vmId: 'v3' }), { ok: true, hostId: 'b' });
  assert.deepEqual(index.snapshot().edges!.map((e) => [e.macs, e.vlans]), [[3, [42]], [1, [42]]]);
  index.release('b', { ...second, vmId: 'v3' });
  index.release('a', second);
  index.release('a', { ...first, networks: [net('n1', { z1: 42 })] });
  assert.deepEqual(index.snapshot().edges!.map((e) => [e.macs, e.vlans]), [[0, []], [0, []]]);
  assert.deepEqual(index.snapshot().vlanPools, [{ zone: 'z1', free: 4 }], 'VLAN IDs go back through setVlanPool only');
});

test('vlanAffinity: VLAN IDs are read in the host\'s zone, even for hosts of two zones on one edge record', () => {
  // Inconsistent wiring (b is in z2 but names z1's edge), scanned right after a: the answer must
  // still be worked out for b's own zone, where the VM's network is VLAN 6.
  const s: Snapshot = {
    hosts: [host({ hostId: 'a', zone: 'z1', edgeId: 'e1' }), host({ hostId: 'b', zone: 'z2', edgeId: 'e1' })],
    edges: [edge('e1', { vlans: [6] })],
  };
  assert.deepEqual(place(s, vm({ networks: [net('n1', { z1: 5, z2: 6 })] })), { ok: true, hostId: 'b' });
  assert.deepEqual(new CapacityIndex(s).choose(vm({ networks: [net('n1', { z1: 6, z2: 5 })] })), { ok: true, hostId: 'a' });
});
