import type { VmReport, VmSpec, StopOptions } from '../compute/driver.js';
import type { MigrationFailure, MigrationOutcome, MigrationParams, MigrationProgress } from '../compute/migration.js';
import type { AgentRegistration } from '../services/hosts.js';
import type { RelocateProgress, RelocateResult } from '../storage/relocation/step.js';

/**
 * The controller ↔ agent wire contract, in one place for both sides. Agent operations are
 * idempotent: the controller may repeat any of them after a timeout or a restart.
 */
export const AGENT_PATHS = {
  start: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/start`,
  stop: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/stop`,
  reset: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/reset`,
  list: (hostId: string) => `/agent/v1/hosts/${hostId}/vms`,
  /** Adds, syncs or removes a location of a volume this agent's frontend holds; the answer streams RelocateEvent lines (NDJSON). */
  relocate: (hostId: string, volumeId: string) => `/agent/v1/hosts/${hostId}/volumes/${volumeId}/relocate`,
  // Live migration (DESIGN.md §8), in the order the controller calls them:
  /** Destination: IncomingBody → IncomingReply. Volumes exported but not yet leased; QEMU paused on `-incoming`. */
  incoming: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/incoming`,
  /** Source: DirtyRateBody → DirtyRateReply. */
  dirtyRate: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/dirty-rate`,
  /** Source: MigrateBody; the answer streams MigrateEvent lines (NDJSON) until QEMU completes or fails. */
  migrate: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/migrate`,
  /** Source: cancels the outgoing migration of the VM, if one runs; the VM goes on at the source. */
  migrateCancel: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/migrate/cancel`,
  /** Source, after completion: HandoverBody. Flushes the VM's volumes and hands their write leases to the destination host. */
  handover: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/handover`,
  /** Destination, after the hand-over: opens the volumes under the lease, resumes the guest, announces its MACs. */
  resumeIncoming: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/resume-incoming`,
  /** Source, rolling back after completion: ResumeOutgoingBody. Takes the leases back and resumes the guest here. */
  resumeOutgoing: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/resume-outgoing`,
  /** PUT MetadataBody: the VM's metadata changed (a new init generation); its guest's long-poll answers at once. */
  metadata: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/metadata`,
} as const;

export const CONTROLLER_PATHS = {
  register: '/v1/agent/register', heartbeat: '/v1/agent/heartbeat', exit: '/v1/agent/vm-exit',
  /** An image's files and boot information (AgentImageMeta), with the node token. */
  image: (imageId: string) => `/v1/agent/images/${imageId}`,
  /** One file of an image, streamed. */
  imageFile: (imageId: string, file: string) => `/v1/agent/images/${imageId}/${file}`,
  /** GET MetadataBody of a VM on (or migrating to) one of the caller's hosts. */
  metadata: (vmId: string) => `/v1/agent/vms/${vmId}/metadata`,
  /** POST AppliedBody: the guest confirmed a generation of its configuration. */
  configApplied: (vmId: string) => `/v1/agent/vms/${vmId}/config-applied`,
} as const;

export type StartBody = VmSpec;
export type StopBody = StopOptions;
export type RegisterBody = AgentRegistration;
export interface RegisterReply { nodeToken: string; hosts: { name: string; hostId: string }[] }
export interface HeartbeatBody { hosts: { hostId: string; vms: VmReport[] }[] }
export interface ExitBody { hostId: string; vmId: string; reason: 'shutdown' | 'crash' }
export interface AgentFault { error: string }

export interface IncomingBody { spec: VmSpec }
export interface IncomingReply { uri: string }
export interface DirtyRateBody { seconds: number }
export interface DirtyRateReply { bytesPerSecond: number }
export interface MigrateBody { uri: string; params: MigrationParams }
/** Lines of a migration's answer: progress samples, then `result` or `error`. */
export type MigrateEvent = { progress: MigrationProgress } | { result: MigrationOutcome } | { error: string; kind: MigrationFailure };
export interface HandoverBody { toHostId: string }
export type { MetadataBody } from '../metadata/wire.js';
export interface AppliedBody { generation: number }
/**
 * The answer to a metadata push: whether the VM's guest has asked kumo's guest-agent endpoints since
 * its listener opened `servedMs` ago (null: no listener here, e.g. a sim host). A guest that has
 * run for a while without asking has no kumo agent (cloud-init reads its configuration at boot).
 */
export interface GuestPolling { polled: boolean; servedMs: number | null }
export interface ResumeOutgoingBody { volumeIds: string[] }

/** One file of an image as the controller stores it. */
export interface ImageFileMeta { name: string; size: number; sha256: string }
export interface BootMeta { kernel: string; initrd?: string; append?: string }
export interface AgentImageMeta { imageId: string; sha256: string; sizeBytes: number; disk: string; files: ImageFileMeta[]; boot: BootMeta | null }

export type { RelocateBody, RelocateProgress } from '../storage/relocation/step.js';
/** Lines of a relocation's answer: progress, then `result` or `error`. */
export type RelocateEvent = { progress: RelocateProgress } | { result: RelocateResult } | { error: string };
