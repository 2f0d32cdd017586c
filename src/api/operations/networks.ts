import { Type } from '@sinclair/typebox';
import { op } from './types.js';
import { Ip, Name, NetworkId, Strict, True, VmId } from './schemas.js';
import { ipParam, nicParams } from './vms.js';

const Member = Type.Object({ vmId: Type.String(), slot: Type.Integer(), mac: Type.String(), ipAddresses: Type.Array(Type.String()) });

export const networkOperations = [
  op({
    name: 'getNetworkList', summary: 'Your private networks and the shared L3 networks', tag: 'Networks', params: [],
    result: Type.Array(Type.Object({ networkId: Type.String(), name: Type.String(), kind: Type.String(), cidr: Type.String() })),
    rest: { method: 'GET', path: '/v1/networks' }, run: (s, p) => s.networks.list(p),
  }),
  op({
    name: 'getNetworkInfo', summary: 'A network with its zone VLANs and members', tag: 'Networks', params: [{ name: 'networkId', schema: NetworkId }],
    result: Type.Object({
      networkId: Type.String(), name: Type.String(), kind: Type.String(), cidr: Type.String(), gateway: Type.String(), vni: Type.Integer(),
      zones: Type.Array(Type.Object({ zone: Type.String(), vlan: Type.Integer() })), members: Type.Array(Member),
    }),
    rest: { method: 'GET', path: '/v1/networks/{networkId}' }, run: (s, p, a) => s.networks.info(p, a.networkId),
  }),
  op({
    name: 'allocateNetwork', summary: 'A tenant private L2 network, /20 by default, spanning every zone', tag: 'Networks',
    params: [{ name: 'network', schema: Strict({ name: Type.Optional(Name), cidr: Type.Optional(Ip) }) }],
    result: Type.String({ description: 'networkId' }), rest: { method: 'POST', path: '/v1/networks', status: 201, wrap: 'networkId' },
    run: (s, p, a) => s.networks.allocate(p, a.network),
  }),
  op({
    name: 'deallocateNetwork', summary: 'Delete a network no VM is attached to', tag: 'Networks', params: [{ name: 'networkId', schema: NetworkId }],
    result: True, rest: { method: 'DELETE', path: '/v1/networks/{networkId}', status: 204 }, run: (s, p, a) => s.networks.deallocate(p, a.networkId),
  }),
  op({
    name: 'allocateIpAddress', summary: 'Take an address of a shared L3 network for your tenant', tag: 'Networks', params: [{ name: 'networkId', schema: NetworkId }],
    result: Type.String({ description: 'the address' }), rest: { method: 'POST', path: '/v1/networks/{networkId}/addresses', status: 201, wrap: 'ip' },
    run: (s, p, a) => s.networks.allocateIp(p, a.networkId),
  }),
  op({
    name: 'deallocateIpAddress', summary: 'Give back an unassigned address of a shared L3 network', tag: 'Networks',
    params: [{ name: 'networkId', schema: NetworkId }, ipParam], result: True,
    rest: { method: 'DELETE', path: '/v1/networks/{networkId}/addresses/{ip}', status: 204 }, run: (s, p, a) => s.networks.deallocateIp(p, a.networkId, a.ip),
  }),
  op({
    name: 'attachNetwork', summary: 'Plug a NIC on the network into a stopped VM', tag: 'Networks',
    params: [{ name: 'vmId', schema: VmId }, { name: 'networkId', schema: NetworkId }],
    result: Type.Object({ slot: Type.Integer(), mac: Type.String() }), rest: { method: 'POST', path: '/v1/vms/{vmId}/nics', status: 201 },
    run: (s, p, a) => s.networks.attach(p, a.vmId, a.networkId),
  }),
  op({
    name: 'detachNetwork', summary: 'Unplug a NIC from a stopped VM', tag: 'Networks', params: nicParams, result: True,
    rest: { method: 'DELETE', path: '/v1/vms/{vmId}/nics/{slot}', status: 204 }, run: (s, p, a) => s.networks.detach(p, a.vmId, a.slot),
  }),
  op({
    name: 'assignIpAddress', summary: 'Assign an allocated shared-network address to a NIC', tag: 'Networks', params: [...nicParams, ipParam], result: True,
    rest: { method: 'POST', path: '/v1/vms/{vmId}/nics/{slot}/addresses', status: 204 }, run: (s, p, a) => s.networks.assignIp(p, a.vmId, a.slot, a.ip),
  }),
  op({
    name: 'removeIpAddress', summary: 'Remove a shared-network address from a NIC', tag: 'Networks', params: [...nicParams, ipParam], result: True,
    rest: { method: 'DELETE', path: '/v1/vms/{vmId}/nics/{slot}/addresses/{ip}', status: 204 }, run: (s, p, a) => s.networks.removeIp(p, a.vmId, a.slot, a.ip),
  }),
  op({
    name: 'createSharedNetwork', summary: 'Create a shared L3 network (admin)', tag: 'Admin', admin: true,
    params: [{ name: 'network', schema: Strict({ name: Name, cidr: Ip, gateway: Ip }) }],
    result: Type.String({ description: 'networkId' }), rest: { method: 'POST', path: '/v1/shared-networks', status: 201, wrap: 'networkId' },
    run: (s, p, a) => s.networks.createShared(p, a.network),
  }),
];
