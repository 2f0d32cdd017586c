/**
 * QAPI shapes of the commands kumo uses, checked against QEMU 7.2's query-qmp-schema. Member names
 * keep QEMU's spelling (`downtime-limit`, `cpu-index`) so QEMU's documentation reads directly on
 * them. Fields QEMU marks optional are optional; QEMU may add members, so nothing here is closed.
 */

export interface QmpVersionTriple { major: number; minor: number; micro: number }
export interface VersionInfo { qemu: QmpVersionTriple; package: string }

export interface QmpGreeting {
  version: VersionInfo;
  /** `oob` on QEMU ≥ 3.0; kumo does not enable it (see monitor.ts). */
  capabilities: string[];
}

export type RunState =
  | 'debug' | 'inmigrate' | 'internal-error' | 'io-error' | 'paused' | 'postmigrate' | 'prelaunch'
  | 'finish-migrate' | 'restore-vm' | 'running' | 'save-vm' | 'shutdown' | 'suspended' | 'watchdog'
  | 'guest-panicked' | 'colo';

export interface StatusInfo {
  running: boolean;
  status: RunState;
  /** Deprecated in 8.1, still sent by 7.2. */
  singlestep?: boolean;
}

export interface CpuInfoFast {
  'cpu-index': number;
  'qom-path': string;
  /** The host thread running this vCPU: what CPU pinning and per-vCPU accounting need. */
  'thread-id': number;
  props?: { 'node-id'?: number; 'socket-id'?: number; 'die-id'?: number; 'cluster-id'?: number; 'core-id'?: number; 'thread-id'?: number };
  target: string;
}

export interface BlockDeviceInfo {
  file: string;
  'node-name'?: string;
  ro: boolean;
  drv: string;
  'backing_file'?: string;
  encrypted: boolean;
  'detect_zeroes': 'off' | 'on' | 'unmap';
  cache: { writeback: boolean; direct: boolean; 'no-flush': boolean };
  image: { filename: string; format: string; 'virtual-size': number; 'actual-size'?: number };
  [more: string]: unknown;
}

export interface BlockInfo {
  device: string;
  qdev?: string;
  type: string;
  removable: boolean;
  locked: boolean;
  inserted?: BlockDeviceInfo;
  'tray_open'?: boolean;
  'io-status'?: 'ok' | 'failed' | 'nospace';
}

export type MigrationCapability =
  | 'xbzrle' | 'rdma-pin-all' | 'auto-converge' | 'zero-blocks' | 'compress' | 'events' | 'postcopy-ram'
  | 'x-colo' | 'release-ram' | 'block' | 'return-path' | 'pause-before-switchover' | 'multifd'
  | 'dirty-bitmaps' | 'postcopy-blocktime' | 'late-block-activate' | 'x-ignore-shared' | 'validate-uuid'
  | 'background-snapshot' | 'zero-copy-send' | 'postcopy-preempt';

export type MigrationStatus =
  | 'none' | 'setup' | 'cancelling' | 'cancelled' | 'active' | 'postcopy-active' | 'postcopy-paused'
  | 'postcopy-recover' | 'completed' | 'failed' | 'colo' | 'pre-switchover' | 'device' | 'wait-unplug';

/** The subset of MigrateSetParameters kumo tunes; the rest passes through untyped. */
export interface MigrationParameters {
  /** Milliseconds of pause allowed at switch-over. */
  'downtime-limit'?: number;
  /** Bytes per second. */
  'max-bandwidth'?: number;
  'cpu-throttle-initial'?: number;
  'cpu-throttle-increment'?: number;
  'cpu-throttle-tailslow'?: boolean;
  'max-cpu-throttle'?: number;
  'multifd-channels'?: number;
  'xbzrle-cache-size'?: number;
  'announce-initial'?: number;
  'announce-max'?: number;
  'announce-rounds'?: number;
  'announce-step'?: number;
  /** `null` is accepted by migrate-set-parameters only, to clear the setting. */
  'tls-creds'?: string | null;
  'tls-hostname'?: string | null;
  [more: string]: unknown;
}

export interface MigrationStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  'normal-bytes': number;
  /** Pages per second dirtied during the last pass: the input of the convergence prediction. */
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'page-size': number;
  'pages-per-second': number;
  [more: string]: unknown;
}

/** QAPI SocketAddress; `port` is a string (a service name is allowed). */
export type SocketAddress =
  | { type: 'inet'; host: string; port: string; ipv4?: boolean; ipv6?: boolean }
  | { type: 'unix'; path: string }
  | { type: 'vsock'; cid: string; port: string }
  | { type: 'fd'; str: string };

export interface MigrationInfo {
  /** Absent before the first migration on this QEMU. */
  status?: MigrationStatus;
  ram?: MigrationStats;
  disk?: MigrationStats;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'blocked-reasons'?: string[];
  /** Destination only: where migrate-incoming listens (the real port of a `:0` URI). */
  'socket-address'?: SocketAddress[];
  [more: string]: unknown;
}

export type DirtyRateMeasureMode = 'page-sampling' | 'dirty-ring' | 'dirty-bitmap';

export interface CalcDirtyRateArgs {
  /** Seconds in 7.2 (the milliseconds unit arrived in 8.2). */
  'calc-time': number;
  'sample-pages'?: number;
  mode?: DirtyRateMeasureMode;
}

export interface DirtyRateInfo {
  /** MiB/s; absent until a measurement finished. */
  'dirty-rate'?: number;
  status: 'unstarted' | 'measuring' | 'measured';
  'start-time': number;
  'calc-time': number;
  'sample-pages': number;
  mode: DirtyRateMeasureMode;
  'vcpu-dirty-rate'?: { id: number; 'dirty-rate': number }[];
}

/** All four timings are mandatory in 7.2 (milliseconds, except `rounds`). */
export interface AnnounceParameters {
  initial: number;
  max: number;
  rounds: number;
  step: number;
  interfaces?: string[];
  id?: string;
}

/** BlockdevOptions is a union over ~40 drivers; kumo names the common members and passes the rest. */
export interface BlockdevOptions {
  driver: string;
  'node-name'?: string;
  'read-only'?: boolean;
  'auto-read-only'?: boolean;
  discard?: 'ignore' | 'unmap';
  cache?: { direct?: boolean; 'no-flush'?: boolean };
  'detect-zeroes'?: 'off' | 'on' | 'unmap';
  [driverSpecific: string]: unknown;
}

/** device_add takes the same properties as -device; `id` is what device_del names later. */
export interface DeviceAddArgs {
  driver: string;
  id?: string;
  bus?: string;
  [property: string]: unknown;
}

export interface ObjectAddArgs {
  'qom-type': string;
  id: string;
  [property: string]: unknown;
}
