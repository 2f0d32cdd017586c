/**
 * Topology and Placement (src/sdn/types.ts) as read from the store: the compiler's input, exactly
 * the contract's fields, sorted, and JSON-serialisable.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import type { Principal } from '../../src/services/principal.js';
import type { Placement, Topology } from '../../src/sdn/types.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { sdnSnapshot, vmNetworkDemand } from '../../src/services/sdn-capacity.js';
import { registerDeadHosts } from './fixtures.js';
import { placeOn, TENANT_QUOTA, vmOn, zoneIdOf } from './sdn-fixtures.js';

/** vm1's networks take zone VLANs in network-id order in one placement: the lower id gets 2. */
const vlanIn = (ids: string[]) => (n: string) => ([...ids].sort()[0] === n ? 2 : 3);
const sortedBy = <T>(xs: T[], key: (x: T) => string) => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

forEachDb('SDN topology and placement', (env) => {
  let admin: Principal, t: Principal;
  let a1: string, a2: string, g1: string;
  let ea: string, eg: string, vm1: string, n1: string, n2: string;
  before(async () => {
    const s = env.services;
    admin = await newTenant(s, 'ops', {}, true);
    t = await newTenant(s, 'placeco', TENANT_QUOTA);
    [a1, a2] = await registerDeadHosts(s, 'zone-a', [{ name: 'a1' }, { name: 'a2' }]);
    [g1] = await registerDeadHosts(s, 'zone-g', [{ name: 'g1' }]);
  });

  it('reads the topology: zones with their gateway, edges, and hosts with their wiring', async () => {
    const s = env.services;
    const [za, zg] = [await zoneIdOf(s, 'zone-a'), await zoneIdOf(s, 'zone-g')];
    ea = await s.topology.createEdge(admin, { zone: 'zone-a', name: 'tor-a', uplink: 'swp48' });
    eg = await s.topology.createEdge(admin, { zone: zg, name: 'tor-g', uplink: 'swp1', macBudget: 64 });
    await s.topology.setHostEdge(admin, a1, { edgeId: ea, port: 'swp1' });
    await s.topology.setHostEdge(admin, g1, { edgeId: eg, port: 'swp2', uplink: 'enp1s0' });
    await s.topology.setZoneGateway(admin, 'zone-g', { underlayIp: '198.51.100.1', downlink: 'eth1' });
    await s.topology.setGatewayZone(admin, 'zone-g');
    await s.topology.setZoneGateway(admin, 'zone-a', { underlayIp: '192.0.2.1', downlink: 'eth2' });

    const topo: Topology = await s.topology.topology();
    assert.deepEqual(topo, {
      zones: sortedBy([
        { zoneId: za, gateway: { underlayIp: '192.0.2.1', downlink: 'eth2' }, gatewayZone: false },
        { zoneId: zg, gateway: { underlayIp: '198.51.100.1', downlink: 'eth1' }, gatewayZone: true },
      ], (z) => z.zoneId),
      edges: sortedBy([
        { edgeId: ea, zoneId: za, uplink: 'swp48', macBudget: 16384 },
        { edgeId: eg, zoneId: zg, uplink: 'swp1', macBudget: 64 },
      ], (e) => e.edgeId),
      hosts: sortedBy([
        { hostId: a1, zoneId: za, edge: { edgeId: ea, port: 'swp1' }, uplink: 'eth0' },
        { hostId: a2, zoneId: za, edge: null, uplink: 'eth0' },
        { hostId: g1, zoneId: zg, edge: { edgeId: eg, port: 'swp2' }, uplink: 'enp1s0' },
      ], (h) => h.hostId),
    });
    assert.deepEqual(JSON.parse(JSON.stringify(topo)), topo);
  });

  it('reads the placement: private networks with VNI, zone VLANs, gateway and prefix; placed NICs with host and addresses', async () => {
    const s = env.services;
    const [za, zg] = [await zoneIdOf(s, 'zone-a'), await zoneIdOf(s, 'zone-g')];
    n1 = await s.networks.allocate(t, {});
    n2 = await s.networks.allocate(t, { cidr: '172.16.5.0/24' });
    const idle = await s.networks.allocate(t, {});
    const shared = await s.networks.createShared(admin, { name: 'pub', cidr: '203.0.113.0/28', gateway: '203.0.113.1' });
    vm1 = await vmOn(s, t, n1, shared, n2);
    const vm2 = await vmOn(s, t, n1);
    const stopped = await vmOn(s, t, n1, idle);
    // Private addresses come from the guest configuration path; put two in place as it would.
    await s.db.k.insertInto('nic_addresses').values([
      { vm_id: vm1, slot: 0, network_id: n1, ip: '10.0.0.20' }, { vm_id: vm1, slot: 0, network_id: n1, ip: '10.0.0.3' },
    ]).execute();
    await s.networks.assignIp(t, vm1, 1, await s.networks.allocateIp(t, shared));
    await placeOn(s, vm1, a1);
    await placeOn(s, vm2, g1);

    const info = await s.vms.info(t, vm1);
    const mac = (vm: typeof info, slot: number) => vm.nics.find((n) => n.slot === slot)!.mac;
    const vm2Info = await s.vms.info(t, vm2);
    const [v1, v2] = [await s.networks.info(t, n1), await s.networks.info(t, n2)];
    const vlan = vlanIn([n1, n2]);
    const expected: Placement = {
      networks: sortedBy([
        { networkId: n1, vni: v1.vni, zoneVlans: Object.fromEntries(sortedBy([[za, vlan(n1)], [zg, vlan(n1)]] as [string, number][], (e) => e[0])), gateway: '10.0.0.1', prefix: 20 },
        { networkId: n2, vni: v2.vni, zoneVlans: Object.fromEntries(sortedBy([[za, vlan(n2)], [zg, vlan(n2)]] as [string, number][], (e) => e[0])), gateway: '172.16.5.1', prefix: 24 },
      ], (n) => n.networkId),
      nics: sortedBy([
        { vmId: vm1, slot: 0, hostId: a1, networkId: n1, mac: mac(info, 0), ips: ['10.0.0.20', '10.0.0.3'] },
        { vmId: vm1, slot: 2, hostId: a1, networkId: n2, mac: mac(info, 2), ips: [] },
        { vmId: vm2, slot: 0, hostId: g1, networkId: n1, mac: mac(vm2Info, 0), ips: [] },
      ], (n) => `${n.vmId}/${n.slot}`),
    };
    const got = await s.sdn.placement();
    assert.deepEqual(got, expected, 'shared networks, their NICs, stopped VMs and idle networks stay out');
    assert.ok(!got.nics.some((n) => n.vmId === stopped));
    assert.deepEqual(JSON.parse(JSON.stringify(got)), got);
    assert.deepEqual(Object.keys(got.networks[0]).sort(), ['gateway', 'networkId', 'prefix', 'vni', 'zoneVlans']);
    assert.deepEqual(Object.keys(got.nics[0]).sort(), ['hostId', 'ips', 'mac', 'networkId', 'slot', 'vmId']);
    assert.deepEqual(Object.keys(got.networks.find((n) => n.networkId === n1)!.zoneVlans), [za, zg].sort(), 'zones in id order');

    // One host's share: its NICs and the networks they use, with all of their zone VLANs.
    const forA1 = await s.sdn.placementForHost(a1);
    assert.deepEqual(forA1, { networks: expected.networks, nics: expected.nics.filter((n) => n.hostId === a1) });
    const forG1 = await s.sdn.placementForHost(g1);
    assert.deepEqual(forG1, { networks: expected.networks.filter((n) => n.networkId === n1), nics: expected.nics.filter((n) => n.hostId === g1) });
    assert.deepEqual(await s.sdn.placementForHost(a2), { networks: [], nics: [] });
  });

  it('reads the scheduler\'s SDN snapshot: edge MACs and trunks, free VLANs per zone, the gateway zone, host wiring', async () => {
    const s = env.services;
    const [za, zg] = [await zoneIdOf(s, 'zone-a'), await zoneIdOf(s, 'zone-g')];
    const vlan = vlanIn([n1, n2]);
    const snap = await sdnSnapshot(s.db.k);
    assert.deepEqual(snap.edges, sortedBy([
      { edgeId: ea, zone: za, macBudget: 16384, macs: 3, vlans: [2, 3] },
      { edgeId: eg, zone: zg, macBudget: 64, macs: 1, vlans: [vlan(n1)] },
    ], (e) => e.edgeId), 'the shared-network NIC is in the MAC table too');
    assert.deepEqual(sortedBy(snap.vlanPools, (p) => p.zone), sortedBy([{ zone: za, free: 4091 }, { zone: zg, free: 4091 }], (p) => p.zone));
    assert.equal(snap.gatewayZone, zg);
    assert.deepEqual([snap.hostEdges.get(a1), snap.hostEdges.get(a2), snap.hostEdges.get(g1)], [ea, null, eg]);
    const demand = await vmNetworkDemand(s.db.k, vm1);
    assert.deepEqual(demand, {
      networks: sortedBy([{ networkId: n1, zoneVlans: { [za]: vlan(n1), [zg]: vlan(n1) } }, { networkId: n2, zoneVlans: { [za]: vlan(n2), [zg]: vlan(n2) } }], (n) => n.networkId),
      nics: 3,
    });
  });
});
