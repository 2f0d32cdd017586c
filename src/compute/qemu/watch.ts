/**
 * Notices that a VM's QEMU has ended and says why. Two sources, either suffices: the QMP
 * connection closing (instant, but only while a monitor is attached) and a poll of the pid (every
 * second; catches everything, also with no monitor). The reason comes from the last SHUTDOWN event
 * QEMU sent before it went: a guest that powered itself off is a 'shutdown'; anything else — a
 * kill -9, a QEMU crash, a guest panic, someone else's `quit` — is a 'crash'. (Exits the driver
 * asked for are filtered out by the driver, which knows when it is stopping a VM.)
 */
import type { QmpMonitor } from './qmp/index.js';
import type { ShutdownCause } from './qmp/index.js';
import { isQemuFor } from './process.js';

export type ExitReason = 'shutdown' | 'crash';
export interface ExitInfo { reason: ExitReason; shutdown: { guest: boolean; reason: ShutdownCause } | null }

/** After QMP closed, how long and how often to look for the process to be gone. */
const FAST_POLL_MS = 50;
const FAST_POLL_FOR_MS = 5000;

export function exitReason(shutdown: ExitInfo['shutdown']): ExitReason {
  if (!shutdown) return 'crash';
  if (shutdown.reason === 'guest-shutdown') return 'shutdown';
  return shutdown.guest && shutdown.reason !== 'guest-panic' ? 'shutdown' : 'crash';
}

export class ExitWatcher {
  readonly exited: Promise<ExitInfo>;
  private resolveExited!: (info: ExitInfo) => void;
  private done = false;
  private shutdown: ExitInfo['shutdown'] = null;
  private readonly timer: NodeJS.Timeout;
  private fastTimer: NodeJS.Timeout | undefined;
  private readonly offs: (() => void)[] = [];

  constructor(readonly pid: number, private readonly pidfile: string, pollMs = 1000) {
    this.exited = new Promise((resolve) => { this.resolveExited = resolve; });
    this.timer = setInterval(() => this.check(), pollMs);
    this.timer.unref();
  }

  get hasExited(): boolean {
    return this.done;
  }

  /** Follows a (new) monitor of this QEMU: its SHUTDOWN events and its end. */
  attachMonitor(mon: QmpMonitor): void {
    this.offs.push(mon.on('SHUTDOWN', (ev) => { this.shutdown = { guest: ev.data.guest, reason: ev.data.reason }; }));
    this.offs.push(mon.onClose((info) => { if (info.reason !== 'local') this.pollFast(); }));
  }

  /** Checks now; true if the process is gone (and `exited` resolved). */
  check(): boolean {
    if (this.done) return true;
    if (isQemuFor(this.pid, this.pidfile)) return false;
    this.done = true;
    this.dispose();
    this.resolveExited({ reason: exitReason(this.shutdown), shutdown: this.shutdown });
    return true;
  }

  private pollFast(): void {
    if (this.fastTimer || this.done) return;
    const until = Date.now() + FAST_POLL_FOR_MS;
    this.fastTimer = setInterval(() => {
      if (this.check() || Date.now() > until) {
        clearInterval(this.fastTimer);
        this.fastTimer = undefined;
      }
    }, FAST_POLL_MS);
  }

  /** Stops watching (exited stays pending if the process still runs). */
  dispose(): void {
    clearInterval(this.timer);
    if (this.fastTimer) clearInterval(this.fastTimer);
    this.fastTimer = undefined;
    for (const off of this.offs.splice(0)) off();
  }
}
