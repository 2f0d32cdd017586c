import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';

// What migrateVm and drainHost check before they queue anything, and what cancelRequest does to a
// running migration: the handlers' real work is covered by the QEMU end-to-end tests.
forEachDb('migrateVm, drainHost and cancelling them', (env) => {
  let t: Principal, other: Principal, admin: Principal;
  let vm = '', h1 = '', h2 = '';

  before(async () => {
    const s = env.services;
    t = await newTenant(s, 'mover');
    other = await newTenant(s, 'nosy');
    admin = await newTenant(s, 'ops', {}, true);
    [h1, h2] = await registerDeadHosts(s, 'zone-a', [{ name: 'h1' }, { name: 'h2' }]);
    vm = await s.vms.allocate(t, { type: 'be.small' });
  });

  const running = (hostId: string | null) => env.db.k.updateTable('vms')
    .set({ status: hostId ? 'running' : 'stopped', power: hostId ? 'on' : 'off', host_id: hostId }).where('id', '=', vm).execute();

  it('migrateVm refuses bad targets and stopped VMs, then queues one request per VM', async () => {
    const s = env.services;
    await fault(s.vms.migrate(t, 'vm-000000000000', {}), Fault.NOT_FOUND);
    await fault(s.vms.migrate(other, vm, {}), Fault.NOT_FOUND);
    await fault(s.vms.migrate(t, vm, { host: h2 }), Fault.AUTHORIZATION);
    await fault(s.vms.migrate(admin, vm, { host: 'host-000000000000' }), Fault.NOT_FOUND);
    await fault(s.vms.migrate(t, vm, { zone: 'atlantis' }), Fault.INVALID_PARAMS);
    await fault(s.vms.migrate(t, vm, {}), Fault.INVALID_STATE, /needs .* running/);
    await running(h1);
    try {
      await fault(s.vms.migrate(admin, vm, { host: h1 }), Fault.INVALID_STATE, /already runs on/);
      const id = await s.vms.migrate(admin, vm, { host: h2, followStorage: true });
      const r = await env.db.k.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(r.method, 'migrateVm');
      assert.equal(r.resource_id, vm);
      assert.deepEqual(JSON.parse(r.params), { host: h2, followStorage: true });
      await fault(s.vms.migrate(t, vm, {}), Fault.CONFLICT, /migrateVm/);
      // Running: cancelRequest asks the handler to roll back instead of refusing.
      await env.db.k.updateTable('requests').set({ status: 'running', owner: 'elsewhere' }).where('id', '=', id).execute();
      assert.equal(await s.requests.cancel(t, id), true);
      const after = await env.db.k.selectFrom('requests').select(['status', 'cancel_requested']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(after, { status: 'running', cancel_requested: 1 });
      await env.db.k.updateTable('requests').set({ status: 'failed' }).where('id', '=', id).execute();
    } finally {
      await running(null);
    }
  });

  it('drainHost is for admins, puts the host in maintenance at once and queues one drain at a time', async () => {
    const s = env.services;
    await fault(s.hosts.drain(t, h1, s.requests), Fault.AUTHORIZATION);
    await fault(s.hosts.drain(admin, 'host-000000000000', s.requests), Fault.NOT_FOUND);
    const id = await s.hosts.drain(admin, h1, s.requests);
    const host = await env.db.k.selectFrom('hosts').select('maintenance').where('id', '=', h1).executeTakeFirstOrThrow();
    assert.equal(host.maintenance, 1);
    const r = await env.db.k.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(r.method, 'drainHost');
    await fault(s.hosts.drain(admin, h1, s.requests), Fault.CONFLICT, /drainHost/);
  });

  it('a running request whose method cannot roll back is still refused with CONFLICT', async () => {
    const s = env.services;
    const id = await s.vms.powerOn(t, vm);
    await env.db.k.updateTable('requests').set({ status: 'running', owner: 'elsewhere' }).where('id', '=', id).execute();
    await fault(s.requests.cancel(t, id), Fault.CONFLICT, /cannot be rolled back/);
    await env.db.k.updateTable('requests').set({ status: 'failed' }).where('id', '=', id).execute();
  });
});
