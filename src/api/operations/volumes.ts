import { Type } from '@sinclair/typebox';
import { op } from './types.js';
import { Name, NodeId, RequestIdResult, Slot, Strict, Text, True, VmId, VolumeId } from './schemas.js';

export const volumeOperations = [
  op({
    name: 'getVolumeList', summary: 'Your volumes', tag: 'Storage', params: [],
    result: Type.Array(Type.Object({ volumeId: Type.String(), name: Type.String(), sizeGiB: Type.Integer(), class: Type.String(), attachedTo: Type.String() })),
    rest: { method: 'GET', path: '/v1/volumes' }, run: (s, p) => s.volumes.list(p),
  }),
  op({
    name: 'getVolumeInfo', summary: 'A volume with its attachment and locations', tag: 'Storage', params: [{ name: 'volumeId', schema: VolumeId }],
    result: Type.Object({
      volumeId: Type.String(), name: Type.String(), sizeGiB: Type.Integer(), class: Type.String(), iops: Type.Integer(), replicas: Type.Integer(),
      attachedTo: Type.Union([Type.Object({ vmId: Type.String(), slot: Type.Integer() }), Type.Object({})]),
      locations: Type.Array(Type.Object({ nodeId: Type.String(), zone: Type.String(), inSync: Type.Integer(), syncing: Type.Integer(), outOfSync: Type.Integer() })),
      encrypted: Type.Boolean(),
    }),
    rest: { method: 'GET', path: '/v1/volumes/{volumeId}' }, run: (s, p, a) => s.volumes.info(p, a.volumeId),
  }),
  op({
    name: 'allocateVolume', summary: 'Create a volume', tag: 'Storage',
    params: [{ name: 'volume', schema: Strict({
      sizeGiB: Type.Integer(), name: Type.Optional(Name), class: Type.Optional(Type.String({ maxLength: 32 })), iops: Type.Optional(Type.Integer()),
      replicas: Type.Optional(Type.Integer()), zone: Type.Optional(Type.String({ maxLength: 64 })), encrypted: Type.Optional(Type.Boolean()),
    }) }],
    result: Type.String({ description: 'volumeId' }), rest: { method: 'POST', path: '/v1/volumes', status: 201, wrap: 'volumeId' },
    run: (s, p, a) => s.volumes.allocate(p, a.volume),
  }),
  op({
    name: 'deallocateVolume', summary: 'Delete a detached volume', tag: 'Storage', params: [{ name: 'volumeId', schema: VolumeId }], result: True,
    rest: { method: 'DELETE', path: '/v1/volumes/{volumeId}', status: 204 }, run: (s, p, a) => s.volumes.deallocate(p, a.volumeId),
  }),
  op({
    name: 'attachVolume', summary: 'Plug a volume into a stopped VM', tag: 'Storage', params: [{ name: 'vmId', schema: VmId }, { name: 'volumeId', schema: VolumeId }],
    result: Type.Integer({ description: 'the slot' }), rest: { method: 'POST', path: '/v1/vms/{vmId}/disks', status: 201, wrap: 'slot' },
    run: (s, p, a) => s.volumes.attach(p, a.vmId, a.volumeId),
  }),
  op({
    name: 'detachVolume', summary: 'Unplug a volume from a stopped VM (not slot 0)', tag: 'Storage', params: [{ name: 'vmId', schema: VmId }, { name: 'slot', schema: Slot }],
    result: True, rest: { method: 'DELETE', path: '/v1/vms/{vmId}/disks/{slot}', status: 204 }, run: (s, p, a) => s.volumes.detach(p, a.vmId, a.slot),
  }),
  op({
    name: 'addVolumeLocation', summary: 'Add a replica on a storage node, copied while the volume stays in use (async)', tag: 'Storage',
    params: [{ name: 'volumeId', schema: VolumeId }, { name: 'nodeId', schema: NodeId }], result: RequestIdResult,
    rest: { method: 'POST', path: '/v1/volumes/{volumeId}/locations', status: 202, wrap: 'requestId' }, run: (s, p, a) => s.volumes.addLocation(p, a.volumeId, a.nodeId),
  }),
  op({
    name: 'removeVolumeLocation', summary: 'Remove a replica (refused for the last in-sync copy of any block) (async)', tag: 'Storage',
    params: [{ name: 'volumeId', schema: VolumeId }, { name: 'nodeId', schema: NodeId }], result: RequestIdResult,
    rest: { method: 'DELETE', path: '/v1/volumes/{volumeId}/locations/{nodeId}', status: 202, wrap: 'requestId' }, run: (s, p, a) => s.volumes.removeLocation(p, a.volumeId, a.nodeId),
  }),
  op({
    name: 'createImageFromVolume', summary: 'Copy a volume that is not in use into a private image of its tenant, booting like the image it was restored from (async; kumo addition)', tag: 'Storage',
    params: [{ name: 'volumeId', schema: VolumeId }, { name: 'image', schema: Strict({ name: Name, os: Type.Optional(Text(64)) }) }], result: RequestIdResult,
    rest: { method: 'POST', path: '/v1/volumes/{volumeId}/image', status: 202, wrap: 'requestId' }, run: (s, p, a) => s.volumes.submitCapture(p, a.volumeId, a.image),
  }),
];
