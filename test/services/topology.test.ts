/** The topology operations' rules: admin only, names and addresses checked, hosts wired within their zone, one gateway zone. */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';
import { counts, placeOn, TENANT_QUOTA, vmOn } from './sdn-fixtures.js';

forEachDb('topology', (env) => {
  let admin: Principal, t: Principal;
  let a1: string, a2: string, b1: string;
  let edgeA: string;
  before(async () => {
    const s = env.services;
    admin = await newTenant(s, 'ops', {}, true);
    t = await newTenant(s, 'topoco', TENANT_QUOTA);
    [a1, a2] = await registerDeadHosts(s, 'zone-a', [{ name: 'a1' }, { name: 'a2' }]);
    [b1] = await registerDeadHosts(s, 'zone-b', [{ name: 'b1' }]);
  });

  it('creates edges with an id, a default MAC budget, and a name unique in the zone', async () => {
    const s = env.services;
    edgeA = await s.topology.createEdge(admin, { zone: 'zone-a', name: 'tor-1', uplink: 'swp48' });
    assert.match(edgeA, /^edge-[0-9a-f]{12}$/);
    const before = await counts(s);
    await fault(s.topology.createEdge(admin, { zone: 'zone-a', name: 'tor-1', uplink: 'swp1' }), Fault.CONFLICT, /already has an edge named tor-1/);
    await fault(s.topology.createEdge(t, { zone: 'zone-a', name: 'tor-2', uplink: 'swp1' }), Fault.AUTHORIZATION);
    await fault(s.topology.createEdge(admin, { zone: 'nowhere', name: 'tor-2', uplink: 'swp1' }), Fault.INVALID_PARAMS, /unknown zone/);
    for (const uplink of ['', 'a-name-longer-than-15', 'eth0/1', 'has space', '-x', '.', '..']) {
      await fault(s.topology.createEdge(admin, { zone: 'zone-a', name: 'tor-2', uplink }), Fault.INVALID_PARAMS, /uplink must be a Linux interface name/);
    }
    for (const macBudget of [0, -1, 1.5, 2 ** 25]) {
      await fault(s.topology.createEdge(admin, { zone: 'zone-a', name: 'tor-2', uplink: 'swp1', macBudget }), Fault.INVALID_PARAMS, /macBudget/);
    }
    await fault(s.topology.createEdge(admin, { zone: 'zone-a', name: '', uplink: 'swp1' }), Fault.INVALID_PARAMS, /edge name/);
    assert.deepEqual(await counts(s), before, 'no fault left a row behind');
    // The same name in another zone is another edge.
    const edgeB = await s.topology.createEdge(admin, { zone: 'zone-b', name: 'tor-1', uplink: 'swp48', macBudget: 2 });
    assert.deepEqual((await s.topology.edgeList(admin)).map((e) => [e.edgeId, e.zone, e.name, e.uplink, e.macBudget, e.hosts, e.macsInUse]).sort(), [
      [edgeA, 'zone-a', 'tor-1', 'swp48', 16384, 0, 0], [edgeB, 'zone-b', 'tor-1', 'swp48', 2, 0, 0],
    ].sort());
    await fault(s.topology.edgeList(t), Fault.AUTHORIZATION);
  });

  it('wires hosts to ports of an edge of their own zone, one host per port', async () => {
    const s = env.services;
    await s.topology.setHostEdge(admin, a1, { edgeId: edgeA, port: 'swp1', uplink: 'enp2s0' });
    const info = await s.hosts.info(admin, a1);
    assert.deepEqual([info.edgeId, info.edgePort, info.uplink], [edgeA, 'swp1', 'enp2s0']);
    const fresh = await s.hosts.info(admin, a2);
    assert.deepEqual([fresh.edgeId, fresh.edgePort, fresh.uplink], ['', '', 'eth0'], 'an unwired host: no edge, the default uplink');

    await fault(s.topology.setHostEdge(admin, b1, { edgeId: edgeA, port: 'swp9' }), Fault.INVALID_PARAMS, /zone zone-b .*zone zone-a/);
    await fault(s.topology.setHostEdge(admin, a2, { edgeId: edgeA, port: 'swp1' }), Fault.CONFLICT, /already wires/);
    await fault(s.topology.setHostEdge(admin, a2, { edgeId: 'edge-000000000000', port: 'swp2' }), Fault.NOT_FOUND);
    await fault(s.topology.setHostEdge(admin, 'host-000000000000', { edgeId: edgeA, port: 'swp2' }), Fault.NOT_FOUND);
    await fault(s.topology.setHostEdge(admin, a2, { edgeId: edgeA, port: 'swp 2' }), Fault.INVALID_PARAMS, /port/);
    await fault(s.topology.setHostEdge(admin, a2, { edgeId: edgeA, port: 'swp2', uplink: 'x'.repeat(16) }), Fault.INVALID_PARAMS, /uplink/);
    await fault(s.topology.setHostEdge(t, a2, { edgeId: edgeA, port: 'swp2' }), Fault.AUTHORIZATION);
    assert.equal((await s.hosts.info(admin, a2)).edgeId, '');

    // Re-wiring keeps the uplink unless given; the same port again is no conflict with itself.
    await s.topology.setHostEdge(admin, a1, { edgeId: edgeA, port: 'swp1' });
    assert.equal((await s.hosts.info(admin, a1)).uplink, 'enp2s0');
    await s.topology.setHostEdge(admin, a2, { edgeId: edgeA, port: 'swp2' });

    // The edge list counts wired hosts and the MACs of running VMs behind it.
    const n = await s.networks.allocate(t, {});
    await placeOn(s, await vmOn(s, t, n, n), a1);
    await placeOn(s, await vmOn(s, t, n), b1);
    const e = (await s.topology.edgeList(admin)).find((x) => x.edgeId === edgeA)!;
    assert.deepEqual([e.hosts, e.macsInUse], [2, 2]);
  });

  it('registers zone gateways with a unicast underlay address and an interface', async () => {
    const s = env.services;
    await s.topology.setZoneGateway(admin, 'zone-a', { underlayIp: '192.0.2.10', downlink: 'eth1' });
    for (const underlayIp of ['', 'gw', '300.1.1.1', '192.0.2', '0.0.0.0', '127.0.0.1', '224.0.0.5', '255.255.255.255', '192.0.2.010']) {
      await fault(s.topology.setZoneGateway(admin, 'zone-b', { underlayIp, downlink: 'eth1' }), Fault.INVALID_PARAMS, /underlayIp/);
    }
    await fault(s.topology.setZoneGateway(admin, 'zone-b', { underlayIp: '192.0.2.11', downlink: 'eth1:0' }), Fault.INVALID_PARAMS, /downlink/);
    await fault(s.topology.setZoneGateway(admin, 'zone-b', { underlayIp: '192.0.2.10', downlink: 'eth1' }), Fault.CONFLICT, /zone-a/);
    await fault(s.topology.setZoneGateway(t, 'zone-b', { underlayIp: '192.0.2.11', downlink: 'eth1' }), Fault.AUTHORIZATION);
    await fault(s.topology.setZoneGateway(admin, 'zone-x', { underlayIp: '192.0.2.11', downlink: 'eth1' }), Fault.INVALID_PARAMS, /unknown zone/);
    // Moving a gateway to a new address is allowed, and the old one is free again.
    await s.topology.setZoneGateway(admin, 'zone-a', { underlayIp: '192.0.2.20', downlink: 'eth1' });
    await s.topology.setZoneGateway(admin, 'zone-b', { underlayIp: '192.0.2.10', downlink: 'eth3' });
    const zones = await s.zones.list(admin);
    const z = (name: string) => zones.find((x) => x.name === name)!;
    assert.deepEqual([z('zone-a').gatewayUnderlayIp, z('zone-a').gatewayDownlink, z('zone-b').gatewayUnderlayIp, z('zone-b').gatewayDownlink],
      ['192.0.2.20', 'eth1', '192.0.2.10', 'eth3']);
    assert.equal(z('zone-a').edges, 1);
    assert.ok(z('zone-a').vlansInUse! >= 1);
    const seen = await s.zones.list(t);
    assert.ok(seen.every((x) => !('gatewayUnderlayIp' in x) && !('vlansInUse' in x)), 'the underlay is the operator\'s business');
  });

  it('keeps exactly one gateway zone', async () => {
    const s = env.services;
    await fault(s.topology.setGatewayZone(t, 'zone-a'), Fault.AUTHORIZATION);
    await s.topology.setGatewayZone(admin, 'zone-a');
    await s.topology.setGatewayZone(admin, 'zone-b');
    await s.topology.setGatewayZone(admin, 'zone-b');
    const flagged = (await s.zones.list(admin)).filter((z) => z.gatewayZone).map((z) => z.name);
    assert.deepEqual(flagged, ['zone-b']);
    assert.deepEqual((await s.topology.topology()).zones.filter((z) => z.gatewayZone).length, 1);
  });
});
