import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { BlockMaps, LEASE_MS } from '../../src/services/blockmaps.js';
import { LocalMapSource } from '../../src/services/local-map.js';
import type { Principal } from '../../src/services/principal.js';
import { isObjectId } from '../../src/storage/blockmap/index.js';
import { LeaseHeld, LeaseLost } from '../../src/storage/frontend/map.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault } from './fixtures.js';
import { Clock, registerNode } from './storage-fixtures.js';

const objects = (m: BlockMaps, volumeId: string) => m.locations(volumeId);

forEachDb('block map: the write lease', (env) => {
  let t: Principal;
  let maps: BlockMaps;
  const clock = new Clock();
  before(async () => {
    t = await newTenant(env.services, 'lease');
    await registerNode(env.services, 'sn-lease');
    maps = new BlockMaps(env.db, { now: clock.now });
  });

  it('open takes the lease; another holder gets LeaseHeld while it lives; the same holder reopens with the next epoch', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const a = await maps.open(vol, 'host-aaaaaaaaaaaa');
    assert.equal(a.epoch, 1);
    assert.equal(a.leaseMs, LEASE_MS);
    await assert.rejects(maps.open(vol, 'host-bbbbbbbbbbbb'), (e) => e instanceof LeaseHeld && e.holder === 'host-aaaaaaaaaaaa');
    const again = await maps.open(vol, 'host-aaaaaaaaaaaa');
    assert.equal(again.epoch, 2);
    // The older session is fenced.
    await assert.rejects(maps.renew(vol, 'host-aaaaaaaaaaaa', 1), LeaseLost);
    await assert.rejects(maps.allocate(vol, 'host-aaaaaaaaaaaa', 1, [0]), LeaseLost);
    await maps.renew(vol, 'host-aaaaaaaaaaaa', 2);
    assert.deepEqual(await maps.leaseOf(vol), { holder: 'host-aaaaaaaaaaaa', epoch: 2, expiresAt: new Date(clock.t + LEASE_MS).toISOString() });
  });

  it('a lapsed lease still works for its holder until someone takes it over, then LeaseLost', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const a = await maps.open(vol, 'host-aaaaaaaaaaaa');
    clock.advance(LEASE_MS - 1);
    await assert.rejects(maps.open(vol, 'export:tool'), LeaseHeld);
    clock.advance(2);
    await maps.allocate(vol, 'host-aaaaaaaaaaaa', a.epoch, [3]);
    await maps.renew(vol, 'host-aaaaaaaaaaaa', a.epoch);
    clock.advance(LEASE_MS + 1);
    const b = await maps.open(vol, 'export:tool');
    assert.equal(b.epoch, a.epoch + 1);
    assert.deepEqual(b.blocks.map((x) => x.block), [3]);
    for (const call of [
      () => maps.renew(vol, 'host-aaaaaaaaaaaa', a.epoch), () => maps.allocate(vol, 'host-aaaaaaaaaaaa', a.epoch, [1]),
      () => maps.update(vol, 'host-aaaaaaaaaaaa', a.epoch, []), () => maps.discard(vol, 'host-aaaaaaaaaaaa', a.epoch, [3]),
      () => maps.release(vol, 'host-aaaaaaaaaaaa', a.epoch), () => maps.removeLocation(vol, 'host-aaaaaaaaaaaa', a.epoch, 'node-x'),
      // The right epoch under another holder's name is no better.
      () => maps.renew(vol, 'host-aaaaaaaaaaaa', b.epoch),
    ]) await assert.rejects(call(), LeaseLost);
  });

  it('release gives the lease up: anyone may open, epochs keep growing, the released session is fenced', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const a = await maps.open(vol, 'export:one');
    await maps.release(vol, 'export:one', a.epoch);
    assert.equal(await maps.leaseOf(vol), null);
    await assert.rejects(maps.renew(vol, 'export:one', a.epoch), LeaseLost);
    const b = await maps.open(vol, 'export:two');
    assert.equal(b.epoch, a.epoch + 1);
    await maps.release(vol, 'export:two', b.epoch);
    assert.equal((await maps.open(vol, 'export:one')).epoch, b.epoch + 1);
  });

  it('LocalMapSource is the same map under one holder', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const local = LocalMapSource.forController(maps, 'c1');
    assert.equal(local.holder, 'controller:c1');
    const m = await local.open(vol);
    const [e] = await local.allocate(vol, m.epoch, [7]);
    assert.equal(e.block, 7);
    await local.renew(vol, m.epoch);
    await assert.rejects(maps.open(vol, 'host-aaaaaaaaaaaa'), (x) => x instanceof LeaseHeld && x.holder === 'controller:c1');
    await local.release(vol, m.epoch);
  });

  it('opening an unknown volume is NOT_FOUND; a bad holder INVALID_PARAMS', async () => {
    await fault(maps.open('vol-000000000000', 'export:x'), Fault.NOT_FOUND);
    await fault(maps.open('vol-000000000000', ''), Fault.INVALID_PARAMS);
  });
});

forEachDb('block map: blocks and replicas', (env) => {
  let t: Principal;
  let maps: BlockMaps;
  let n1 = '', n2 = '', n3 = '';
  const H = 'export:t';
  before(async () => {
    t = await newTenant(env.services, 'blocks');
    n1 = (await registerNode(env.services, 'sn1')).nodeId;
    n2 = (await registerNode(env.services, 'sn2')).nodeId;
    maps = env.services.blockMaps;
  });

  it('a volume gets its locations at allocation, and no block rows until written', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 64 });
    const locs = await maps.locations(vol);
    assert.deepEqual(locs.map((l) => l.nodeId).sort(), [n1, n2].sort());
    assert.deepEqual(locs.map((l) => [l.zone, l.inSync, l.syncing, l.outOfSync]), [['zone-a', 0, 0, 0], ['zone-a', 0, 0, 0]]);
    const rows = await env.db.k.selectFrom('volume_blocks').select('block').where('volume_id', '=', vol).execute();
    assert.equal(rows.length, 0);
    const m = await maps.open(vol, H);
    assert.equal(m.sizeBytes, 64 * 1024 ** 3);
    assert.equal(m.blockSize, 4 * 1024 * 1024);
    assert.deepEqual(m.blocks, []);
    assert.deepEqual(m.nodes.map((n) => n.nodeId).sort(), [n1, n2].sort());
    await maps.release(vol, H, m.epoch);
  });

  it('allocate is idempotent, places in-sync copies on every location, and refuses blocks past the end', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const { epoch } = await maps.open(vol, H);
    const first = await maps.allocate(vol, H, epoch, [0, 5, 5]);
    assert.deepEqual(first.map((e) => e.block), [0, 5]);
    for (const e of first) {
      assert.ok(isObjectId(e.objectId));
      assert.deepEqual(e.replicas.map((r) => r.state), ['in-sync', 'in-sync']);
      assert.deepEqual(e.replicas.map((r) => r.nodeId).sort(), [n1, n2].sort());
    }
    const second = await maps.allocate(vol, H, epoch, [5, 255]);
    assert.equal(second[0].objectId, first[1].objectId);
    assert.notEqual(second[1].objectId, first[0].objectId);
    await fault(maps.allocate(vol, H, epoch, [256]), Fault.INVALID_PARAMS, /beyond the end/);
    await fault(maps.allocate(vol, H, epoch, [-1]), Fault.INVALID_PARAMS);
    await fault(maps.allocate(vol, H, epoch, [1.5]), Fault.INVALID_PARAMS);
    const reopened = await maps.open(vol, H);
    assert.deepEqual(reopened.blocks.map((b) => b.block), [0, 5, 255]);
    await maps.release(vol, H, reopened.epoch);
  });

  it('update records replica states of allocated blocks on locations; null removes a replica', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const { epoch } = await maps.open(vol, H);
    await maps.allocate(vol, H, epoch, [0, 1, 2]);
    await maps.update(vol, H, epoch, [
      { block: 0, nodeId: n2, state: 'out-of-sync' }, { block: 1, nodeId: n2, state: 'syncing' },
      { block: 2, nodeId: n2, state: 'out-of-sync' }, { block: 2, nodeId: n2, state: null },
    ]);
    const by = Object.fromEntries((await objects(maps, vol)).map((l) => [l.nodeId, [l.inSync, l.syncing, l.outOfSync]]));
    assert.deepEqual(by, { [n1]: [3, 0, 0], [n2]: [0, 1, 1] });
    await fault(maps.update(vol, H, epoch, [{ block: 9, nodeId: n1, state: 'in-sync' }]), Fault.INVALID_PARAMS, /not allocated/);
    n3 = n3 || (await registerNode(env.services, 'sn3')).nodeId;
    await fault(maps.update(vol, H, epoch, [{ block: 0, nodeId: n3, state: 'in-sync' }]), Fault.INVALID_PARAMS, /not a location/);
    await fault(maps.update(vol, H, epoch, [{ block: 0, nodeId: n1, state: 'fine' as never }]), Fault.INVALID_PARAMS);
    await maps.release(vol, H, epoch);
  });

  it('discard unallocates blocks and makes their objects garbage on every node that had them', async () => {
    const vol = await env.services.volumes.allocate(t, { sizeGiB: 1 });
    const { epoch, locations: [la, lb] } = await maps.open(vol, H);
    const [b0, b1] = await maps.allocate(vol, H, epoch, [0, 1]);
    await maps.update(vol, H, epoch, [{ block: 1, nodeId: lb, state: null }]);
    await maps.discard(vol, H, epoch, [1, 0, 42]);
    assert.deepEqual((await maps.open(vol, H)).blocks, []);
    const ga = await maps.garbage(la);
    const gb = await maps.garbage(lb);
    assert.ok(ga.includes(b0.objectId) && ga.includes(b1.objectId));
    assert.ok(gb.includes(b0.objectId) && !gb.includes(b1.objectId));
    await maps.garbageDone(la, [b0.objectId]);
    assert.ok(!(await maps.garbage(la)).includes(b0.objectId));
    assert.ok((await maps.garbage(la)).includes(b1.objectId));
    const rows = await env.db.k.selectFrom('object_replicas').select('object_id').where('object_id', 'in', [b0.objectId, b1.objectId]).execute();
    assert.equal(rows.length, 0);
  });

  it('addLocation adds out-of-sync copies; removeLocation refuses to drop the last in-sync copy, then garbage-collects', async () => {
    const s = env.services;
    n3 = n3 || (await registerNode(s, 'sn3')).nodeId;
    const vol = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 1 });
    const [old] = (await maps.locations(vol)).map((l) => l.nodeId);
    const target = [n1, n2, n3].find((n) => n !== old)!;
    const { epoch } = await maps.open(vol, H);
    const entries = await maps.allocate(vol, H, epoch, [0, 1, 2]);
    await fault(maps.addLocation(vol, H, epoch, 'node-000000000000'), Fault.NOT_FOUND);
    await fault(maps.addLocation(vol, H, epoch, old), Fault.INVALID_STATE, /already a location/);
    await fault(maps.removeLocation(vol, H, epoch, old), Fault.INVALID_STATE, /only location/);
    const addr = await maps.addLocation(vol, H, epoch, target);
    assert.equal(addr.nodeId, target);
    assert.equal(addr.port, 10809);
    assert.ok(addr.token.length > 0);
    assert.deepEqual((await maps.locations(vol)).map((l) => [l.nodeId, l.inSync, l.outOfSync]), [[old, 3, 0], [target, 0, 3]]);
    await fault(maps.removeLocation(vol, H, epoch, old), Fault.INVALID_STATE, /only in-sync copy of 3 blocks/);
    await fault(maps.removeLocation(vol, H, epoch, [n1, n2, n3].find((n) => n !== old && n !== target)!), Fault.INVALID_STATE, /not a location/);
    await maps.update(vol, H, epoch, [0, 1].map((block) => ({ block, nodeId: target, state: 'in-sync' as const })));
    await fault(maps.removeLocation(vol, H, epoch, old), Fault.INVALID_STATE, /only in-sync copy of 1 block of/);
    await maps.update(vol, H, epoch, [{ block: 2, nodeId: target, state: 'in-sync' }]);
    await maps.removeLocation(vol, H, epoch, old);
    assert.deepEqual((await maps.locations(vol)).map((l) => [l.nodeId, l.inSync]), [[target, 3]]);
    const garbage = await maps.garbage(old);
    for (const e of entries) assert.ok(garbage.includes(e.objectId));
    // The old node may come back only once it has deleted what it held.
    await fault(maps.addLocation(vol, H, epoch, old), Fault.INVALID_STATE, /not yet deleted 3 objects/);
    await maps.garbageDone(old, entries.map((e) => e.objectId));
    await maps.addLocation(vol, H, epoch, old);
    assert.deepEqual((await maps.locations(vol)).map((l) => [l.nodeId, l.outOfSync]), [[target, 0], [old, 3]]);
    await maps.release(vol, H, epoch);
  });
});

forEachDb('block map: placement', (env) => {
  it('without storage nodes a volume waits for its first open, which says how to start one', async () => {
    const s = env.services;
    const t = await newTenant(s, 'early');
    const vol = await s.volumes.allocate(t, { sizeGiB: 1 });
    assert.equal((await s.volumes.info(t, vol)).replicas, 1);
    assert.deepEqual((await s.volumes.info(t, vol)).locations, []);
    await fault(s.blockMaps.open(vol, 'export:x'), Fault.INVALID_STATE, /no storage node is up: start `kumo storage-node`/);
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const sys = (await s.vms.info(t, vm)).disks[0].volumeId;
    assert.equal((await s.volumes.info(t, sys)).replicas, 1);

    const { nodeId } = await registerNode(s, 'only', 'zone-a');
    const m = await s.blockMaps.open(vol, 'export:x');
    assert.deepEqual(m.locations, [nodeId]);
    assert.deepEqual((await s.volumes.info(t, vol)).locations, [{ nodeId, zone: 'zone-a', inSync: 0, syncing: 0, outOfSync: 0 }]);
    const one = await s.volumes.allocate(t, { sizeGiB: 1 });
    assert.equal((await s.volumes.info(t, one)).replicas, 1);
    assert.equal((await s.volumes.info(t, one)).locations.length, 1);
  });

  it('with two nodes volumes get two copies by default; one copy goes near the volume\'s zone or its first host', async () => {
    const s = env.services;
    const t = await newTenant(s, 'later');
    const b = (await registerNode(s, 'far', 'zone-b', { freeBytes: 1 })).nodeId;
    const two = await s.volumes.allocate(t, { sizeGiB: 1 });
    assert.equal((await s.volumes.info(t, two)).replicas, 2);
    assert.equal((await s.volumes.info(t, two)).locations.length, 2);
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const sys = (await s.vms.info(t, vm)).disks[0].volumeId;
    assert.deepEqual((await s.volumes.info(t, sys)).locations.length, 2);
    // The node in zone-b has the least free space, so only a zone preference picks it.
    const near = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 1, zone: 'zone-b' });
    assert.deepEqual((await s.volumes.info(t, near)).locations.map((l) => l.nodeId), [b]);
    const anywhere = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 1 });
    assert.notEqual((await s.volumes.info(t, anywhere)).locations[0].nodeId, b);
    // Placed at first open, near the host that opens it.
    const late = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 1 });
    await env.db.k.deleteFrom('volume_locations').where('volume_id', '=', late).execute();
    const r = await s.hosts.register(await s.hosts.joinToken(), { zone: 'zone-b', url: 'http://127.0.0.1:9', driver: 'sim', accel: 'sim', hosts: [{ name: 'hb', vcpus: 4, memoryMiB: 4096, architectures: ['x86_64'] }] });
    assert.deepEqual((await s.blockMaps.open(late, r.hosts[0].hostId)).locations, [b]);
  });

  it('replicas are capped by the nodes that are up', async () => {
    const s = env.services;
    const t = await newTenant(s, 'capped');
    await env.db.k.updateTable('storage_nodes').set({ status: 'down' }).where('name', '=', 'far').execute();
    const v = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 3 });
    assert.equal((await s.volumes.info(t, v)).replicas, 3);
    assert.equal((await s.volumes.info(t, v)).locations.length, 1);
    await env.db.k.updateTable('storage_nodes').set({ status: 'up' }).where('name', '=', 'far').execute();
  });
});
