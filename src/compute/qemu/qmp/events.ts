/**
 * Asynchronous QMP events and the data QEMU 7.2 attaches to the ones kumo reacts to
 * (qapi/run-state.json, migration.json, qdev.json, block-core.json). Unlisted events still arrive,
 * typed loosely, so a newer QEMU's events reach '*' listeners instead of being lost.
 */
import type { MigrationStatus } from './types.js';

export interface QmpTimestamp {
  /** Both are -1 when QEMU could not read the host clock. */
  seconds: number;
  microseconds: number;
}

export interface QmpEvent<D = Record<string, unknown>> {
  event: string;
  /** QEMU omits `data` for events without any; it is `{}` here so listeners need no check. */
  data: D;
  timestamp: QmpTimestamp;
}

export type ShutdownCause =
  | 'none' | 'host-error' | 'host-qmp-quit' | 'host-qmp-system-reset' | 'host-signal' | 'host-ui'
  | 'guest-shutdown' | 'guest-reset' | 'guest-panic' | 'subsystem-reset' | 'snapshot-load';

export interface QmpEventMap {
  /** `guest: false` when the host asked (quit, signal); QEMU exits right after unless -no-shutdown. */
  SHUTDOWN: { guest: boolean; reason: ShutdownCause };
  /** Only a request to the guest (ACPI button): a guest without ACPI ignores it. */
  POWERDOWN: Record<string, never>;
  RESET: { guest: boolean; reason: ShutdownCause };
  STOP: Record<string, never>;
  RESUME: Record<string, never>;
  SUSPEND: Record<string, never>;
  WAKEUP: Record<string, never>;
  GUEST_PANICKED: { action: 'pause' | 'poweroff' | 'run'; info?: Record<string, unknown> };
  /** Sent only when the `events` migration capability is on. */
  MIGRATION: { status: MigrationStatus };
  MIGRATION_PASS: { pass: number };
  /** The end of a device_del: the guest released the device (or it was never guest-visible). */
  DEVICE_DELETED: { device?: string; path: string };
  BLOCK_IO_ERROR: {
    device: string; 'node-name'?: string; operation: 'read' | 'write';
    action: 'ignore' | 'report' | 'stop'; nospace?: boolean; reason: string;
  };
  NIC_RX_FILTER_CHANGED: { name?: string; path: string };
}

export type QmpEventName = keyof QmpEventMap;

/** A typed event for known names, a loose one for everything else. */
export type QmpEventOf<K extends string> = QmpEvent<K extends QmpEventName ? QmpEventMap[K] : Record<string, unknown>>;

export type QmpEventListener<K extends string = string> = (event: QmpEventOf<K>) => void;
