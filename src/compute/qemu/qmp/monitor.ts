/**
 * One QMP connection to one QEMU: handshake, commands matched to replies by id, events to
 * listeners, and a `closed` promise so the driver learns that QEMU went away.
 *
 * kumo does not enable the `oob` capability. Without it QEMU executes commands strictly in arrival
 * order, one at a time, which is what a driver wants (a `stop` never overtakes an earlier
 * `migrate-set-parameters`). Callers may still issue commands concurrently: they queue here and go
 * out one at a time, the next once the previous one is answered or has timed out. Pipelining
 * would gain nothing (QEMU does not overlap them) and costs a lost message: when QEMU exits (quit,
 * guest poweroff) a write racing the exit fails with EPIPE and Node then destroys the socket with
 * QEMU's last lines — SHUTDOWN, quit's reply — still unread. Ids are still sent so a late reply
 * to a timed-out command is recognised and dropped instead of being taken for the next one's.
 *
 * QEMU's `-qmp unix:…,server=on` chardev serves one client at a time: a second client's connect()
 * succeeds (the kernel queues it) but the greeting only comes once the first client leaves. A
 * handshake timeout therefore often means "someone else holds the monitor", and the message says so.
 */
import { Ending } from '../../../core/ending.js';
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  QmpClosed, QmpError, QmpProtocolError, QmpTimeout, qmpErrorFromReply,
} from './errors.js';
import type { QmpEvent, QmpEventListener, QmpEventOf, QmpTimestamp } from './events.js';
import { LineDecoder } from './framing.js';
import { clip, redactArgs, silentLogger, type QmpLogger } from './log.js';
import type { QmpGreeting, QmpVersionTriple } from './types.js';

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Errors meaning "QEMU is not listening yet": worth another attempt while it starts. */
const RETRYABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

/** Ids of timed-out commands are kept to tell a late reply from a stray one; this bounds them. */
const MAX_ABANDONED_IDS = 1024;

export interface QmpConnectOptions {
  /** Bounds each handshake attempt (connect, greeting, qmp_capabilities) and is the default command timeout. */
  timeoutMs?: number;
  /** Retry while the socket is missing or refuses connections, i.e. while QEMU is still starting. */
  retry?: { attempts: number; delayMs: number };
  /** Stops the retries, e.g. when the QEMU process being waited for has already exited. */
  signal?: AbortSignal;
  log?: QmpLogger;
}

export interface ExecuteOptions {
  /** Milliseconds; `Infinity` waits for as long as the connection lives. */
  timeoutMs?: number;
}

/** The one method the typed command wrappers need, so they run over fakes too. */
export interface QmpExecutor {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: ExecuteOptions): Promise<T>;
}

export interface QmpCloseInfo {
  /** `local`: close() was called; `remote`: QEMU closed or died; `protocol`: kumo hung up on garbage. */
  reason: 'local' | 'remote' | 'protocol';
  error?: QmpError;
}

export interface WaitForEventOptions<E> {
  timeoutMs?: number;
  predicate?: (event: E) => boolean;
  signal?: AbortSignal;
}

interface Pending {
  command: string;
  /** The serialized request while it waits its turn; undefined once written. */
  line: string | undefined;
  args: Record<string, unknown> | undefined;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

type State = 'greeting' | 'negotiating' | 'ready' | 'closed';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export class QmpMonitor implements QmpExecutor {
  /** Set once the greeting arrived; connect() never hands out a monitor without it. */
  greeting!: QmpGreeting;
  readonly closed: Promise<QmpCloseInfo>;

  private state: State = 'greeting';
  private nextId = 1;
  /** In id order, which is send order: the first entry not yet written is the next to go. */
  private readonly pending = new Map<number, Pending>();
  /** The command QEMU is working on, if any; nothing else is written until it is settled. */
  private onWire: number | undefined;
  private readonly abandoned = new Set<number>();
  private readonly listeners = new Map<string, Set<QmpEventListener>>();
  private readonly decoder = new LineDecoder();
  private socketError: NodeJS.ErrnoException | undefined;
  private readonly ending: Ending<QmpCloseInfo>;
  private readonly socketGone: Promise<void>;
  private greetingWaiter: { resolve(): void; reject(e: Error): void } | undefined;

  private constructor(
    readonly socketPath: string,
    private readonly socket: Socket,
    private readonly defaultTimeoutMs: number,
    private readonly log: QmpLogger,
  ) {
    this.ending = new Ending((err) => this.log.warn({ qmp: this.socketPath, err }, 'QMP close listener threw'));
    this.closed = this.ending.promise;
    this.socketGone = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => { this.socketError ??= err; });
    socket.on('close', () => this.onSocketClose());
  }

  /** Connects, reads the greeting, negotiates capabilities; resolves when commands may be sent. */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpMonitor> {
    const attempts = Math.max(1, opts.retry?.attempts ?? 1);
    const log = opts.log ?? silentLogger;
    for (let attempt = 1; ; attempt++) {
      opts.signal?.throwIfAborted();
      try {
        return await QmpMonitor.connectOnce(socketPath, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, log);
      } catch (err) {
        const retryable = err instanceof QmpClosed && err.code !== undefined && RETRYABLE_CODES.has(err.code);
        if (!retryable || attempt >= attempts) throw err;
        log.debug({ qmp: socketPath, attempt, code: (err as QmpClosed).code }, 'QMP socket not ready, retrying');
        try {
          await sleep(opts.retry?.delayMs ?? 100, undefined, { signal: opts.signal });
        } catch (sleepErr) {
          // timers/promises rejects with a generic AbortError; the caller's reason says more.
          opts.signal?.throwIfAborted();
          throw sleepErr;
        }
      }
    }
  }

  private static async connectOnce(socketPath: string, timeoutMs: number, log: QmpLogger): Promise<QmpMonitor> {
    const mon = new QmpMonitor(socketPath, createConnection(socketPath), timeoutMs, log);
    const deadline = Date.now() + timeoutMs;
    try {
      await mon.withDeadline(mon.greetingReceived(), timeoutMs,
        `no QMP greeting within ${timeoutMs} ms (is another client connected to this monitor?)`);
      mon.state = 'negotiating';
      await mon.send('qmp_capabilities', undefined, Math.max(1, deadline - Date.now()));
      mon.state = 'ready';
      log.debug({ qmp: socketPath, version: mon.version }, 'QMP ready');
      return mon;
    } catch (err) {
      const error = err instanceof QmpError ? err : new QmpProtocolError(String(err));
      mon.shutdown({ reason: error instanceof QmpClosed ? 'remote' : 'local', error });
      throw error;
    }
  }

  get version(): QmpVersionTriple & { package: string } {
    return { ...this.greeting.version.qemu, package: this.greeting.version.package };
  }

  get isOpen(): boolean {
    return this.state !== 'closed';
  }

  /**
   * Runs one command. A QEMU error rejects with the QmpError subclass of its class; no reply in
   * time rejects with QmpTimeout (QEMU may still carry the command out); a lost connection
   * rejects with QmpClosed.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: ExecuteOptions = {}): Promise<T> {
    if (this.state !== 'ready') {
      return Promise.reject(this.closedError(command));
    }
    return this.send(command, args, opts.timeoutMs ?? this.defaultTimeoutMs) as Promise<T>;
  }

  /**
   * Subscribes to one event name, or to all with '*'. Listeners run synchronously in wire order,
   * before the reply of the command that caused the event resolves.
   */
  on<K extends string>(event: K, listener: QmpEventListener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as QmpEventListener;
    set.add(l);
    return () => { set.delete(l); };
  }

  /**
   * Resolves with the next matching event. Call it before the command that triggers the event:
   * QEMU sends STOP, SHUTDOWN and friends before the command's own reply.
   */
  waitForEvent<K extends string>(event: K, opts: WaitForEventOptions<QmpEventOf<K>> = {}): Promise<QmpEventOf<K>> {
    if (this.state === 'closed') return Promise.reject(this.closedError(`waiting for ${event}`));
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        offEvent();
        offClose();
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const offEvent = this.on(event, (ev) => {
        let match: boolean;
        try {
          match = opts.predicate ? opts.predicate(ev) : true;
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (match) { cleanup(); resolve(ev); }
      });
      const offClose = this.onClose(() => { cleanup(); reject(this.closedError(`waiting for ${event}`)); });
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
          cleanup();
          reject(new QmpTimeout(`no ${event} event within ${timeoutMs} ms`, undefined, timeoutMs));
        }, timeoutMs)
        : undefined;
      const onAbort = () => { cleanup(); reject(opts.signal?.reason); };
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Called once when the connection ends, whatever the cause; at once (async) if it already has. */
  onClose(listener: (info: QmpCloseInfo) => void): () => void {
    return this.ending.on(listener);
  }

  /**
   * Hangs up without touching QEMU: the chardev goes back to listening, so the next connect()
   * (another agent, or this one after a restart) gets a fresh greeting.
   */
  async close(): Promise<void> {
    this.shutdown({ reason: 'local' });
    await this.socketGone;
  }

  // --- wire ---------------------------------------------------------------------------------

  private send(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    const line = `${JSON.stringify(msg)}\n`;
    return new Promise((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => this.expire(id, timeoutMs), timeoutMs)
        : undefined;
      this.pending.set(id, { command, line, args, resolve, reject, timer });
      this.pump();
    });
  }

  /** Writes the oldest queued command if QEMU is not busy with another. */
  private pump(): void {
    if (this.onWire !== undefined || this.state === 'closed') return;
    for (const [id, p] of this.pending) {
      if (p.line === undefined) continue; // defensive: only the command on the wire is written
      const line = p.line;
      p.line = undefined;
      this.onWire = id;
      this.log.debug({ qmp: this.socketPath, id, command: p.command, arguments: redactArgs(p.command, p.args) }, 'QMP ->');
      // A failed write also surfaces as 'error' + 'close', which rejects this command.
      this.socket.write(line);
      return;
    }
  }

  private expire(id: number, timeoutMs: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    const written = p.line === undefined;
    if (written) {
      this.abandoned.add(id);
      if (this.abandoned.size > MAX_ABANDONED_IDS) this.abandoned.delete(this.abandoned.values().next().value as number);
    }
    // QEMU may stay busy with it, but waiting longer would only stall every later command here.
    if (this.onWire === id) this.onWire = undefined;
    const desc = written
      ? `no reply within ${timeoutMs} ms`
      : `not sent within ${timeoutMs} ms: QEMU was still busy with an earlier command`;
    p.reject(new QmpTimeout(desc, p.command, timeoutMs, written));
    this.pump();
  }

  private onData(chunk: Buffer): void {
    let lines: string[];
    try {
      lines = this.decoder.push(chunk);
    } catch (err) {
      this.protocolError((err as Error).message);
      return;
    }
    for (const line of lines) {
      if (this.state === 'closed') return;
      this.log.debug({ qmp: this.socketPath }, `QMP <- ${clip(line)}`);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        this.protocolError(`not JSON: ${clip(line)}`);
        return;
      }
      if (!isObject(msg)) {
        this.protocolError(`not a JSON object: ${clip(line)}`);
        return;
      }
      this.onMessage(msg);
    }
  }

  private onMessage(msg: Json): void {
    if (this.state === 'greeting') {
      const qmp = msg.QMP;
      if (!isObject(qmp) || !isObject(qmp.version) || !isObject(qmp.version.qemu)) {
        this.protocolError(`expected the QMP greeting, got ${clip(JSON.stringify(msg))}`);
        return;
      }
      this.greeting = {
        version: qmp.version as unknown as QmpGreeting['version'],
        capabilities: Array.isArray(qmp.capabilities) ? qmp.capabilities.map(String) : [],
      };
      this.greetingWaiter?.resolve();
      return;
    }
    if (typeof msg.event === 'string') {
      this.dispatch({
        event: msg.event,
        data: isObject(msg.data) ? msg.data : {},
        timestamp: toTimestamp(msg.timestamp),
      });
      return;
    }
    if ('return' in msg || 'error' in msg) {
      this.onReply(msg);
      return;
    }
    // The spec asks clients to ignore what they do not understand; a newer QEMU may send more.
    this.log.warn({ qmp: this.socketPath, message: clip(JSON.stringify(msg)) }, 'QMP message of unknown shape ignored');
  }

  private onReply(msg: Json): void {
    const id = msg.id;
    if (id === undefined) {
      // QEMU answers without id only when it could not parse a request, which JSON.stringify
      // output never causes; with no id it cannot be tied to a command, which will time out.
      this.log.warn({ qmp: this.socketPath, error: msg.error }, 'QMP reply without id ignored');
      return;
    }
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!p) {
      if (typeof id === 'number' && this.abandoned.delete(id)) {
        this.log.debug({ qmp: this.socketPath, id }, 'late QMP reply to a timed-out command dropped');
      } else {
        this.log.warn({ qmp: this.socketPath, id }, 'QMP reply with unknown id dropped');
      }
      return;
    }
    this.pending.delete(id as number);
    if (p.timer) clearTimeout(p.timer);
    if (this.onWire === id) this.onWire = undefined;
    if ('error' in msg) p.reject(qmpErrorFromReply(p.command, isObject(msg.error) ? msg.error : {}));
    else p.resolve(msg.return);
    this.pump();
  }

  private dispatch(ev: QmpEvent): void {
    const targets = [...(this.listeners.get(ev.event) ?? []), ...(this.listeners.get('*') ?? [])];
    for (const listener of targets) {
      try {
        listener(ev);
      } catch (err) {
        // One faulty listener must not starve the others or kill the reader.
        this.log.warn({ qmp: this.socketPath, event: ev.event, err }, 'QMP event listener threw');
      }
    }
  }

  // --- lifecycle ----------------------------------------------------------------------------

  private greetingReceived(): Promise<void> {
    if (this.state === 'closed') return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => { this.greetingWaiter = { resolve, reject }; });
  }

  private withDeadline<T>(p: Promise<T>, timeoutMs: number, desc: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QmpTimeout(desc, undefined, timeoutMs)), timeoutMs);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  private protocolError(desc: string): void {
    this.log.warn({ qmp: this.socketPath, desc }, 'QMP protocol error, closing the connection');
    this.shutdown({ reason: 'protocol', error: new QmpProtocolError(desc) });
  }

  private onSocketClose(): void {
    if (this.decoder.remainder.trim() !== '') {
      this.log.debug({ qmp: this.socketPath, partial: clip(this.decoder.remainder) }, 'QMP connection ended mid-message');
    }
    if (this.state === 'closed') return;
    const err = this.socketError;
    const error = new QmpClosed(
      err
        ? `${this.state === 'greeting' ? 'cannot connect to' : 'lost connection to'} ${this.socketPath}: ${err.code ?? err.message}`
        : `QEMU closed ${this.socketPath}`,
      undefined, { cause: err, code: err?.code },
    );
    this.shutdown({ reason: 'remote', error });
  }

  /** Idempotent: rejects everything outstanding and tells the close listeners, once. */
  private shutdown(info: QmpCloseInfo): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.destroy();
    this.greetingWaiter?.reject(info.error ?? this.closedError(undefined, info));
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.reject(this.closedError(p.command, info));
    }
    this.ending.end(info);
  }

  /** The error for anything attempted on or cut off by a closed connection, naming why it closed. */
  private closedError(command?: string, info = this.ending.info): QmpError {
    const why = info?.error;
    if (why instanceof QmpProtocolError) return new QmpProtocolError(why.desc, command);
    if (why instanceof QmpClosed) return new QmpClosed(why.desc, command, { cause: why.cause, code: why.code });
    if (info?.reason === 'local') return new QmpClosed(`monitor ${this.socketPath} was closed`, command);
    return new QmpClosed(`monitor ${this.socketPath} is not connected`, command, { cause: why });
  }
}

function toTimestamp(v: unknown): QmpTimestamp {
  if (isObject(v) && typeof v.seconds === 'number' && typeof v.microseconds === 'number') {
    return { seconds: v.seconds, microseconds: v.microseconds };
  }
  return { seconds: -1, microseconds: -1 };
}
