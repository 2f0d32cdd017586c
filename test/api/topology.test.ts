/**
 * The topology operations (kumo additions) on both faces, in process: REST /v1 and XML-RPC /RPC2,
 * admin only, with the documented faults; the malformed network requests as the API answers them.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/server.js';
import { decodeCall, type XmlRpcValue } from '../../src/api/xmlrpc/codec.js';
import { SYSTEM } from '../../src/services/principal.js';
import { forEachDb, newTenant, silent } from '../helpers/db.js';
import { registerDeadHosts } from '../services/fixtures.js';
import { parseFault, xmlCall, xv } from './support.js';

forEachDb('topology API', (env) => {
  let app: FastifyInstance;
  let adminAuth: string, tenantAuth: string;
  let a1: string, b1: string;

  before(async () => {
    const s = env.services;
    const ops = await newTenant(s, 'ops');
    const t = await newTenant(s, 'apico');
    const admin = await s.tenants.createApiUser(SYSTEM, ops.tenantId, { admin: true });
    const user = await s.tenants.createApiUser(SYSTEM, t.tenantId);
    adminAuth = `Bearer ${admin.key}`;
    tenantAuth = `Bearer ${user.key}`;
    [a1] = await registerDeadHosts(s, 'zone-a', [{ name: 'a1' }]);
    [b1] = await registerDeadHosts(s, 'zone-b', [{ name: 'b1' }]);
    app = await buildServer(s, silent);
    await app.ready();
  });
  after(async () => { await app?.close(); });

  async function rest(method: 'GET' | 'POST' | 'PUT', url: string, auth: string, body?: unknown) {
    const r = await app.inject({ method, url, headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, payload: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.statusCode, body: r.body ? JSON.parse(r.body) : null };
  }

  /** One XML-RPC call: its value, or its fault. */
  async function rpc(auth: string, method: string, ...params: string[]): Promise<{ value?: XmlRpcValue; fault?: { code: number; message: string } }> {
    const r = await app.inject({ method: 'POST', url: '/RPC2', headers: { authorization: auth, 'content-type': 'text/xml' }, payload: xmlCall(method, ...params) });
    assert.equal(r.statusCode, 200, r.body);
    const fault = parseFault(r.body);
    if (fault) return { fault };
    // A methodResponse's one param read with the call decoder.
    const asCall = r.body.replace(/<methodResponse>/, '<methodCall><methodName>r</methodName>').replace(/<\/methodResponse>/, '</methodCall>');
    return { value: decodeCall(asCall).params[0] };
  }

  it('REST: creates and lists edges, wires a host, registers a gateway and the gateway zone', async () => {
    const created = await rest('POST', '/v1/edges', adminAuth, { zone: 'zone-a', name: 'tor-a', uplink: 'swp48', macBudget: 100 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const edgeId = created.body.edgeId as string;
    assert.match(edgeId, /^edge-[0-9a-f]{12}$/);
    const list = await rest('GET', '/v1/edges', adminAuth);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body, [{ edgeId, name: 'tor-a', zone: 'zone-a', uplink: 'swp48', macBudget: 100, hosts: 0, macsInUse: 0 }]);

    assert.equal((await rest('PUT', `/v1/hosts/${a1}/edge`, adminAuth, { edgeId, port: 'swp1', uplink: 'enp1s0' })).status, 204);
    const host = await rest('GET', `/v1/hosts/${a1}`, adminAuth);
    assert.deepEqual([host.body.edgeId, host.body.edgePort, host.body.uplink], [edgeId, 'swp1', 'enp1s0']);

    assert.equal((await rest('PUT', '/v1/zones/zone-a/gateway', adminAuth, { underlayIp: '192.0.2.1', downlink: 'eth1' })).status, 204);
    assert.equal((await rest('PUT', '/v1/zones/zone-a/gateway-zone', adminAuth)).status, 204);
    const zones = await rest('GET', '/v1/zones', adminAuth);
    const za = zones.body.find((z: { name: string }) => z.name === 'zone-a');
    assert.deepEqual([za.gatewayZone, za.gatewayUnderlayIp, za.gatewayDownlink, za.edges, za.hosts, za.vlansInUse], [true, '192.0.2.1', 'eth1', 1, 1, 0]);
    const seen = await rest('GET', '/v1/zones', tenantAuth);
    assert.deepEqual(Object.keys(seen.body[0]).sort(), ['gatewayZone', 'name', 'zoneId']);
  });

  it('REST: answers the documented faults as problem+json', async () => {
    const cases: [string, 'POST' | 'PUT', string, string, unknown, number, number, RegExp][] = [
      ['tenant', 'POST', '/v1/edges', tenantAuth, { zone: 'zone-a', name: 'x', uplink: 'swp1' }, 403, 2, /administrators/],
      ['duplicate', 'POST', '/v1/edges', adminAuth, { zone: 'zone-a', name: 'tor-a', uplink: 'swp1' }, 409, 8, /already has an edge/],
      ['unknown member', 'POST', '/v1/edges', adminAuth, { zone: 'zone-a', name: 'x', uplink: 'swp1', speed: 10 }, 400, 5, /unknown member "speed"/],
      ['long uplink', 'POST', '/v1/edges', adminAuth, { zone: 'zone-a', name: 'x', uplink: 'x'.repeat(16) }, 400, 5, /longer than 15/],
      ['other zone', 'PUT', `/v1/hosts/${'HOST_B'}/edge`, adminAuth, { edgeId: 'EDGE', port: 'swp2' }, 400, 5, /own zone/],
      ['no edge', 'PUT', `/v1/hosts/${'HOST_B'}/edge`, adminAuth, { edgeId: 'edge-000000000000', port: 'swp2' }, 404, 3, /edge edge-000000000000 not found/],
      ['bad underlay', 'PUT', '/v1/zones/zone-b/gateway', adminAuth, { underlayIp: '127.0.0.1', downlink: 'eth1' }, 400, 5, /underlayIp/],
      ['no gateway', 'PUT', '/v1/zones/zone-b/gateway-zone', adminAuth, undefined, 409, 4, /setZoneGateway first/],
      ['/30 network', 'POST', '/v1/networks', tenantAuth, { cidr: '10.0.0.0/30' }, 400, 5, /\/16 to \/29/],
      ['bad CIDR', 'POST', '/v1/networks', tenantAuth, { cidr: '10.0.0.1/24' }, 400, 5, /CIDR/],
    ];
    const edgeId = (await rest('GET', '/v1/edges', adminAuth)).body[0].edgeId;
    for (const [what, method, url, auth, body, status, code, msg] of cases) {
      const b = body && typeof body === 'object' && 'edgeId' in body && (body as { edgeId: string }).edgeId === 'EDGE' ? { ...body, edgeId } : body;
      const r = await rest(method, url.replace('HOST_B', b1), auth, b);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code, what);
      assert.match(r.body.detail, msg, what);
    }
  });

  it('XML-RPC: the same operations by their method names', async () => {
    const created = await rpc(adminAuth, 'createEdge', xv.struct({ zone: xv.str('zone-b'), name: xv.str('tor-b'), uplink: xv.str('swp48') }));
    assert.equal(created.fault, undefined);
    const edgeId = created.value as string;
    assert.match(edgeId, /^edge-/);
    const list = (await rpc(adminAuth, 'getEdgeList')).value as { edgeId: string; macBudget: number; zone: string }[];
    assert.deepEqual(list.find((e) => e.edgeId === edgeId), { edgeId, name: 'tor-b', zone: 'zone-b', uplink: 'swp48', macBudget: 16384, hosts: 0, macsInUse: 0 });
    assert.deepEqual((await rpc(adminAuth, 'setHostEdge', xv.str(b1), xv.struct({ edgeId: xv.str(edgeId), port: xv.str('swp3') }))).value, true);
    assert.deepEqual((await rpc(adminAuth, 'setZoneGateway', xv.str('zone-b'), xv.struct({ underlayIp: xv.str('198.51.100.1'), downlink: xv.str('eth1') }))).value, true);
    assert.deepEqual((await rpc(adminAuth, 'setGatewayZone', xv.str('zone-b'))).value, true);
    const zones = (await rpc(adminAuth, 'getZoneList')).value as { name: string; gatewayZone: boolean }[];
    assert.deepEqual(zones.filter((z) => z.gatewayZone).map((z) => z.name), ['zone-b']);
    const host = (await rpc(adminAuth, 'getHostInfo', xv.str(b1))).value as { edgeId: string; edgePort: string; uplink: string };
    assert.deepEqual([host.edgeId, host.edgePort, host.uplink], [edgeId, 'swp3', 'eth0']);
  });

  it('XML-RPC: faults for tenants, bad values and wrong arity', async () => {
    const cases: [string, string, string[], number, RegExp][] = [
      [tenantAuth, 'getEdgeList', [], 2, /administrators/],
      [tenantAuth, 'setGatewayZone', [xv.str('zone-a')], 2, /administrators/],
      [adminAuth, 'setZoneGateway', [xv.str('zone-a'), xv.struct({ underlayIp: xv.str('224.0.0.1'), downlink: xv.str('eth1') })], 5, /underlayIp/],
      [adminAuth, 'setZoneGateway', [xv.str('zone-a')], 5, /takes 2 parameters/],
      [adminAuth, 'createEdge', [xv.struct({ zone: xv.str('zone-a'), name: xv.str('y'), uplink: xv.str('swp1'), macBudget: xv.int(0) })], 5, /macBudget/],
      [adminAuth, 'setHostEdge', [xv.str(a1), xv.struct({ edgeId: xv.str('edge-000000000000'), port: xv.str('swp1') })], 3, /not found/],
      [tenantAuth, 'allocateNetwork', [xv.struct({ cidr: xv.str('10.0.0.0/15') })], 5, /\/16 to \/29/],
    ];
    for (const [auth, method, params, code, msg] of cases) {
      const r = await rpc(auth, method, ...params);
      assert.ok(r.fault, `${method}: no fault`);
      assert.equal(r.fault.code, code, `${method}: ${r.fault.message}`);
      assert.match(r.fault.message, msg);
    }
  });
});
