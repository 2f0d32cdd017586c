/**
 * The QMP client of the QEMU driver: `QmpMonitor` (connection, ids, events, close), `QmpCommands`
 * (typed commands over any QmpExecutor), the QmpError family, and QAPI/event types.
 */
export { QmpMonitor, DEFAULT_TIMEOUT_MS } from './monitor.js';
export type { QmpConnectOptions, ExecuteOptions, QmpExecutor, QmpCloseInfo, WaitForEventOptions } from './monitor.js';
export { QmpCommands } from './commands.js';
export {
  QmpError, QmpGenericError, QmpCommandNotFound, QmpDeviceNotActive, QmpDeviceNotFound, QmpKvmMissingCap,
  QmpTimeout, QmpClosed, QmpProtocolError, qmpErrorFromReply, isQmpError,
} from './errors.js';
export type { QmpErrorClass, QemuErrorClass, KumoQmpErrorClass } from './errors.js';
export type {
  QmpEvent, QmpEventMap, QmpEventName, QmpEventOf, QmpEventListener, QmpTimestamp, ShutdownCause,
} from './events.js';
export { silentLogger } from './log.js';
export type { QmpLogger } from './log.js';
export type * from './types.js';
