import type { BlockEntry, NodeAddress, ReplicaChange, VolumeMap } from './frontend/map.js';

/**
 * The controller's storage side doors, in one place for both sides.
 *
 * Storage nodes: register with the cluster's join token (the one agents use), then heartbeat with
 * the node token they got. Frontends: the MapSource calls over HTTP, authenticated with an agent's
 * node token (holder = one of that agent's host ids) or an admin API key (holder = `export:<id>`,
 * for `kumo vol export`). Errors answer as problem+json with the HaaS fault code; a lease conflict
 * is 409 with `{"lease": "held"|"lost", "holder"?}`.
 */
export const STORAGE_PATHS = {
  register: '/v1/storage/register',
  heartbeat: '/v1/storage/heartbeat',
  open: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/open`,
  renew: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/renew`,
  allocate: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/allocate`,
  update: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/update`,
  discard: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/discard`,
  addLocation: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/add-location`,
  removeLocation: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/remove-location`,
  release: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/release`,
  handover: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/handover`,
  lease: (volumeId: string) => `/v1/frontend/volumes/${volumeId}/lease`,
} as const;

export interface StorageRegisterBody {
  /** Unique per cluster; a node registering again under its name keeps its id and token. */
  name: string;
  zone: string;
  /** Where frontends and other nodes reach its block protocol. */
  host: string;
  port: number;
  totalBytes: number;
  freeBytes: number;
}
export interface StorageRegisterReply { nodeId: string; nodeToken: string }
export interface StorageHeartbeatBody { nodeId: string; host: string; port: number; totalBytes: number; freeBytes: number }

/** Every frontend call names its holder; all but open name the epoch. */
export interface FrontendBody { holder: string; epoch?: number }
export interface AllocateBody extends FrontendBody { blocks: number[] }
export interface UpdateBody extends FrontendBody { changes: ReplicaChange[] }
export interface DiscardBody extends FrontendBody { blocks: number[] }
export interface LocationBody extends FrontendBody { nodeId: string }
/** Sent by the current holder's agent; `toHolder` is the destination's host id. */
export interface HandoverBody extends FrontendBody { toHolder: string }

export type OpenReply = VolumeMap;
export type AllocateReply = { blocks: BlockEntry[] };
export type AddLocationReply = NodeAddress;
/** The epoch of the lease the asking holder has; null when it has none. */
export type LeaseReply = { epoch: number | null };
