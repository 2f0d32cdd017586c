import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';

// A tenant must not learn that another tenant's resources exist: every access answers NOT_FOUND,
// exactly as for an id that was never issued.
forEachDb('tenant scoping', (env) => {
  let alice: Principal, bob: Principal, admin: Principal;
  const a = { vm: '', vol: '', net: '', req: '' };

  before(async () => {
    const s = env.services;
    alice = await newTenant(s, 'alice');
    bob = await newTenant(s, 'bob');
    admin = await newTenant(s, 'operator', {}, true);
    await registerDeadHosts(s, 'zone-a', [{ name: 'h1' }]);
    a.vm = await s.vms.allocate(alice, { type: 'be.small', name: 'alice-web' });
    a.vol = await s.volumes.allocate(alice, { sizeGiB: 5, name: 'alice-data' });
    a.net = await s.networks.allocate(alice, { name: 'alice-lan' });
    a.req = await s.vms.powerOn(alice, a.vm);
    await s.vms.allocate(bob, { type: 'be.small', name: 'bob-web' });
    await s.volumes.allocate(bob, { sizeGiB: 5, name: 'bob-data' });
  });

  it('answers NOT_FOUND for every read of another tenant\'s VM, volume, network and request', async () => {
    const s = env.services;
    await fault(s.vms.info(bob, a.vm), Fault.NOT_FOUND);
    await fault(s.vms.status(bob, a.vm), Fault.NOT_FOUND);
    await fault(s.volumes.info(bob, a.vol), Fault.NOT_FOUND);
    await fault(s.networks.info(bob, a.net), Fault.NOT_FOUND);
    await fault(s.requests.get(bob, a.req), Fault.NOT_FOUND);
    await fault(s.requests.wait(bob, a.req, 0), Fault.NOT_FOUND);
    await fault(s.comments.get(bob, a.vm), Fault.NOT_FOUND);
  });

  it('answers NOT_FOUND for every change to another tenant\'s resources, and changes nothing', async () => {
    const s = env.services;
    const bobVm = (await s.vms.list(bob))[0].vmId;
    await fault(s.vms.powerOn(bob, a.vm), Fault.NOT_FOUND);
    await fault(s.vms.deallocate(bob, a.vm), Fault.NOT_FOUND);
    await fault(s.vms.changeType(bob, a.vm, 'be.medium'), Fault.NOT_FOUND);
    await fault(s.volumes.deallocate(bob, a.vol), Fault.NOT_FOUND);
    await fault(s.volumes.attach(bob, bobVm, a.vol), Fault.NOT_FOUND);
    await fault(s.networks.attach(bob, bobVm, a.net), Fault.NOT_FOUND);
    await fault(s.networks.deallocate(bob, a.net), Fault.NOT_FOUND);
    await fault(s.requests.cancel(bob, a.req), Fault.NOT_FOUND);
    await fault(s.comments.set(bob, a.vol, 'mine now'), Fault.NOT_FOUND);
    assert.equal((await s.vms.info(alice, a.vm)).type, 'be.small');
    assert.equal((await s.requests.get(alice, a.req)).status, 'queued');
    assert.equal((await s.volumes.info(alice, a.vol)).volumeId, a.vol);
  });

  it('lists only the caller\'s own resources', async () => {
    const s = env.services;
    assert.deepEqual((await s.vms.list(bob)).map((v) => v.name), ['bob-web']);
    assert.deepEqual((await s.volumes.list(bob)).map((v) => v.name).sort(), ['bob-data', 'bob-web-system']);
    assert.deepEqual(await s.networks.list(bob), []);
    assert.deepEqual(await s.requests.list(bob), []);
    assert.deepEqual((await s.vms.list(alice)).map((v) => v.vmId), [a.vm]);
    assert.deepEqual((await s.requests.list(alice)).map((r) => r.requestId), [a.req]);
  });

  it('lets an admin see and read every tenant\'s resources', async () => {
    const s = env.services;
    assert.deepEqual((await s.vms.list(admin)).map((v) => v.name).sort(), ['alice-web', 'bob-web']);
    assert.equal((await s.volumes.list(admin)).length, 4);
    assert.deepEqual((await s.networks.list(admin)).map((n) => n.networkId), [a.net]);
    assert.equal((await s.vms.info(admin, a.vm)).name, 'alice-web');
    assert.equal((await s.requests.get(admin, a.req)).resourceId, a.vm);
  });

  it('keeps admin methods from tenant users (AUTHORIZATION)', async () => {
    const s = env.services;
    await fault(s.hosts.list(alice), Fault.AUTHORIZATION);
    await fault(s.tenants.createTenant(alice, { name: 'mallory' }), Fault.AUTHORIZATION);
    await fault(s.networks.createShared(alice, { name: 'pub', cidr: '198.51.100.0/29', gateway: '198.51.100.1' }), Fault.AUTHORIZATION);
  });
});
