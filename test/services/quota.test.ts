import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Services } from '../../src/services/index.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault } from './fixtures.js';

/** Everything a refused allocation could have left behind, as the tenant sees it. */
async function footprint(s: Services, p: Principal) {
  const [vms, volumes, networks, quota] = await Promise.all([s.vms.list(p), s.volumes.list(p), s.networks.list(p), s.tenants.getQuota(p)]);
  return { vms, volumes, networks, usage: quota.usage };
}

forEachDb('quotas', (env) => {
  it('refuses allocateVm past the VM count, vCPU or memory limit and writes nothing', async () => {
    const s = env.services;
    const t = await newTenant(s, 'vmquota', { vms: 2, vcpus: 3, memoryMiB: 4096 });
    await s.vms.allocate(t, { type: 'be.medium' }); // 2 vCPUs, 2048 MiB
    const before = await footprint(s, t);
    await fault(s.vms.allocate(t, { type: 'be.medium' }), Fault.QUOTA_EXCEEDED, /vcpus 2 \+ 2 > 3/);
    assert.deepEqual(await footprint(s, t), before);
    await s.vms.allocate(t, { type: 'be.small' });
    await fault(s.vms.allocate(t, { type: 'be.small' }), Fault.QUOTA_EXCEEDED, /vms 2 \+ 1 > 2/);
    assert.equal((await s.vms.list(t)).length, 2);
    assert.equal((await s.tenants.getQuota(t)).usage.vcpus, 3);
  });

  it('counts the system volume against the volume limits of allocateVm', async () => {
    const s = env.services;
    const t = await newTenant(s, 'diskquota', { volumeGiB: 15 });
    const before = await footprint(s, t);
    await fault(s.vms.allocate(t, { type: 'be.medium' }), Fault.QUOTA_EXCEEDED, /volumeGiB 0 \+ 20 > 15/);
    assert.deepEqual(await footprint(s, t), before);
  });

  it('refuses allocateVolume past the volume count or size limit and writes nothing', async () => {
    const s = env.services;
    const t = await newTenant(s, 'volquota', { volumes: 2, volumeGiB: 100 });
    await s.volumes.allocate(t, { sizeGiB: 60 });
    const before = await footprint(s, t);
    await fault(s.volumes.allocate(t, { sizeGiB: 41 }), Fault.QUOTA_EXCEEDED, /volumeGiB 60 \+ 41 > 100/);
    assert.deepEqual(await footprint(s, t), before);
    await s.volumes.allocate(t, { sizeGiB: 40 });
    await fault(s.volumes.allocate(t, { sizeGiB: 1 }), Fault.QUOTA_EXCEEDED);
    assert.equal((await s.volumes.list(t)).length, 2);
  });

  it('refuses allocateNetwork past the network limit and writes nothing', async () => {
    const s = env.services;
    const t = await newTenant(s, 'netquota', { networks: 1 });
    await s.networks.allocate(t, {});
    const before = await footprint(s, t);
    await fault(s.networks.allocate(t, {}), Fault.QUOTA_EXCEEDED, /networks 1 \+ 1 > 1/);
    assert.deepEqual(await footprint(s, t), before);
  });

  it('refuses allocateIpAddress past the address limit and hands out nothing', async () => {
    const s = env.services;
    const admin = await newTenant(s, 'ops', {}, true);
    const net = await s.networks.createShared(admin, { name: 'public', cidr: '192.0.2.0/28', gateway: '192.0.2.1' });
    const t = await newTenant(s, 'ipquota', { ipAddresses: 2 });
    await s.networks.allocateIp(t, net);
    await s.networks.allocateIp(t, net);
    await fault(s.networks.allocateIp(t, net), Fault.QUOTA_EXCEEDED, /ipAddresses 2 \+ 1 > 2/);
    assert.equal((await s.tenants.getQuota(t)).usage.ipAddresses, 2);
    // The refused address is still free for someone else: the next one handed out is .4.
    const other = await newTenant(s, 'ipother');
    assert.equal(await s.networks.allocateIp(other, net), '192.0.2.4');
  });

  it('refuses changeVmType to a type past the vCPU limit and keeps the old type', async () => {
    const s = env.services;
    const t = await newTenant(s, 'typequota', { vcpus: 2 });
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    await fault(s.vms.changeType(t, vm, 'be.large'), Fault.QUOTA_EXCEEDED);
    assert.equal((await s.vms.info(t, vm)).type, 'be.small');
    await s.vms.changeType(t, vm, 'be.medium');
    assert.equal((await s.vms.info(t, vm)).vcpus, 2);
  });

  it('lets concurrent allocations together stay within the limit', async () => {
    const s = env.services;
    const t = await newTenant(s, 'racequota', { volumes: 3 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => s.volumes.allocate(t, { sizeGiB: 1 })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    assert.equal((await s.volumes.list(t)).length, 3);
  });
});
