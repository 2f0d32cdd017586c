import { Type, type TSchema } from '@sinclair/typebox';

/** Shared parameter and result schemas. Lengths are bounded here so oversized values are refused
 * before any service sees them; finer rules (name syntax, ranges) live in the services. */
export const Id = (kind: string) => Type.String({ maxLength: 64, description: `a ${kind} id` });
export const VmId = Id('VM (vm-…)');
export const NetworkId = Id('network (net-…)');
export const VolumeId = Id('volume (vol-…)');
export const ImageId = Id('image (img-…)');
export const RequestId = Id('request (req-…)');
export const HostId = Id('host (host-…)');
export const TenantId = Id('tenant (tenant-…)');
export const NodeId = Id('storage node (node-…)');
export const Name = Type.String({ maxLength: 255 });
export const Slot = Type.Integer({ minimum: 0, maximum: 15 });
export const Ip = Type.String({ maxLength: 64 });
export const Text = (max: number) => Type.String({ maxLength: max });
export const Strict = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false });
export const True = Type.Literal(true);
export const RequestIdResult = Type.String({ description: 'the id of the async request (req-…)' });
export const Timestamp = Type.String({ description: 'ISO-8601 UTC, or "" when not yet' });
