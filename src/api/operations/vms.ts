import { Type } from '@sinclair/typebox';
import { op, type Operation, type Param } from './types.js';
import { Name, RequestIdResult, Slot, Strict, Timestamp, True, VmId, ImageId, Id, Ip } from './schemas.js';

const VmStatus = Type.Union(['stopped', 'starting', 'running', 'stopping', 'migrating', 'error'].map((s) => Type.Literal(s)));
const Arch = Type.Union([Type.Literal('x86_64'), Type.Literal('i686')]);

/** An async VM action: POST /v1/vms/{vmId}/<path> → 202 with the request id. */
const asyncVmOp = (name: string, path: string, summary: string, params: Param[], run: Operation['run']) => op({
  name, summary: `${summary} (async)`, tag: 'VMs', params: [{ name: 'vmId', schema: VmId }, ...params], result: RequestIdResult,
  rest: { method: 'POST', path: `/v1/vms/{vmId}/${path}`, status: 202, wrap: 'requestId' }, run,
});

export const vmOperations = [
  op({
    name: 'getVmList', summary: 'List the VMs you can see', tag: 'VMs', params: [],
    result: Type.Array(Type.Object({ vmId: Type.String(), name: Type.String(), type: Type.String(), status: VmStatus })),
    rest: { method: 'GET', path: '/v1/vms' }, run: (s, p) => s.vms.list(p),
  }),
  op({
    name: 'getVmInfo', summary: 'A VM with its disks and NICs', tag: 'VMs', params: [{ name: 'vmId', schema: VmId }],
    result: Type.Object({
      vmId: Type.String(), name: Type.String(), type: Type.String(), architecture: Arch, resourceType: Type.String(),
      vcpus: Type.Integer(), memoryMiB: Type.Integer(), status: VmStatus, power: Type.String(), zone: Type.String(), host: Type.String(),
      disks: Type.Array(Type.Object({ slot: Type.Integer(), volumeId: Type.String(), sizeGiB: Type.Integer() })),
      nics: Type.Array(Type.Object({ slot: Type.Integer(), networkId: Type.String(), mac: Type.String(), ipAddresses: Type.Array(Type.String()) })),
      createdAt: Timestamp, comment: Type.String(),
    }),
    rest: { method: 'GET', path: '/v1/vms/{vmId}' }, run: (s, p, a) => s.vms.info(p, a.vmId),
  }),
  op({
    name: 'getVmStatus', summary: 'Power, status and the request now queued or running on the VM ("" when none)', tag: 'VMs',
    params: [{ name: 'vmId', schema: VmId }],
    result: Type.Object({ vmId: Type.String(), power: Type.String(), status: VmStatus, requestId: Type.String() }),
    rest: { method: 'GET', path: '/v1/vms/{vmId}/status' }, run: (s, p, a) => s.vms.status(p, a.vmId),
  }),
  op({
    name: 'allocateVm', summary: 'Reserve a VM slot and create its system volume (slot 0); nothing runs yet', tag: 'VMs',
    params: [{ name: 'vm', schema: Strict({ type: Type.String({ maxLength: 64 }), name: Type.Optional(Name), zone: Type.Optional(Type.String({ maxLength: 64 })), architecture: Type.Optional(Type.String({ maxLength: 16 })), systemDiskGiB: Type.Optional(Type.Integer()),
      // The limit is 64 KiB of bytes (checkUserData says so with the figure); the schema only stops absurd sizes.
      userData: Type.Optional(Type.String({ maxLength: 1 << 20 })) }) }],
    result: Type.String({ description: 'vmId' }),
    rest: { method: 'POST', path: '/v1/vms', status: 201, wrap: 'vmId' }, run: (s, p, a) => s.vms.allocate(p, a.vm),
  }),
  op({
    name: 'deallocateVm', summary: 'Delete a stopped VM and its system volume; extra volumes are detached, not deleted', tag: 'VMs',
    params: [{ name: 'vmId', schema: VmId }], result: True,
    rest: { method: 'DELETE', path: '/v1/vms/{vmId}', status: 204 }, run: (s, p, a) => s.vms.deallocate(p, a.vmId),
  }),
  asyncVmOp('powerOnVm', 'power-on', 'Place (if needed) and start the VM', [], (s, p, a) => s.vms.powerOn(p, a.vmId)),
  asyncVmOp('powerOffVm', 'power-off', 'ACPI shutdown, forced after a timeout, or at once with force',
    [{ name: 'force', schema: Type.Boolean(), optional: true }], (s, p, a) => s.vms.powerOff(p, a.vmId, a.force ?? false)),
  asyncVmOp('resetVm', 'reset', 'Hard reset', [], (s, p, a) => s.vms.reset(p, a.vmId)),
  asyncVmOp('restoreImage', 'restore-image', 'Write an image onto the system volume of a stopped VM',
    [{ name: 'imageId', schema: ImageId }], (s, p, a) => s.vms.restoreImage(p, a.vmId, a.imageId)),
  op({
    name: 'changeVmType', summary: 'Change the type of a stopped VM; capacity is checked at the next power-on', tag: 'VMs',
    params: [{ name: 'vmId', schema: VmId }, { name: 'type', schema: Type.String({ maxLength: 64 }) }], result: True,
    rest: { method: 'PUT', path: '/v1/vms/{vmId}/type', status: 204 }, run: (s, p, a) => s.vms.changeType(p, a.vmId, a.type),
  }),
  op({
    name: 'changeVmArchitecture', summary: 'Change the architecture of a stopped VM', tag: 'VMs',
    params: [{ name: 'vmId', schema: VmId }, { name: 'architecture', schema: Type.String({ maxLength: 16 }) }], result: True,
    rest: { method: 'PUT', path: '/v1/vms/{vmId}/architecture', status: 204 }, run: (s, p, a) => s.vms.changeArchitecture(p, a.vmId, a.architecture),
  }),
  asyncVmOp('migrateVm', 'migrate', 'Live-migrate a running VM',
    [{ name: 'target', schema: Strict({
      host: Type.Optional(Id('host')), zone: Type.Optional(Type.String({ maxLength: 64 })),
      // kumo addition: after a move to another zone, a copy of each volume follows to a node there (UKAI fig. 4).
      followStorage: Type.Optional(Type.Boolean()),
    }) }],
    (s, p, a) => s.vms.migrate(p, a.vmId, a.target)),
  op({
    name: 'getVmTypeList', summary: 'The VM type catalog', tag: 'VMs', params: [],
    result: Type.Array(Type.Object({ type: Type.String(), vcpus: Type.Integer(), memoryMiB: Type.Integer(), systemDiskGiB: Type.Integer(), resourceType: Type.String() })),
    rest: { method: 'GET', path: '/v1/vm-types' }, run: (s) => s.vmTypes.list(),
  }),
  op({
    name: 'putVmType', summary: 'Add or replace a catalog entry (admin; existing VMs keep their shape)', tag: 'Admin', admin: true,
    params: [{ name: 'vmType', schema: Strict({ type: Type.String({ maxLength: 64 }), vcpus: Type.Integer(), memoryMiB: Type.Integer(), systemDiskGiB: Type.Integer(), resourceType: Type.String({ maxLength: 32 }) }) }],
    result: True, rest: { method: 'POST', path: '/v1/vm-types', status: 204 },
    run: async (s, p, a) => { await s.vmTypes.put(p, [a.vmType]); return true; },
  }),
];

export const nicParams = [{ name: 'vmId', schema: VmId }, { name: 'slot', schema: Slot }];
export const ipParam = { name: 'ip', schema: Ip };
