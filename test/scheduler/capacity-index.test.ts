import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapacityIndex, applyPlacement, place, releasePlacement } from '../../src/scheduler/index.js';
import { host, vm } from './gen.js';

test('place() leaves the snapshot untouched', () => {
  const snapshot = { hosts: [host({ hostId: 'a' }), host({ hostId: 'b' })] };
  const before = structuredClone(snapshot);
  place(snapshot, vm());
  assert.deepEqual(snapshot, before);
});

test('applyPlacement and releasePlacement book guaranteed and dedicated as guaranteed', () => {
  const h = host({ hostId: 'a', pool: 'dedicated', dedicatedTenant: 't1' });
  applyPlacement(h, vm({ resourceType: 'dedicated', vcpus: 2, memoryMiB: 512 }));
  applyPlacement(h, vm({ resourceType: 'best-effort', vcpus: 1, memoryMiB: 256 }));
  assert.deepEqual(h.used, { guaranteed: { vcpus: 2, memoryMiB: 512 }, bestEffort: { vcpus: 1, memoryMiB: 256 } });
  releasePlacement(h, vm({ resourceType: 'guaranteed', vcpus: 2, memoryMiB: 512 }));
  assert.deepEqual(h.used.guaranteed, { vcpus: 0, memoryMiB: 0 });
  assert.throws(() => releasePlacement(h, vm({ resourceType: 'guaranteed', vcpus: 1 })), /exceeds/);
});

test('CapacityIndex records each placement so the next one sees it, and copies its input', () => {
  const hosts = [host({ hostId: 'a', vcpus: 2, memoryMiB: 2048 }), host({ hostId: 'b', vcpus: 2, memoryMiB: 2048 })];
  const index = new CapacityIndex({ hosts });
  const g = { resourceType: 'guaranteed' as const, vcpus: 2, memoryMiB: 2048 };
  assert.deepEqual(index.place(vm({ vmId: 'v1', ...g })), { ok: true, hostId: 'a' });
  assert.deepEqual(index.place(vm({ vmId: 'v2', ...g })), { ok: true, hostId: 'b' });
  const third = index.place(vm({ vmId: 'v3', ...g }));
  assert.equal(third.ok, false);
  assert.equal(hosts[0].used.guaranteed.vcpus, 0);
  assert.equal(index.get('a')!.used.guaranteed.vcpus, 2);
  index.release('a', vm({ vmId: 'v1', ...g }));
  assert.deepEqual(index.place(vm({ vmId: 'v3', ...g })), { ok: true, hostId: 'a' });
});

test('CapacityIndex.choose does not record anything', () => {
  const index = new CapacityIndex({ hosts: [host({ hostId: 'a' })] });
  assert.deepEqual(index.choose(vm()), { ok: true, hostId: 'a' });
  assert.deepEqual(index.get('a')!.used.bestEffort, { vcpus: 0, memoryMiB: 0 });
});

test('CapacityIndex.upsert moves a host between zones, pools and maintenance', () => {
  const index = new CapacityIndex({ hosts: [host({ hostId: 'a', zone: 'z1' })] });
  assert.equal(index.choose(vm({ zone: 'z2' })).ok, false);
  index.upsert(host({ hostId: 'a', zone: 'z2' }));
  assert.deepEqual(index.choose(vm({ zone: 'z2' })), { ok: true, hostId: 'a' });
  assert.equal(index.size, 1);
  index.upsert(host({ hostId: 'a', zone: 'z2', pool: 'dedicated', dedicatedTenant: 't9' }));
  assert.deepEqual(index.choose(vm({ zone: 'z2', resourceType: 'dedicated', tenantId: 't9' })), { ok: true, hostId: 'a' });
  assert.equal(index.choose(vm({ zone: 'z2' })).ok, false);
  index.upsert(host({ hostId: 'a', zone: 'z2', maintenance: true }));
  assert.deepEqual(index.choose(vm({ vmId: 'vm-m', zone: 'z2' })), { ok: false, reason: 'no host can take vm-m: 1 in maintenance' });
  index.remove('a');
  assert.deepEqual(index.choose(vm({ vmId: 'vm-m' })), { ok: false, reason: 'no host can take vm-m: no hosts' });
});

test('CapacityIndex explains a failure the way a full scan does', () => {
  const hosts = [
    host({ hostId: 'a', zone: 'z1' }), host({ hostId: 'b', zone: 'z2', maintenance: true }),
    host({ hostId: 'c', zone: 'z2', pool: 'dedicated', dedicatedTenant: 't1' }), host({ hostId: 'd', zone: 'z3', pool: 'dedicated', dedicatedTenant: 't2' }),
  ];
  const index = new CapacityIndex({ hosts });
  for (const d of [vm({ vmId: 'v', zone: 'z2' }), vm({ vmId: 'v', zone: 'z2', resourceType: 'dedicated', tenantId: 't2' }), vm({ vmId: 'v', resourceType: 'dedicated', tenantId: 't3' })]) {
    const p = index.choose(d);
    assert.equal(p.ok, false);
    assert.deepEqual(p, place({ hosts }, d));
  }
});

test('CapacityIndex refuses to book on an unknown host', () => {
  const index = new CapacityIndex({ hosts: [] });
  assert.throws(() => index.apply('nope', vm()), /unknown host nope/);
});
