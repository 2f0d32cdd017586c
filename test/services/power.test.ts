import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { InProcessCloud, fault, registerDeadHosts } from './fixtures.js';

forEachDb('placement dry-run', (env) => {
  it('answers NO_CAPACITY at once when no host could take the VM', async () => {
    const s = env.services;
    const t = await newTenant(s, 'early');
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    await fault(s.vms.powerOn(t, vm), Fault.NO_CAPACITY);
    assert.deepEqual(await s.requests.list(t), []);
    await registerDeadHosts(s, 'zone-a', [{ name: 'tiny', vcpus: 1, memoryMiB: 256 }]);
    await fault(s.vms.powerOn(t, vm), Fault.NO_CAPACITY, /memory/);
  });

  it('places dedicated VMs only on a host dedicated to their tenant', async () => {
    const s = env.services;
    const admin = await newTenant(s, 'ops', {}, true);
    const t = await newTenant(s, 'bank');
    const other = await newTenant(s, 'shop');
    const [hostId] = await registerDeadHosts(s, 'zone-d', [{ name: 'big', vcpus: 64, memoryMiB: 262144 }]);
    const vm = await s.vms.allocate(t, { type: 'dd.medium' });
    assert.equal((await s.vms.info(t, vm)).resourceType, 'dedicated');
    await fault(s.vms.powerOn(t, vm), Fault.NO_CAPACITY, /dedicated/);
    await fault(s.hosts.setPool(admin, hostId, { pool: 'dedicated' }), Fault.INVALID_PARAMS);
    await fault(s.hosts.setPool(admin, hostId, { pool: 'dedicated', tenantId: 'tenant-000000000000' }), Fault.NOT_FOUND);
    await fault(s.hosts.setPool(t, hostId, { pool: 'dedicated', tenantId: t.tenantId }), Fault.AUTHORIZATION);
    await s.hosts.setPool(admin, hostId, { pool: 'dedicated', tenantId: t.tenantId });
    assert.match(await s.vms.powerOn(t, vm), /^req-/);
    const theirs = await s.vms.allocate(other, { type: 'dd.medium' });
    await fault(s.vms.powerOn(other, theirs), Fault.NO_CAPACITY);
    assert.equal((await s.hosts.info(admin, hostId)).dedicatedTenant, t.tenantId);
  });
});

// Power-on end to end: request engine → scheduler → agent over HTTP → sim driver → VM row.
forEachDb('power requests with an agent', (env) => {
  let cloud: InProcessCloud;
  let t: Principal, admin: Principal;
  before(async () => {
    t = await newTenant(env.services, 'acme');
    admin = await newTenant(env.services, 'ops', {}, true);
    cloud = new InProcessCloud(env.services);
    await cloud.start();
  });
  after(() => cloud.stop());

  it('powers a VM on: the request succeeds and the VM runs on the agent\'s host', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small', name: 'web' });
    const req = await s.vms.powerOn(t, vm);
    const done = await cloud.finish(t, req);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.progress, 100);
    assert.deepEqual(done.result, { host: cloud.hostId });
    assert.ok(done.startedAt <= done.finishedAt);
    const info = await s.vms.info(t, vm);
    assert.deepEqual([info.status, info.power, info.host, info.zone], ['running', 'on', cloud.hostId, 'zone-a']);
    assert.equal((await s.hosts.info(admin, cloud.hostId)).vmList[0].vmId, vm);

    // A running VM: state rules apply; with no other host, a migration finds no capacity and the VM runs on.
    await fault(s.vms.changeType(t, vm, 'be.medium'), Fault.INVALID_STATE);
    await fault(s.vms.deallocate(t, vm), Fault.INVALID_STATE);
    await fault(s.vms.powerOn(t, vm), Fault.INVALID_STATE);
    const mig = await cloud.finish(t, await s.vms.migrate(t, vm, {}));
    assert.equal(mig.status, 'failed');
    assert.equal((mig.error as { code: number }).code, Fault.NO_CAPACITY);
    assert.deepEqual([(await s.vms.info(t, vm)).status, (await s.vms.info(t, vm)).host], ['running', cloud.hostId]);

    const reset = await cloud.finish(t, await s.vms.reset(t, vm));
    assert.equal(reset.status, 'succeeded');
    const off = await cloud.finish(t, await s.vms.powerOff(t, vm, true));
    assert.equal(off.status, 'succeeded', JSON.stringify(off.error));
    const stopped = await s.vms.info(t, vm);
    assert.deepEqual([stopped.status, stopped.power, stopped.host], ['stopped', 'off', '']);
    await s.vms.deallocate(t, vm);
  });

  it('runs a dedicated VM once its tenant has a dedicated host', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'dd.medium' });
    await fault(s.vms.powerOn(t, vm), Fault.NO_CAPACITY);
    await s.hosts.setPool(admin, cloud.hostId, { pool: 'dedicated', tenantId: t.tenantId });
    try {
      const done = await cloud.finish(t, await s.vms.powerOn(t, vm));
      assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
      assert.equal((await s.vms.info(t, vm)).host, cloud.hostId);
      // A best-effort VM may not share a dedicated host.
      await fault(s.vms.powerOn(t, await s.vms.allocate(t, { type: 'be.small' })), Fault.NO_CAPACITY);
      assert.equal((await cloud.finish(t, await s.vms.powerOff(t, vm, true))).status, 'succeeded');
    } finally {
      await s.hosts.setPool(admin, cloud.hostId, { pool: 'shared' });
    }
  });

  it('runs queued power requests on one VM one after the other', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const on = await s.vms.powerOn(t, vm);
    const off = await s.vms.powerOff(t, vm);
    const a = await cloud.finish(t, on);
    const b = await cloud.finish(t, off);
    assert.deepEqual([a.status, b.status], ['succeeded', 'succeeded']);
    assert.ok(a.finishedAt <= b.startedAt, `${off} started ${b.startedAt} before ${on} ended ${a.finishedAt}`);
    assert.equal((await s.vms.info(t, vm)).status, 'stopped');
  });

  it('fails a power-on whose host cannot be reached and gives the capacity back', async () => {
    const s = env.services;
    await s.hosts.setMaintenance(admin, cloud.hostId, true);
    const [dead] = await registerDeadHosts(s, 'zone-a', [{ name: 'gone' }]);
    try {
      const vm = await s.vms.allocate(t, { type: 'be.small' });
      const done = await cloud.finish(t, await s.vms.powerOn(t, vm));
      assert.equal(done.status, 'failed');
      // A host whose agent is gone is a state of the cloud, not a bug; its address stays private.
      assert.equal((done.error as { code: number }).code, Fault.INVALID_STATE);
      assert.match(done.message, /host gone does not answer/);
      assert.doesNotMatch(done.message, /http:/);
      const info = await s.vms.info(t, vm);
      assert.deepEqual([info.status, info.power, info.host], ['stopped', 'off', '']);
    } finally {
      await s.hosts.setMaintenance(admin, cloud.hostId, false);
      await s.hosts.setMaintenance(admin, dead, true);
    }
  });
});
