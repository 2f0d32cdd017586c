/**
 * Zone VLANs follow a network's placed members (DESIGN.md §5): lowest free on the first member in a
 * zone, given back with the last; the gateway zone holds one while the network has a member anywhere.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';
import { Fault } from '../../src/core/errors.js';
import { placeOn, takeOff, TENANT_QUOTA, vlansOf, vmOn, zoneIdOf } from './sdn-fixtures.js';

forEachDb('zone VLANs', (env) => {
  let admin: Principal, t: Principal;
  let a1: string, a2: string, b1: string;
  before(async () => {
    const s = env.services;
    admin = await newTenant(s, 'ops', {}, true);
    t = await newTenant(s, 'vlanco', TENANT_QUOTA);
    [a1, a2] = await registerDeadHosts(s, 'zone-a', [{ name: 'a1' }, { name: 'a2' }]);
    [b1] = await registerDeadHosts(s, 'zone-b', [{ name: 'b1' }]);
  });

  it('gives a network the lowest free VLAN of a zone with its first member and takes it back with the last', async () => {
    const s = env.services;
    const [n1, n2] = [await s.networks.allocate(t, {}), await s.networks.allocate(t, {})];
    const [vm1, vm2, vm3] = [await vmOn(s, t, n1), await vmOn(s, t, n1), await vmOn(s, t, n2)];
    assert.deepEqual(await vlansOf(s, n1), {}, 'no VLAN before a member is placed');
    await placeOn(s, vm1, a1);
    assert.deepEqual(await vlansOf(s, n1), { 'zone-a': 2 });
    await placeOn(s, vm2, a2);
    assert.deepEqual(await vlansOf(s, n1), { 'zone-a': 2 }, 'members of one network share its zone VLAN');
    await placeOn(s, vm3, a1);
    assert.deepEqual(await vlansOf(s, n2), { 'zone-a': 3 });
    assert.deepEqual((await s.networks.info(t, n1)).zones, [{ zone: 'zone-a', vlan: 2 }]);

    assert.equal(await takeOff(s, vm1), 0, 'vm2 still holds the VLAN');
    assert.deepEqual(await vlansOf(s, n1), { 'zone-a': 2 });
    assert.equal(await takeOff(s, vm2), 1);
    assert.deepEqual(await vlansOf(s, n1), {});
    assert.deepEqual((await s.networks.info(t, n1)).zones, []);
    // The freed ID is the lowest free again.
    const n3 = await s.networks.allocate(t, {});
    await placeOn(s, await vmOn(s, t, n3), a2);
    assert.deepEqual(await vlansOf(s, n3), { 'zone-a': 2 });
    await placeOn(s, vm1, a1);
    assert.deepEqual(await vlansOf(s, n1), { 'zone-a': 4 });
  });

  it('numbers each zone on its own and holds a VLAN in every zone with a member', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const [x, y] = [await vmOn(s, t, n), await vmOn(s, t, n)];
    await placeOn(s, x, a1);
    await placeOn(s, y, b1);
    const v = await vlansOf(s, n);
    assert.equal(v['zone-b'], 2, 'zone-b had nothing in use');
    assert.ok(v['zone-a'] > 2, 'zone-a already had VLANs in use');
    await takeOff(s, x);
    assert.deepEqual(await vlansOf(s, n), { 'zone-b': 2 });
    await takeOff(s, y);
    assert.deepEqual(await vlansOf(s, n), {});
  });

  it('gives one VLAN to a network a VM has two NICs on, and none to shared L3 networks', async () => {
    const s = env.services;
    const shared = await s.networks.createShared(admin, { name: 'pub', cidr: '203.0.113.0/28', gateway: '203.0.113.1' });
    const n = await s.networks.allocate(t, {});
    const vm = await vmOn(s, t, n, shared, n);
    await placeOn(s, vm, b1);
    assert.deepEqual(await vlansOf(s, shared), {});
    assert.equal(Object.keys(await vlansOf(s, n)).length, 1);
    await takeOff(s, vm);
    assert.deepEqual(await vlansOf(s, n), {});
    // A VM without private NICs takes no VLAN and no lock.
    const bare = await vmOn(s, t, shared);
    await placeOn(s, bare, b1);
    assert.equal(await takeOff(s, bare), 0);
  });

  it('sweeps a zone whose VMs left without a release (releaseZoneVlans)', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const [x, y] = [await vmOn(s, t, n), await vmOn(s, t, n)];
    await placeOn(s, x, a1);
    await placeOn(s, y, b1);
    // A crash: the host's VMs are marked off without their VLANs being looked at.
    await s.db.k.updateTable('vms').set({ host_id: null, status: 'stopped' }).where('id', '=', x).execute();
    assert.ok((await vlansOf(s, n))['zone-a'] !== undefined);
    const zoneA = await zoneIdOf(s, 'zone-a');
    const gone = await s.db.k.transaction().execute((trx) => s.sdn.releaseZoneVlans(trx, zoneA));
    assert.ok(gone >= 1);
    assert.deepEqual(Object.keys(await vlansOf(s, n)), ['zone-b']);
    await takeOff(s, y);
  });

  it('keeps concurrent placements of different networks in one zone on distinct VLANs', async () => {
    const s = env.services;
    const nets = await Promise.all(Array.from({ length: 6 }, () => s.networks.allocate(t, {})));
    const vms = await Promise.all(nets.map((n) => vmOn(s, t, n)));
    await Promise.all(vms.map((vm, i) => placeOn(s, vm, i % 2 ? a1 : a2)));
    const got = await Promise.all(nets.map(async (n) => (await vlansOf(s, n))['zone-a']));
    assert.equal(new Set(got).size, got.length, `VLANs ${got}`);
    await Promise.all(vms.map((vm) => takeOff(s, vm)));
    for (const n of nets) assert.deepEqual(await vlansOf(s, n), {});
  });

  it('refuses NO_CAPACITY naming the zone when it has no VLAN left, leaving nothing placed', async () => {
    const s = env.services;
    // A nearly full zone: 4,092 of its 4,093 IDs held by networks placed nowhere else.
    await registerDeadHosts(s, 'zone-full', [{ name: 'f1' }]);
    const full = await zoneIdOf(s, 'zone-full');
    const f1 = (await s.db.k.selectFrom('hosts').select('id').where('name', '=', 'f1').executeTakeFirstOrThrow()).id;
    const at = new Date().toISOString();
    for (let start = 0; start < 4092; start += 400) {
      const ids = Array.from({ length: Math.min(400, 4092 - start) }, (_, i) => start + i);
      await s.db.k.insertInto('networks').values(ids.map((i) => ({
        id: `net-f${String(i).padStart(11, '0')}`, tenant_id: admin.tenantId, name: `filler-${i}`, kind: 'private' as const, cidr: '10.0.0.0/20', gateway: '10.0.0.1', vni: 9_000_000 + i, created_at: at,
      }))).execute();
      await s.db.k.insertInto('network_zone_vlans').values(ids.map((i) => ({ network_id: `net-f${String(i).padStart(11, '0')}`, zone_id: full, vlan: 2 + i }))).execute();
    }
    const [n1, n2] = [await s.networks.allocate(t, {}), await s.networks.allocate(t, {})];
    const both = await vmOn(s, t, n1, n2);
    await fault(placeOn(s, both, f1), Fault.NO_CAPACITY, /zone zone-full .*no free VLAN ID.*4093/);
    assert.deepEqual(await vlansOf(s, n1), {}, 'the first network\'s VLAN went with the failed placement');
    assert.equal((await s.db.k.selectFrom('vms').select('host_id').where('id', '=', both).executeTakeFirstOrThrow()).host_id, null);

    const one = await vmOn(s, t, n1);
    await placeOn(s, one, f1);
    assert.deepEqual(await vlansOf(s, n1), { 'zone-full': 4094 });
    await fault(placeOn(s, await vmOn(s, t, n2), f1), Fault.NO_CAPACITY, /zone-full/);
    // Another zone is not affected, and a VLAN given back is handed out again.
    const other = await vmOn(s, t, n2);
    await placeOn(s, other, a1);
    await takeOff(s, one);
    await placeOn(s, await vmOn(s, t, n2), f1);
    assert.equal((await vlansOf(s, n2))['zone-full'], 4094);
  });
});

forEachDb('gateway zone VLANs', (env) => {
  let admin: Principal, t: Principal;
  let a1: string, b1: string, g1: string;
  before(async () => {
    const s = env.services;
    admin = await newTenant(s, 'ops', {}, true);
    t = await newTenant(s, 'gwco', TENANT_QUOTA);
    [a1] = await registerDeadHosts(s, 'zone-a', [{ name: 'a1' }]);
    [b1] = await registerDeadHosts(s, 'zone-b', [{ name: 'b1' }]);
    [g1] = await registerDeadHosts(s, 'zone-g', [{ name: 'g1' }]);
  });

  it('refuses a gateway zone that has no SDN gateway', async () => {
    await fault(env.services.topology.setGatewayZone(admin, 'zone-g'), Fault.INVALID_STATE, /setZoneGateway first/);
  });

  it('gives the gateway zone a VLAN for every network with a member anywhere, kept while one remains', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const [x, y] = [await vmOn(s, t, n), await vmOn(s, t, n)];
    await placeOn(s, x, a1);
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2 });
    await s.topology.setZoneGateway(admin, 'zone-g', { underlayIp: '192.0.2.3', downlink: 'eth1' });
    await s.topology.setGatewayZone(admin, 'zone-g');
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-g': 2 }, 'networks already placed get one at once');
    await placeOn(s, y, b1);
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-b': 2, 'zone-g': 2 });
    await takeOff(s, x);
    assert.deepEqual(await vlansOf(s, n), { 'zone-b': 2, 'zone-g': 2 }, 'the gateway zone keeps it while zone-b has a member');
    await takeOff(s, y);
    assert.deepEqual(await vlansOf(s, n), {});
  });

  it('holds one VLAN for a network whose member is in the gateway zone itself', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const vm = await vmOn(s, t, n);
    await placeOn(s, vm, g1);
    assert.deepEqual(await vlansOf(s, n), { 'zone-g': 2 });
    await takeOff(s, vm);
    assert.deepEqual(await vlansOf(s, n), {});
  });

  it('moves the VLANs along when another zone becomes the gateway zone', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const vm = await vmOn(s, t, n);
    await placeOn(s, vm, a1);
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-g': 2 });
    await s.topology.setZoneGateway(admin, 'zone-b', { underlayIp: '198.51.100.2', downlink: 'eth1' });
    await s.topology.setGatewayZone(admin, 'zone-b');
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-b': 2 });
    const zones = await s.zones.list(admin);
    assert.deepEqual(zones.filter((z) => z.gatewayZone).map((z) => z.name), ['zone-b']);
    await s.topology.setGatewayZone(admin, 'zone-b');
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-b': 2 }, 'setting it again changes nothing');
    await takeOff(s, vm);
    assert.deepEqual(await vlansOf(s, n), {});
  });

  it('refuses NO_CAPACITY when the gateway zone has no VLAN left, for placements and for becoming the gateway zone', async () => {
    const s = env.services;
    const zoneB = await zoneIdOf(s, 'zone-b');
    const fill = async (prefix: string) => {
      const at = new Date().toISOString();
      for (let start = 0; start < 4093; start += 400) {
        const ids = Array.from({ length: Math.min(400, 4093 - start) }, (_, i) => start + i);
        const id = (i: number) => `net-${prefix}${String(i).padStart(11, '0')}`;
        await s.db.k.insertInto('networks').values(ids.map((i) => ({
          id: id(i), tenant_id: admin.tenantId, name: `filler-${i}`, kind: 'private' as const, cidr: '10.0.0.0/20', gateway: '10.0.0.1', vni: 9_000_000 + i, created_at: at,
        }))).execute();
        await s.db.k.insertInto('network_zone_vlans').values(ids.map((i) => ({ network_id: id(i), zone_id: zoneB, vlan: 2 + i }))).execute();
      }
    };
    const inZoneB = async () => Number((await s.db.k.selectFrom('network_zone_vlans').select((eb) => eb.fn.countAll<number>().as('n')).where('zone_id', '=', zoneB).executeTakeFirstOrThrow()).n);

    await fill('g');
    const n = await s.networks.allocate(t, {});
    const vm = await vmOn(s, t, n);
    await fault(placeOn(s, vm, a1), Fault.NO_CAPACITY, /zone zone-b /);
    assert.deepEqual(await vlansOf(s, n), {}, 'nothing of the placement stays, not even zone-a\'s VLAN');

    // The old gateway zone gives back what only it needed: here, every filler.
    await s.topology.setZoneGateway(admin, 'zone-a', { underlayIp: '192.0.2.1', downlink: 'eth1' });
    await s.topology.setGatewayZone(admin, 'zone-a');
    assert.equal(await inZoneB(), 0);
    await s.db.k.deleteFrom('networks').where('id', 'like', 'net-g%').execute();

    await fill('h');
    await placeOn(s, vm, g1);
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-g': 2 });
    await fault(s.topology.setGatewayZone(admin, 'zone-b'), Fault.NO_CAPACITY, /zone zone-b /);
    assert.deepEqual((await s.zones.list(admin)).filter((z) => z.gatewayZone).map((z) => z.name), ['zone-a']);
    assert.deepEqual(await vlansOf(s, n), { 'zone-a': 2, 'zone-g': 2 });
    assert.equal(await inZoneB(), 4093);
    await takeOff(s, vm);
    assert.deepEqual(await vlansOf(s, n), {});
  });
});
