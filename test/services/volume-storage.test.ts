import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault } from './fixtures.js';
import { registerNode } from './storage-fixtures.js';

// The volume service over the block map: deletion, relocation requests, resync.
forEachDb('volumes on storage nodes', (env) => {
  let t: Principal, other: Principal;
  let n1 = '', n2 = '';
  before(async () => {
    t = await newTenant(env.services, 'vols');
    other = await newTenant(env.services, 'nosy');
    n1 = (await registerNode(env.services, 'sn1')).nodeId;
    n2 = (await registerNode(env.services, 'sn2')).nodeId;
    await registerNode(env.services, 'sn3', 'zone-b', { freeBytes: 1 });
  });

  it('deallocating a volume is refused while a frontend holds it; afterwards every copy is garbage and no row is left', async () => {
    const s = env.services;
    const vol = await s.volumes.allocate(t, { sizeGiB: 1 });
    const m = await s.blockMaps.open(vol, 'host-aaaaaaaaaaaa');
    const blocks = await s.blockMaps.allocate(vol, 'host-aaaaaaaaaaaa', m.epoch, [0, 1]);
    await fault(s.volumes.deallocate(t, vol), Fault.INVALID_STATE, /in use by host-aaaaaaaaaaaa/);
    await s.blockMaps.release(vol, 'host-aaaaaaaaaaaa', m.epoch);
    await s.volumes.deallocate(t, vol);
    for (const node of m.locations) {
      const g = await s.blockMaps.garbage(node);
      for (const b of blocks) assert.ok(g.includes(b.objectId), `${b.objectId} is garbage on ${node}`);
    }
    for (const table of ['volume_blocks', 'volume_locations', 'volume_leases'] as const) {
      assert.equal((await env.db.k.selectFrom(table).select('volume_id').where('volume_id', '=', vol).execute()).length, 0, table);
    }
    const ids = blocks.map((b) => b.objectId);
    assert.equal((await env.db.k.selectFrom('object_replicas').select('object_id').where('object_id', 'in', ids).execute()).length, 0);
  });

  it('deallocating a VM makes its system volume\'s copies garbage', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const sys = (await s.vms.info(t, vm)).disks[0].volumeId;
    const m = await s.blockMaps.open(sys, 'export:x');
    const [b] = await s.blockMaps.allocate(sys, 'export:x', m.epoch, [3]);
    await fault(s.vms.deallocate(t, vm), Fault.INVALID_STATE, /in use by export:x/);
    await s.blockMaps.release(sys, 'export:x', m.epoch);
    await s.vms.deallocate(t, vm);
    assert.ok((await s.blockMaps.garbage(m.locations[0])).includes(b.objectId));
    await fault(s.volumes.info(t, sys), Fault.NOT_FOUND);
  });

  it('addVolumeLocation / removeVolumeLocation check at once, then queue a request on the volume', async () => {
    const s = env.services;
    const vol = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 1 });
    const [here] = (await s.volumes.info(t, vol)).locations.map((l) => l.nodeId);
    const there = [n1, n2].find((n) => n !== here)!;
    await fault(s.volumes.addLocation(other, vol, there), Fault.NOT_FOUND);
    await fault(s.volumes.addLocation(t, vol, 'node-000000000000'), Fault.NOT_FOUND);
    await fault(s.volumes.addLocation(t, vol, here), Fault.INVALID_STATE, /already a location/);
    await fault(s.volumes.removeLocation(t, vol, there), Fault.INVALID_STATE, /not a location/);
    await fault(s.volumes.removeLocation(t, vol, here), Fault.INVALID_STATE, /only location/);
    const req = await s.volumes.addLocation(t, vol, there);
    assert.match(req, /^req-/);
    const info = await s.requests.get(t, req);
    assert.deepEqual([info.method, info.resourceId, info.status], ['addVolumeLocation', vol, 'queued']);
    const row = await env.db.k.selectFrom('requests').select(['params', 'tenant_id']).where('id', '=', req).executeTakeFirstOrThrow();
    assert.deepEqual(JSON.parse(row.params), { nodeId: there });
    assert.equal(row.tenant_id, t.tenantId);
    await fault(s.volumes.addLocation(t, vol, there), Fault.CONFLICT);
    // While a request is queued on it, the volume cannot go, and the resync reconciler waits.
    await fault(s.volumes.deallocate(t, vol), Fault.CONFLICT);
    assert.equal(await s.volumes.submitSync(vol, here), null);
    await env.db.k.updateTable('requests').set({ status: 'cancelled' }).where('id', '=', req).execute();

    // The second location, as the handler would make it: blocks written only on the first are its last in-sync copies.
    const m = await s.blockMaps.open(vol, 'export:y');
    await s.blockMaps.allocate(vol, 'export:y', m.epoch, [0, 1]);
    await s.blockMaps.addLocation(vol, 'export:y', m.epoch, there);
    await fault(s.volumes.removeLocation(t, vol, here), Fault.INVALID_STATE, /only in-sync copy of 2 blocks/);
    assert.match(await s.volumes.removeLocation(t, vol, there), /^req-/);
    await s.blockMaps.release(vol, 'export:y', m.epoch);
  });

  it('needsResync names copies not in sync on nodes that are up; submitSync queues one syncVolume per volume', async () => {
    const s = env.services;
    const vol = await s.volumes.allocate(t, { sizeGiB: 1 });
    const m = await s.blockMaps.open(vol, 'export:z');
    const [a, b] = m.locations;
    await s.blockMaps.allocate(vol, 'export:z', m.epoch, [0, 1]);
    await s.blockMaps.update(vol, 'export:z', m.epoch, [{ block: 1, nodeId: b, state: 'out-of-sync' }]);
    const mine = async () => (await s.blockMaps.needsResync()).filter((r) => r.volumeId === vol);
    assert.deepEqual(await mine(), [{ volumeId: vol, nodeId: b, tenantId: t.tenantId }]);
    await env.db.k.updateTable('storage_nodes').set({ status: 'down' }).where('id', '=', b).execute();
    assert.deepEqual(await mine(), []);
    await env.db.k.updateTable('storage_nodes').set({ status: 'up' }).where('id', '=', b).execute();
    assert.deepEqual((await s.volumes.info(t, vol)).locations.map((l) => [l.nodeId, l.inSync, l.syncing, l.outOfSync]), [[a, 2, 0, 0], [b, 1, 0, 1]]);
    const req = await s.volumes.submitSync(vol, b);
    assert.match(req ?? '', /^req-/);
    assert.equal((await s.requests.get(t, req!)).method, 'syncVolume');
    assert.equal(await s.volumes.submitSync(vol, b), null);
    assert.equal(await s.volumes.submitSync('vol-000000000000', b), null);
    await s.blockMaps.release(vol, 'export:z', m.epoch);
  });
});
