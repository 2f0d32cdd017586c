import { Type } from '@sinclair/typebox';
import { op } from './types.js';
import { HostId, Id, Ip, Name, Strict, Text, True } from './schemas.js';

/** Linux interface names are at most 15 characters; the service checks their syntax. */
const IfName = Text(15);
const Zone = Text(64);
const EdgeId = Id('edge (edge-…)');
const admin = { tag: 'Topology', admin: true } as const;
const zoneParam = { name: 'zone', schema: Type.String({ maxLength: 64, description: 'a zone id or name' }) };

/** The SDN topology (DESIGN.md §7): edges, host wiring, zone gateways, the gateway zone. All kumo additions. */
export const topologyOperations = [
  op({
    ...admin, name: 'createEdge', summary: 'Register an edge switch of a zone, with its uplink and MAC-table budget (admin; kumo addition)',
    params: [{ name: 'edge', schema: Strict({ zone: Zone, name: Name, uplink: IfName, macBudget: Type.Optional(Type.Integer({ description: 'MAC addresses its table may hold (default 16384)' })) }) }],
    result: Type.String({ description: 'edgeId' }), rest: { method: 'POST', path: '/v1/edges', status: 201, wrap: 'edgeId' },
    run: (s, p, a) => s.topology.createEdge(p, a.edge),
  }),
  op({
    ...admin, name: 'getEdgeList', summary: 'Edge switches with their hosts and the MACs placed behind them (admin; kumo addition)', params: [],
    result: Type.Array(Type.Object({
      edgeId: Type.String(), name: Type.String(), zone: Type.String(), uplink: Type.String(), macBudget: Type.Integer(),
      hosts: Type.Integer(), macsInUse: Type.Integer({ description: 'NICs of running VMs on its hosts' }),
    })),
    rest: { method: 'GET', path: '/v1/edges' }, run: (s, p) => s.topology.edgeList(p),
  }),
  op({
    ...admin, name: 'setHostEdge', summary: 'Wire a host to a port of an edge of its zone; uplink is the host\'s interface to it (admin; kumo addition)',
    params: [{ name: 'hostId', schema: HostId }, { name: 'edge', schema: Strict({ edgeId: EdgeId, port: IfName, uplink: Type.Optional(IfName) }) }], result: True,
    rest: { method: 'PUT', path: '/v1/hosts/{hostId}/edge', status: 204 }, run: (s, p, a) => s.topology.setHostEdge(p, a.hostId, a.edge),
  }),
  op({
    ...admin, name: 'setZoneGateway', summary: 'Register a zone\'s SDN gateway: its VXLAN underlay address and its downlink port (admin; kumo addition)',
    params: [zoneParam, { name: 'gateway', schema: Strict({ underlayIp: Ip, downlink: IfName }) }], result: True,
    rest: { method: 'PUT', path: '/v1/zones/{zone}/gateway', status: 204 }, run: (s, p, a) => s.topology.setZoneGateway(p, a.zone, a.gateway),
  }),
  op({
    ...admin, name: 'setGatewayZone', summary: 'Make a zone with a gateway the one gateway zone, holding every network\'s gateway address (admin; kumo addition)',
    params: [zoneParam], result: True,
    rest: { method: 'PUT', path: '/v1/zones/{zone}/gateway-zone', status: 204 }, run: (s, p, a) => s.topology.setGatewayZone(p, a.zone),
  }),
];
