/**
 * Every way a QMP exchange can fail, as one error family. QEMU reports five error classes
 * (qapi/error.json); the driver branches on them (a DeviceNotFound from device_del means "already
 * gone", which is success for an idempotent detach), so each gets its own subclass. kumo adds three
 * of its own for failures QEMU cannot report: no answer in time, no connection, garbage on the wire.
 */

/** The classes QEMU sends in `{"error": {"class": …}}`. */
export type QemuErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';
/** The classes kumo raises itself; named like their subclasses so logs read the same either way. */
export type KumoQmpErrorClass = 'QmpTimeout' | 'QmpClosed' | 'QmpProtocolError';
export type QmpErrorClass = QemuErrorClass | KumoQmpErrorClass;

export class QmpError extends Error {
  /** The QMP error class. A class newer than this code knows stays readable here as a string. */
  readonly class: QmpErrorClass | (string & {});
  /** QEMU's human-readable text; the QMP spec says not to parse it, so nothing here does. */
  readonly desc: string;
  /** The command that failed, when there was one. */
  readonly command: string | undefined;

  constructor(cls: QmpErrorClass | (string & {}), desc: string, command?: string, options?: { cause?: unknown }) {
    super(command ? `QMP ${command}: ${cls}: ${desc}` : `QMP: ${cls}: ${desc}`, options);
    this.name = 'QmpError';
    this.class = cls;
    this.desc = desc;
    this.command = command;
  }
}

export class QmpGenericError extends QmpError {
  constructor(desc: string, command?: string) { super('GenericError', desc, command); this.name = 'QmpGenericError'; }
}
export class QmpCommandNotFound extends QmpError {
  constructor(desc: string, command?: string) { super('CommandNotFound', desc, command); this.name = 'QmpCommandNotFound'; }
}
export class QmpDeviceNotActive extends QmpError {
  constructor(desc: string, command?: string) { super('DeviceNotActive', desc, command); this.name = 'QmpDeviceNotActive'; }
}
export class QmpDeviceNotFound extends QmpError {
  constructor(desc: string, command?: string) { super('DeviceNotFound', desc, command); this.name = 'QmpDeviceNotFound'; }
}
export class QmpKvmMissingCap extends QmpError {
  constructor(desc: string, command?: string) { super('KVMMissingCap', desc, command); this.name = 'QmpKvmMissingCap'; }
}

/**
 * Nothing in time. For a command that was `sent`, QEMU may still carry it out: callers must treat
 * its outcome as unknown. One that was never sent (queued behind a busy QEMU) did not run.
 */
export class QmpTimeout extends QmpError {
  constructor(desc: string, command?: string, readonly timeoutMs?: number, readonly sent?: boolean) {
    super('QmpTimeout', desc, command);
    this.name = 'QmpTimeout';
  }
}

/** The monitor is not (or no longer) connected; pending commands may or may not have run. */
export class QmpClosed extends QmpError {
  /** The socket error code behind the close (ENOENT, ECONNREFUSED, ECONNRESET…), if any. */
  readonly code: string | undefined;
  constructor(desc: string, command?: string, options?: { cause?: unknown; code?: string }) {
    super('QmpClosed', desc, command, options);
    this.name = 'QmpClosed';
    this.code = options?.code;
  }
}

/** The peer broke the protocol (non-JSON line, missing greeting): the stream cannot be trusted. */
export class QmpProtocolError extends QmpError {
  constructor(desc: string, command?: string) { super('QmpProtocolError', desc, command); this.name = 'QmpProtocolError'; }
}

/** Maps a QEMU error reply to its subclass; an unknown class still yields a QmpError carrying it. */
export function qmpErrorFromReply(command: string, error: { class?: unknown; desc?: unknown }): QmpError {
  const cls = typeof error.class === 'string' ? error.class : 'GenericError';
  const desc = typeof error.desc === 'string' ? error.desc : JSON.stringify(error);
  switch (cls) {
    case 'GenericError': return new QmpGenericError(desc, command);
    case 'CommandNotFound': return new QmpCommandNotFound(desc, command);
    case 'DeviceNotActive': return new QmpDeviceNotActive(desc, command);
    case 'DeviceNotFound': return new QmpDeviceNotFound(desc, command);
    case 'KVMMissingCap': return new QmpKvmMissingCap(desc, command);
    default: return new QmpError(cls, desc, command);
  }
}

export const isQmpError = (e: unknown, cls?: QmpErrorClass): e is QmpError =>
  e instanceof QmpError && (cls === undefined || e.class === cls);
