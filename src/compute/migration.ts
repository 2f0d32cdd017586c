/**
 * Live migration as a hypervisor driver offers it (DESIGN.md §8, issue 6). The controller runs seed
 * 000's seven steps across two agents; each step below is one agent call, idempotent like every
 * agent operation. The QEMU driver implements it with QMP (`-incoming defer`, migrate-set-*, migrate,
 * query-migrate, migrate_cancel, cont, announce-self); the sim driver models the same calls with the
 * pre-copy predictor so scale runs take believable time.
 */
import type { LaunchSpec } from './driver.js';

/** What the controller's policy decided for this migration (services/migration-policy.ts). */
export interface MigrationParams {
  /** QEMU's downtime-limit: the longest pause the final round may take. */
  downtimeLimitMs: number;
  /** QEMU's max-bandwidth, bytes per second. */
  maxBandwidthBytes: number;
  /** CPU throttling when rounds do not shrink (not for guaranteed VMs by default). */
  autoConverge: boolean;
  /** After this long the migration is cancelled and the VM keeps running at the source. */
  completionTimeoutMs: number;
}

/** One sample of query-migrate on the source, as the request's progress shows it. */
export interface MigrationProgress {
  /** QEMU's MigrationStatus: setup, active, pre-switchover, device, completed, failed, cancelling, cancelled… */
  status: string;
  elapsedMs: number;
  /** RAM bytes sent so far, still to send, and in all. */
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  /** Pre-copy passes so far (QEMU's dirty-sync-count). */
  passes: number;
  /** Bytes per second the guest dirties, as QEMU measures it during the migration. */
  dirtyRateBytes: number;
  /** QEMU's own estimate of the final pause. */
  expectedDowntimeMs: number;
  /** CPU throttle applied by auto-converge, percent (0 when off). */
  throttlePercent: number;
}

/** What the source reports when QEMU says `completed` (the source is then paused, `postmigrate`). */
export interface MigrationOutcome {
  totalMs: number;
  /** QEMU's measured pause at the source: the final round and device state. */
  downtimeMs: number;
  setupMs: number;
  transferredBytes: number;
  passes: number;
  /** Highest CPU throttle auto-converge applied, percent. */
  throttlePercent: number;
}

/** Why an outgoing migration ended without completing; the VM runs on at the source in every case. */
export type MigrationFailure = 'cancelled' | 'timeout' | 'failed';

export class MigrationError extends Error {
  constructor(readonly vmId: string, readonly kind: MigrationFailure, message: string) { super(message); this.name = 'MigrationError'; }
}

export interface MigrationSupport {
  /**
   * Destination: starts the VM paused, waiting for an incoming migration on `listenHost` (a free
   * port chosen by QEMU), its taps made and its disks' sources opened as `spec` says. Returns the URI
   * the source sends to. A VM already waiting here returns its URI again.
   */
  prepareIncoming(spec: LaunchSpec, listenHost: string): Promise<{ uri: string }>;
  /** Source: the guest's dirty rate in bytes per second, measured over `seconds` (calc-dirty-rate). */
  dirtyRate(vmId: string, seconds: number): Promise<number>;
  /**
   * Source: migrates to `uri` with `params`, reporting progress about every 250 ms. Resolves when QEMU
   * reports `completed` (the source is paused, its disks flushed and released by QEMU); rejects with
   * a MigrationError after cancelling (signal aborted, completion timeout) or when QEMU fails —
   * the VM is then running at the source again.
   */
  migrateOut(vmId: string, uri: string, params: MigrationParams,
    onProgress: (p: MigrationProgress) => void, signal: AbortSignal): Promise<MigrationOutcome>;
  /** Destination, once its volumes' leases are here: resumes the guest and announces its MACs. */
  resumeIncoming(vmId: string): Promise<void>;
  /** Source, when the switch-over failed after QEMU completed: the guest runs at the source again. */
  resumeOutgoing(vmId: string): Promise<void>;
}
