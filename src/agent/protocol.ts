import type { VmReport, VmSpec, StopOptions } from '../compute/driver.js';
import type { AgentRegistration } from '../services/hosts.js';

/**
 * The controller ↔ agent wire contract, in one place for both sides. Agent operations are
 * idempotent: the controller may repeat any of them after a timeout or a restart.
 */
export const AGENT_PATHS = {
  start: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/start`,
  stop: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/stop`,
  reset: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/reset`,
  list: (hostId: string) => `/agent/v1/hosts/${hostId}/vms`,
  /** Writes an image onto a volume's file; the answer streams RestoreEvent lines (NDJSON). */
  restore: (hostId: string, volumeId: string) => `/agent/v1/hosts/${hostId}/volumes/${volumeId}/restore`,
} as const;

export const CONTROLLER_PATHS = {
  register: '/v1/agent/register', heartbeat: '/v1/agent/heartbeat', exit: '/v1/agent/vm-exit',
  /** An image's files and boot information (AgentImageMeta), with the node token. */
  image: (imageId: string) => `/v1/agent/images/${imageId}`,
  /** One file of an image, streamed. */
  imageFile: (imageId: string, file: string) => `/v1/agent/images/${imageId}/${file}`,
} as const;

export type StartBody = VmSpec;
export type StopBody = StopOptions;
export type RegisterBody = AgentRegistration;
export interface RegisterReply { nodeToken: string; hosts: { name: string; hostId: string }[] }
export interface HeartbeatBody {
  hosts: { hostId: string; vms: VmReport[] }[];
  /** Volume ids whose local files this agent holds (interim local volumes). */
  volumes?: string[];
}
export interface HeartbeatReply {
  /** Of the reported volumes, those the store no longer has: the agent deletes their files. */
  deleteVolumes?: string[];
  /** Identifies the state store; an agent deletes files only on the word of the store it first served. */
  storeId?: string;
}
export interface ExitBody { hostId: string; vmId: string; reason: 'shutdown' | 'crash' }
export interface AgentFault { error: string }

/** One file of an image as the controller stores it. */
export interface ImageFileMeta { name: string; size: number; sha256: string }
export interface BootMeta { kernel: string; initrd?: string; append?: string }
export interface AgentImageMeta { imageId: string; sha256: string; sizeBytes: number; disk: string; files: ImageFileMeta[]; boot: BootMeta | null }

export interface RestoreBody {
  /** The VM whose system volume this is: refused while it runs on this agent. */
  vmId: string;
  imageId: string;
  /** The volume's size: its file is made this long. */
  sizeGiB: number;
  /** Name of the raw disk among `files`; every file is fetched into the agent's image cache. */
  disk: string;
  files: ImageFileMeta[];
}

/** Lines of a restore's answer: progress, then `done` or `error`. */
export type RestoreEvent =
  | { stage: 'download'; bytes: number; total: number }
  | { stage: 'copy'; fraction: number }
  | { done: true }
  | { error: string };
