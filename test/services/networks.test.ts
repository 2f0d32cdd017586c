import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault } from './fixtures.js';

forEachDb('networks', (env) => {
  let admin: Principal, t: Principal, u: Principal;
  before(async () => {
    admin = await newTenant(env.services, 'ops', {}, true);
    t = await newTenant(env.services, 'netco', { networks: 50 });
    u = await newTenant(env.services, 'other', { networks: 50 });
  });

  it('hands out distinct host addresses of a shared /29, never the gateway, then NO_CAPACITY', async () => {
    const s = env.services;
    const net = await s.networks.createShared(admin, { name: 'pub29', cidr: '203.0.113.0/29', gateway: '203.0.113.1' });
    const got = [await s.networks.allocateIp(t, net), await s.networks.allocateIp(u, net)];
    for (let i = 0; i < 3; i++) got.push(await s.networks.allocateIp(i % 2 ? t : u, net));
    assert.deepEqual([...got].sort(), ['203.0.113.2', '203.0.113.3', '203.0.113.4', '203.0.113.5', '203.0.113.6']);
    await fault(s.networks.allocateIp(t, net), Fault.NO_CAPACITY);
    // A freed address is handed out again.
    const mine = got.find((_, i) => i === 0)!;
    await s.networks.deallocateIp(t, net, mine);
    assert.equal(await s.networks.allocateIp(u, net), mine);
  });

  it('keeps allocateIpAddress concurrent callers apart', async () => {
    const s = env.services;
    const net = await s.networks.createShared(admin, { name: 'pub-race', cidr: '198.51.100.0/28', gateway: '198.51.100.14' });
    const ips = await Promise.all(Array.from({ length: 6 }, (_, i) => s.networks.allocateIp(i % 2 ? t : u, net)));
    assert.equal(new Set(ips).size, 6);
    assert.ok(!ips.includes('198.51.100.14'));
  });

  it('applies the shared-network rules to assign, remove and deallocate', async () => {
    const s = env.services;
    const net = await s.networks.createShared(admin, { name: 'pub-rules', cidr: '192.0.2.0/29', gateway: '192.0.2.6' });
    const priv = await s.networks.allocate(t, {});
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const { slot } = await s.networks.attach(t, vm, net);
    const { slot: privSlot } = await s.networks.attach(t, vm, priv);
    const usedBefore = (await s.tenants.getQuota(t)).usage.ipAddresses;
    const ip = await s.networks.allocateIp(t, net);
    const theirs = await s.networks.allocateIp(u, net);

    await fault(s.networks.allocateIp(t, priv), Fault.INVALID_PARAMS, /shared/);
    await fault(s.networks.assignIp(t, vm, privSlot, ip), Fault.INVALID_PARAMS);
    await fault(s.networks.assignIp(t, vm, slot, theirs), Fault.NOT_FOUND);
    await fault(s.networks.assignIp(t, vm, slot, '192.0.2.5'), Fault.NOT_FOUND);
    await fault(s.networks.assignIp(t, vm, slot, 'not-an-ip'), Fault.INVALID_PARAMS);
    await fault(s.networks.assignIp(t, vm, 9, ip), Fault.NOT_FOUND);

    await s.networks.assignIp(t, vm, slot, ip);
    await fault(s.networks.assignIp(t, vm, slot, ip), Fault.INVALID_STATE, /already assigned/);
    assert.deepEqual((await s.vms.info(t, vm)).nics.find((n) => n.slot === slot)?.ipAddresses, [ip]);
    assert.deepEqual((await s.networks.info(t, net)).members, [{ vmId: vm, slot, mac: (await s.vms.info(t, vm)).nics[slot].mac, ipAddresses: [ip] }]);
    await fault(s.networks.deallocateIp(t, net, ip), Fault.INVALID_STATE, /assigned/);
    await fault(s.networks.deallocateIp(u, net, ip), Fault.NOT_FOUND);
    await fault(s.networks.deallocate(t, net), Fault.AUTHORIZATION);
    await fault(s.networks.deallocate(admin, net), Fault.INVALID_STATE);

    await s.networks.removeIp(t, vm, slot, ip);
    await fault(s.networks.removeIp(t, vm, slot, ip), Fault.NOT_FOUND);
    await s.networks.deallocateIp(t, net, ip);
    await fault(s.networks.deallocateIp(t, net, ip), Fault.NOT_FOUND);
    assert.equal((await s.tenants.getQuota(t)).usage.ipAddresses, usedBefore);

    await s.networks.detach(t, vm, slot);
    await s.networks.deallocateIp(u, net, theirs);
    await s.networks.deallocate(admin, net);
    await fault(s.networks.info(t, net), Fault.NOT_FOUND);
  });

  it('shows shared networks to every tenant but only each tenant\'s own members', async () => {
    const s = env.services;
    const net = await s.networks.createShared(admin, { name: 'pub-view', cidr: '100.64.0.0/29', gateway: '100.64.0.1' });
    const a = await s.vms.allocate(t, { type: 'be.small' });
    const b = await s.vms.allocate(u, { type: 'be.small' });
    await s.networks.attach(t, a, net);
    await s.networks.attach(u, b, net);
    assert.ok((await s.networks.list(u)).some((n) => n.networkId === net && n.kind === 'shared'));
    assert.deepEqual((await s.networks.info(t, net)).members.map((m) => m.vmId), [a]);
    assert.deepEqual((await s.networks.info(admin, net)).members.map((m) => m.vmId).sort(), [a, b].sort());
  });

  it('gives attached NICs the lowest free slots and unique locally administered MACs', async () => {
    const s = env.services;
    const n1 = await s.networks.allocate(t, {});
    const n2 = await s.networks.allocate(t, {});
    const vms = [await s.vms.allocate(t, { type: 'be.small' }), await s.vms.allocate(t, { type: 'be.small' })];
    const macs: string[] = [];
    for (const vm of vms) {
      const a = await s.networks.attach(t, vm, n1);
      const b = await s.networks.attach(t, vm, n2);
      const c = await s.networks.attach(t, vm, n1);
      assert.deepEqual([a.slot, b.slot, c.slot], [0, 1, 2]);
      macs.push(a.mac, b.mac, c.mac);
      await s.networks.detach(t, vm, 1);
      assert.equal((await s.networks.attach(t, vm, n2)).slot, 1);
      await fault(s.networks.detach(t, vm, 5), Fault.NOT_FOUND);
    }
    for (const m of macs) assert.match(m, /^02:6b(:[0-9a-f]{2}){4}$/);
    assert.equal(new Set(macs).size, macs.length);
    const info = await s.networks.info(t, n1);
    assert.deepEqual(info.members.map((m) => m.slot), [0, 2, 0, 2]);
  });

  it('gives concurrent attachNetwork calls on one VM distinct slots', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const got = await Promise.all(Array.from({ length: 6 }, () => s.networks.attach(t, vm, n)));
    assert.deepEqual(got.map((g) => g.slot).sort(), [0, 1, 2, 3, 4, 5]);
  });

  it('allocates private /20s that do not overlap, with the first address as gateway', async () => {
    const s = env.services;
    const v = await newTenant(s, 'fresh');
    const a = await s.networks.info(v, await s.networks.allocate(v, {}));
    const b = await s.networks.info(v, await s.networks.allocate(v, {}));
    assert.deepEqual([a.cidr, a.gateway, a.kind], ['10.0.0.0/20', '10.0.0.1', 'private']);
    assert.deepEqual([b.cidr, b.gateway], ['10.0.16.0/20', '10.0.16.1']);
    const c = await s.networks.info(v, await s.networks.allocate(v, { cidr: '172.16.0.0/24' }));
    assert.deepEqual([c.cidr, c.gateway], ['172.16.0.0/24', '172.16.0.1']);
  });

  it('gives every private network its own 24-bit VNI, never one in the VLAN range', async () => {
    const s = env.services;
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => s.networks.allocate(i % 2 ? t : u, {})));
    const vnis = await Promise.all(ids.map(async (id, i) => (await s.networks.info(i % 2 ? t : u, id)).vni));
    assert.equal(new Set(vnis).size, vnis.length);
    for (const v of vnis) assert.ok(Number.isInteger(v) && v >= 4096 && v < 2 ** 24, `VNI ${v}`);
  });
});
