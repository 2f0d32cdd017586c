import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { now } from '../../src/state/db.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { HEX12, fault } from './fixtures.js';

const BIG = 'x'.repeat(1 << 20);

forEachDb('ids, names and state rules', (env) => {
  let t: Principal;
  before(async () => { t = await newTenant(env.services, 'rules'); });

  it('issues ids as kind prefix + 12 hex digits', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const vol = await s.volumes.allocate(t, { sizeGiB: 1 });
    const net = await s.networks.allocate(t, {});
    assert.match(vm, /^vm-[0-9a-f]{12}$/);
    assert.match(vol, /^vol-[0-9a-f]{12}$/);
    assert.match(net, /^net-[0-9a-f]{12}$/);
    assert.match((await s.vms.info(t, vm)).disks[0].volumeId, /^vol-[0-9a-f]{12}$/);
    assert.match(t.tenantId.replace(/^tenant-/, ''), HEX12);
    // An unnamed resource is called by its id.
    assert.equal((await s.vms.info(t, vm)).name, vm);
  });

  it('rejects bad names (1 MiB, empty, leading punctuation) with INVALID_PARAMS and writes nothing', async () => {
    const s = env.services;
    const before = (await s.tenants.getQuota(t)).usage;
    for (const name of [BIG, '', '-x', 'a\nb', 'x'.repeat(64)]) {
      await fault(s.vms.allocate(t, { type: 'be.small', name }), Fault.INVALID_PARAMS);
      await fault(s.volumes.allocate(t, { sizeGiB: 1, name }), Fault.INVALID_PARAMS);
      await fault(s.networks.allocate(t, { name }), Fault.INVALID_PARAMS);
    }
    assert.deepEqual((await s.tenants.getQuota(t)).usage, before);
    assert.equal((await s.vms.info(t, await s.vms.allocate(t, { type: 'be.small', name: 'web 01.example_a@b:c' }))).name, 'web 01.example_a@b:c');
  });

  it('rejects unknown types, architectures and out-of-range sizes with INVALID_PARAMS', async () => {
    const s = env.services;
    await fault(s.vms.allocate(t, { type: 'no.such' }), Fault.INVALID_PARAMS);
    await fault(s.vms.allocate(t, { type: 'be.small', architecture: 'arm64' }), Fault.INVALID_PARAMS);
    await fault(s.vms.allocate(t, { type: 'be.small', systemDiskGiB: 5 }), Fault.INVALID_PARAMS);
    await fault(s.vms.allocate(t, { type: 'be.small', zone: 'atlantis' }), Fault.INVALID_PARAMS);
    await fault(s.volumes.allocate(t, { sizeGiB: 0 }), Fault.INVALID_PARAMS);
    await fault(s.volumes.allocate(t, { sizeGiB: 1.5 }), Fault.INVALID_PARAMS);
    await fault(s.volumes.allocate(t, { sizeGiB: 1, class: 'gold' }), Fault.INVALID_PARAMS);
    await fault(s.networks.allocate(t, { cidr: '10.0.0.1/20' }), Fault.INVALID_PARAMS);
    await fault(s.networks.allocate(t, { cidr: '10.0.0.0/8' }), Fault.INVALID_PARAMS);
  });

  it('answers NOT_FOUND for ids that were never issued', async () => {
    const s = env.services;
    await fault(s.vms.info(t, 'vm-000000000000'), Fault.NOT_FOUND);
    await fault(s.volumes.info(t, 'vol-000000000000'), Fault.NOT_FOUND);
    await fault(s.networks.info(t, 'net-000000000000'), Fault.NOT_FOUND);
    await fault(s.requests.get(t, 'req-000000000000'), Fault.NOT_FOUND);
  });

  it('needs a stopped VM for changeVmType, changeVmArchitecture, deallocateVm and slot changes', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const vol = await s.volumes.allocate(t, { sizeGiB: 1 });
    const net = await s.networks.allocate(t, {});
    await s.volumes.attach(t, vm, vol);
    // A running VM is what the power handlers leave behind (the power suite runs them for real).
    await env.db.k.updateTable('vms').set({ status: 'running', power: 'on', updated_at: now() }).where('id', '=', vm).execute();
    await fault(s.vms.changeType(t, vm, 'be.medium'), Fault.INVALID_STATE, /running/);
    await fault(s.vms.changeArchitecture(t, vm, 'i686'), Fault.INVALID_STATE);
    await fault(s.vms.deallocate(t, vm), Fault.INVALID_STATE);
    await fault(s.volumes.attach(t, vm, await s.volumes.allocate(t, { sizeGiB: 1 })), Fault.INVALID_STATE);
    await fault(s.volumes.detach(t, vm, 1), Fault.INVALID_STATE);
    await fault(s.networks.attach(t, vm, net), Fault.INVALID_STATE);
    await fault(s.vms.powerOn(t, vm), Fault.INVALID_STATE);
    const info = await s.vms.info(t, vm);
    assert.equal(info.type, 'be.small');
    assert.equal(info.architecture, 'x86_64');
    assert.equal(info.disks.length, 2);
  });

  it('never detaches slot 0, the system volume', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    await fault(s.volumes.detach(t, vm, 0), Fault.INVALID_PARAMS, /system volume/);
    await fault(s.volumes.detach(t, vm, 3), Fault.NOT_FOUND);
    assert.equal((await s.vms.info(t, vm)).disks[0].slot, 0);
  });

  it('keeps an attached volume: deallocateVolume needs it detached; deallocateVm detaches it', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const vol = await s.volumes.allocate(t, { sizeGiB: 2 });
    const slot = await s.volumes.attach(t, vm, vol);
    assert.equal(slot, 1);
    assert.deepEqual((await s.volumes.info(t, vol)).attachedTo, { vmId: vm, slot: 1 });
    await fault(s.volumes.deallocate(t, vol), Fault.INVALID_STATE, /attached/);
    const system = (await s.vms.info(t, vm)).disks[0].volumeId;
    await fault(s.volumes.deallocate(t, system), Fault.INVALID_STATE);
    await fault(s.volumes.attach(t, await s.vms.allocate(t, { type: 'be.small' }), vol), Fault.INVALID_STATE, /already attached/);
    await s.vms.deallocate(t, vm);
    await fault(s.vms.info(t, vm), Fault.NOT_FOUND);
    await fault(s.volumes.info(t, system), Fault.NOT_FOUND);
    assert.deepEqual((await s.volumes.info(t, vol)).attachedTo, {});
    await s.volumes.deallocate(t, vol);
    await fault(s.volumes.info(t, vol), Fault.NOT_FOUND);
  });

  it('keeps a network while a VM is attached to it', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const net = await s.networks.allocate(t, {});
    const { slot } = await s.networks.attach(t, vm, net);
    await fault(s.networks.deallocate(t, net), Fault.INVALID_STATE, /attached/);
    await s.networks.detach(t, vm, slot);
    await s.networks.deallocate(t, net);
    await fault(s.networks.info(t, net), Fault.NOT_FOUND);
  });

  it('queues power requests behind each other and refuses a duplicate with CONFLICT', async () => {
    const s = env.services;
    const admin = await newTenant(s, 'rules-ops', {}, true);
    await s.hosts.register(await s.hosts.joinToken(), {
      zone: 'zone-r', url: 'http://127.0.0.1:9', driver: 'sim', accel: 'sim', hosts: [{ name: 'r1', vcpus: 8, memoryMiB: 8192, architectures: ['x86_64'] }],
    });
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const on = await s.vms.powerOn(t, vm);
    assert.match(on, /^req-[0-9a-f]{12}$/);
    await fault(s.vms.powerOn(t, vm), Fault.CONFLICT);
    assert.deepEqual(await s.vms.status(t, vm), { vmId: vm, power: 'off', status: 'stopped', requestId: on });
    const off = await s.vms.powerOff(t, vm);
    // Anything that changes the VM's slots waits until no request could start it.
    await fault(s.vms.changeType(t, vm, 'be.medium'), Fault.CONFLICT);
    await s.requests.cancel(t, on);
    await s.requests.cancel(admin, off);
    const info = await s.requests.get(t, on);
    assert.equal(info.status, 'cancelled');
    assert.equal((await s.vms.status(t, vm)).requestId, '');
    await fault(s.requests.cancel(t, on), Fault.INVALID_STATE);
  });
  it('serialises concurrent changes to one VM: distinct disk slots, one owner per volume, one power-on', async () => {
    const s = env.services;
    await s.hosts.register(await s.hosts.joinToken(), {
      zone: 'zone-c', url: 'http://127.0.0.1:9', driver: 'sim', accel: 'sim', hosts: [{ name: 'c1', vcpus: 8, memoryMiB: 8192, architectures: ['x86_64'] }],
    });
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const vols = await Promise.all(Array.from({ length: 5 }, () => s.volumes.allocate(t, { sizeGiB: 1 })));
    const slots = await Promise.all(vols.map((v) => s.volumes.attach(t, vm, v)));
    assert.deepEqual([...slots].sort(), [1, 2, 3, 4, 5]);

    const contested = await s.volumes.allocate(t, { sizeGiB: 1 });
    const others = await Promise.all([1, 2, 3].map(() => s.vms.allocate(t, { type: 'be.small' })));
    const grabs = await Promise.allSettled(others.map((o) => s.volumes.attach(t, o, contested)));
    assert.equal(grabs.filter((g) => g.status === 'fulfilled').length, 1);
    for (const g of grabs) if (g.status === 'rejected') assert.equal(g.reason.code, Fault.INVALID_STATE, String(g.reason));

    const ons = await Promise.allSettled([1, 2, 3, 4].map(() => s.vms.powerOn(t, vm)));
    assert.equal(ons.filter((o) => o.status === 'fulfilled').length, 1);
    for (const o of ons) if (o.status === 'rejected') assert.equal(o.reason.code, Fault.CONFLICT, String(o.reason));
    const [req] = await s.requests.list(t, { resourceId: vm });
    await s.requests.cancel(t, req.requestId);
  });
});
