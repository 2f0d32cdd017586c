import { Type } from '@sinclair/typebox';
import { op } from './types.js';
import { HostId, Name, RequestIdResult, Strict, Text, TenantId, True } from './schemas.js';

const Host = Type.Object({
  hostId: Type.String(), name: Type.String(), zone: Type.String(), vcpus: Type.Integer(), memoryMiB: Type.Integer(), pool: Type.String(),
  dedicatedTenant: Type.String(), maintenance: Type.Boolean(), status: Type.String(), driver: Type.String(), accel: Type.String(),
  architectures: Type.Array(Type.String()), lastSeen: Type.String(), vms: Type.Integer(),
  edgeId: Type.String({ description: 'the edge switch the host hangs off; "" while not wired (kumo addition)' }),
  edgePort: Type.String({ description: 'the edge\'s port to the host; "" while not wired (kumo addition)' }),
  uplink: Type.String({ description: 'the host\'s interface to its edge (kumo addition)' }),
});
const QuotaSchema = Strict({
  vms: Type.Optional(Type.Integer()), vcpus: Type.Optional(Type.Integer()), memoryMiB: Type.Optional(Type.Integer()), volumes: Type.Optional(Type.Integer()),
  volumeGiB: Type.Optional(Type.Integer()), networks: Type.Optional(Type.Integer()), ipAddresses: Type.Optional(Type.Integer()),
});
const admin = { tag: 'Admin', admin: true } as const;
const hostParam = { name: 'hostId', schema: HostId };

export const adminOperations = [
  op({ ...admin, name: 'getHostList', summary: 'Hypervisor hosts (admin)', params: [], result: Type.Array(Host), rest: { method: 'GET', path: '/v1/hosts' }, run: (s, p) => s.hosts.list(p) }),
  op({
    ...admin, name: 'getHostInfo', summary: 'One host and the VMs placed on it (admin)', params: [hostParam],
    result: Type.Intersect([Host, Type.Object({ vmList: Type.Array(Type.Object({ vmId: Type.String(), resourceType: Type.String(), vcpus: Type.Integer(), memoryMiB: Type.Integer(), status: Type.String() })) })]),
    rest: { method: 'GET', path: '/v1/hosts/{hostId}' }, run: (s, p, a) => s.hosts.info(p, a.hostId),
  }),
  op({
    ...admin, name: 'drainHost', summary: 'Live-migrate every VM away and report those that cannot move (admin, async)', params: [hostParam],
    result: RequestIdResult, rest: { method: 'POST', path: '/v1/hosts/{hostId}/drain', status: 202, wrap: 'requestId' }, run: (s, p, a) => s.hosts.drain(p, a.hostId, s.requests),
  }),
  op({
    ...admin, name: 'setHostMaintenance', summary: 'Put a host in or out of maintenance: no new placements while in (admin)',
    params: [hostParam, { name: 'maintenance', schema: Type.Boolean() }], result: True,
    rest: { method: 'PUT', path: '/v1/hosts/{hostId}/maintenance', status: 204 }, run: (s, p, a) => s.hosts.setMaintenance(p, a.hostId, a.maintenance),
  }),
  op({
    ...admin, name: 'setHostPool', summary: 'Make a host shared, or dedicated to one tenant (admin; kumo addition)',
    params: [hostParam, { name: 'pool', schema: Strict({ pool: Text(16), tenantId: Type.Optional(TenantId) }) }], result: True,
    rest: { method: 'PUT', path: '/v1/hosts/{hostId}/pool', status: 204 }, run: (s, p, a) => s.hosts.setPool(p, a.hostId, a.pool),
  }),
  op({
    name: 'getZoneList', summary: 'Zones', tag: 'Zones', params: [],
    result: Type.Array(Type.Object({
      zoneId: Type.String(), name: Type.String(),
      gatewayZone: Type.Boolean({ description: 'the zone holding every network\'s gateway address and the backbone link (kumo addition)' }),
      hosts: Type.Optional(Type.Integer()),
      // Admin only, kumo additions:
      edges: Type.Optional(Type.Integer()),
      vlansInUse: Type.Optional(Type.Integer({ description: 'VLAN IDs held by networks in the zone, of 4,093' })),
      gatewayUnderlayIp: Type.Optional(Type.String({ description: 'the SDN gateway\'s VXLAN address; "" while none' })),
      gatewayDownlink: Type.Optional(Type.String({ description: 'the SDN gateway\'s port toward the zone; "" while none' })),
    })),
    rest: { method: 'GET', path: '/v1/zones' }, run: (s, p) => s.zones.list(p),
  }),
  op({
    ...admin, name: 'getStorageNodeList', summary: 'Storage nodes (admin)', params: [],
    // Byte counts pass 2^31: the XML-RPC codec sends them as <i8> (Python's client reads it).
    result: Type.Array(Type.Object({
      nodeId: Type.String(), name: Type.String(), zone: Type.String(), status: Type.String(), address: Type.String({ description: 'host:port of its block protocol' }),
      totalBytes: Type.Integer(), freeBytes: Type.Integer(), lastSeen: Type.String(),
    })),
    rest: { method: 'GET', path: '/v1/storage-nodes' }, run: (s, p) => s.storageNodes.list(p),
  }),
  op({
    ...admin, name: 'createTenant', summary: 'Create a tenant (contract) with its quota (admin)',
    params: [{ name: 'tenant', schema: Strict({ name: Name, quota: Type.Optional(QuotaSchema) }) }],
    result: Type.String({ description: 'tenantId' }), rest: { method: 'POST', path: '/v1/tenants', status: 201, wrap: 'tenantId' },
    run: (s, p, a) => s.tenants.createTenant(p, a.tenant),
  }),
  op({
    ...admin, name: 'getTenantList', summary: 'Tenants with quota and usage (admin; kumo addition)', params: [],
    result: Type.Array(Type.Object({ tenantId: Type.String(), name: Type.String(), quota: Type.Record(Type.String(), Type.Integer()), usage: Type.Record(Type.String(), Type.Integer()) })),
    rest: { method: 'GET', path: '/v1/tenants' }, run: (s, p) => s.tenants.listTenants(p),
  }),
  op({
    ...admin, name: 'createApiUser', summary: 'Create an API user of a tenant; the key is shown only once (admin)', params: [{ name: 'tenantId', schema: TenantId }],
    result: Type.Object({ user: Type.String(), key: Type.String() }), rest: { method: 'POST', path: '/v1/tenants/{tenantId}/users', status: 201 },
    run: (s, p, a) => s.tenants.createApiUser(p, a.tenantId),
  }),
];
