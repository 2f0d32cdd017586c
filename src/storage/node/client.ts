/**
 * A client of one storage node: one TCP connection, any number of requests in flight (pipelined),
 * replies matched by request id. Objects are the unit: the client splits nothing, the frontend
 * maps volume ranges onto objects (blockmap.splitRange) and calls these per object.
 *
 * The client never reconnects by itself: when the connection ends, every request in flight fails
 * with NodeClosed at once and so does every later one; the owner (the frontend's node pool) decides
 * whether to connect again, because only it knows whether the replica must now be marked
 * out-of-sync first.
 */
import { writeFrame } from '../../core/frames.js';
import { Ending } from '../../core/ending.js';
import { createConnection, type Socket } from 'node:net';
import { NodeClosed, NodeError, NodeProtocolError, NodeTimeout, StorageNodeError } from './errors.js';
import { silentLogger, type NodeLogger } from './log.js';
import { requestError, type DurableOptions, type NodeClient, type NodeCloseInfo, type RequestOptions } from './node-client.js';
import {
  FLAG_FUA, FrameDecoder, NO_OBJECT, Op, REPLY_MAGIC, REQUEST_MAGIC, encodeHeader, opName,
  type CopyReply, type CopyRequest, type Frame, type HelloReply, type HelloRequest, type NodeStatReply,
} from './protocol.js';
import type { ObjectStat } from './store.js';

export type { DurableOptions, NodeCloseInfo, RequestOptions } from './node-client.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const MAX_ABANDONED_IDS = 4096;

export interface StorageNodeConnectOptions {
  host: string;
  port: number;
  token: string;
  /** Default timeout of each request. Default 10 s. */
  timeoutMs?: number;
  /** Bounds connect + HELLO. Default: timeoutMs. */
  connectTimeoutMs?: number;
  /** Names the client in the node's log. */
  client?: string;
  /** Abandons the connection attempt (NodeClosed). */
  signal?: AbortSignal;
  log?: NodeLogger;
}

interface Pending {
  op: Op;
  length: number;
  resolve(frame: Frame): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export class StorageNodeClient implements NodeClient {
  readonly closed: Promise<NodeCloseInfo>;
  /** The node's HELLO reply. */
  hello!: HelloReply;
  private readonly pending = new Map<number, Pending>();
  private readonly abandoned = new Set<number>();
  private readonly decoder = new FrameDecoder(REPLY_MAGIC);
  private nextId = 1;
  private state: 'connecting' | 'ready' | 'closed' = 'connecting';
  private socketError: NodeJS.ErrnoException | undefined;
  private readonly ending: Ending<NodeCloseInfo>;
  private readonly socketGone: Promise<void>;

  private constructor(private readonly socket: Socket, private readonly o: StorageNodeConnectOptions, private readonly log: NodeLogger) {
    this.ending = new Ending((e) => this.log.warn({ node: this.address, err: (e as Error).message }, 'close listener threw'));
    this.closed = this.ending.promise;
    this.socketGone = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => { this.socketError ??= err; });
    socket.on('close', () => this.onSocketClose());
  }

  /** Connects and authenticates; rejects with NodeError(EACCES) on a wrong token, NodeClosed when nobody listens. */
  static async connect(o: StorageNodeConnectOptions): Promise<StorageNodeClient> {
    const log = o.log ?? silentLogger;
    const timeoutMs = o.connectTimeoutMs ?? o.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (o.signal?.aborted) throw new NodeClosed(`connection to ${o.host}:${o.port} aborted`);
    const c = new StorageNodeClient(createConnection({ host: o.host, port: o.port }), o, log);
    const onAbort = () => c.shutdown({ reason: 'local', error: new NodeClosed(`connection to ${c.address} aborted`) });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const hello: HelloRequest = { token: o.token, ...(o.client ? { client: o.client } : {}) };
      // Queued in the socket until it connects; a refused connection rejects it with NodeClosed.
      const reply = await c.request(Op.HELLO, NO_OBJECT, 0, 0, Buffer.from(JSON.stringify(hello)), 0, timeoutMs);
      try {
        c.hello = JSON.parse(reply.payload.toString('utf8')) as HelloReply;
      } catch {
        throw new NodeProtocolError(`${c.address}: HELLO reply is not JSON`, 'HELLO');
      }
      c.state = 'ready';
      log.debug({ node: c.address, hello: c.hello }, 'storage node connected');
      return c;
    } catch (e) {
      c.shutdown({ reason: e instanceof NodeClosed ? 'remote' : 'local', error: e instanceof StorageNodeError ? e : undefined });
      throw e;
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
  }

  get address(): string { return `${this.o.host}:${this.o.port}`; }
  get isOpen(): boolean { return this.state === 'ready'; }
  /** Requests sent and not yet answered. */
  get inflight(): number { return this.pending.size; }
  /** Request bytes not yet handed to the kernel: an owner that streams should wait when this grows. */
  get bufferedBytes(): number { return this.socket.writableLength; }

  /** `length` bytes of the object at `offset` (zeros where nothing was written). */
  async read(objectId: string, offset: number, length: number, opts: RequestOptions = {}): Promise<Buffer> {
    return (await this.call(Op.READ, objectId, offset, length, undefined, 0, opts)).payload;
  }

  async write(objectId: string, offset: number, data: Uint8Array, opts: DurableOptions = {}): Promise<void> {
    await this.call(Op.WRITE, objectId, offset, data.length, data, opts.fua ? FLAG_FUA : 0, opts);
  }

  /** Without an object id: every object this connection wrote (or trimmed, deleted) before; else that object. */
  async flush(objectId?: string, opts: RequestOptions = {}): Promise<void> {
    await this.call(Op.FLUSH, objectId ?? NO_OBJECT, 0, 0, undefined, 0, opts, objectId === undefined);
  }

  /** Deallocates the range; it reads as zeros afterwards. */
  async trim(objectId: string, offset: number, length: number, opts: DurableOptions = {}): Promise<void> {
    await this.call(Op.TRIM, objectId, offset, length, undefined, opts.fua ? FLAG_FUA : 0, opts);
  }

  async delete(objectId: string, opts: DurableOptions = {}): Promise<void> {
    await this.call(Op.DELETE, objectId, 0, 0, undefined, opts.fua ? FLAG_FUA : 0, opts);
  }

  /**
   * Has the node pull `objectId` from another node (`source`), replacing its own copy; answered
   * once the copy is on stable storage. Writes sent on this connection after it land on the copy.
   */
  async copyObject(objectId: string, source: CopyRequest, opts: RequestOptions = {}): Promise<CopyReply> {
    const frame = await this.call(Op.COPY, objectId, 0, 0, Buffer.from(JSON.stringify(source)), 0, opts);
    return JSON.parse(frame.payload.toString('utf8')) as CopyReply;
  }

  async stat(objectId: string, opts: RequestOptions = {}): Promise<ObjectStat> {
    const frame = await this.call(Op.STAT, objectId, 0, 0, undefined, 0, opts);
    return JSON.parse(frame.payload.toString('utf8')) as ObjectStat;
  }

  /** The node's space and state. */
  async nodeStat(opts: RequestOptions = {}): Promise<NodeStatReply> {
    const frame = await this.call(Op.STAT, NO_OBJECT, 0, 0, undefined, 0, opts, true);
    return JSON.parse(frame.payload.toString('utf8')) as NodeStatReply;
  }

  /** Round-trip time in milliseconds of a request the node answers at once (queued behind nothing on the node). */
  async ping(opts: RequestOptions = {}): Promise<number> {
    const t0 = process.hrtime.bigint();
    await this.call(Op.PING, NO_OBJECT, 0, 0, undefined, 0, opts, true);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }

  /** Called once when the connection ends, whatever the cause; at once (async) if it already has. */
  onClose(listener: (info: NodeCloseInfo) => void): () => void {
    return this.ending.on(listener);
  }

  /** Hangs up; requests in flight fail with NodeClosed (the node may still carry them out). */
  async close(): Promise<void> {
    this.shutdown({ reason: 'local' });
    await this.socketGone;
  }

  // --- wire ---------------------------------------------------------------------------------

  private call(op: Op, objectId: string, offset: number, length: number, payload: Uint8Array | undefined, flags: number,
    opts: RequestOptions, noObject = false): Promise<Frame> {
    const name = opName(op);
    if (this.state !== 'ready') return Promise.reject(this.closedError(name));
    const bad = requestError(name, objectId, offset, length, noObject);
    if (bad) return Promise.reject(bad);
    return this.request(op, objectId, offset, length, payload, flags, opts.timeoutMs ?? this.o.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
  }

  private request(op: Op, objectId: string, offset: number, length: number, payload: Uint8Array | undefined, flags: number, timeoutMs: number): Promise<Frame> {
    let id = this.nextId;
    while (this.pending.has(id) || id === 0) id = (id + 1) >>> 0;
    this.nextId = (id + 1) >>> 0;
    const header = encodeHeader({
      magic: REQUEST_MAGIC, op, flags, requestId: id, payloadLength: payload?.length ?? 0, objectId, offset, length, status: 0,
    });
    return new Promise<Frame>((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => this.expire(id, timeoutMs), timeoutMs) : undefined;
      this.pending.set(id, { op, length, resolve, reject, timer });
      // A failed write surfaces as 'error' + 'close', which rejects this request.
      writeFrame(this.socket, header, payload);
    });
  }

  private expire(id: number, timeoutMs: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.abandoned.add(id);
    if (this.abandoned.size > MAX_ABANDONED_IDS) this.abandoned.delete(this.abandoned.values().next().value as number);
    p.reject(new NodeTimeout(`no reply from ${this.address} within ${timeoutMs} ms`, opName(p.op), timeoutMs, true));
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.protocolError((e as Error).message);
      return;
    }
    for (const f of frames) {
      if (this.state === 'closed') return;
      this.onReply(f);
    }
    if (this.decoder.failure) this.protocolError(this.decoder.failure.message);
  }

  private onReply(f: Frame): void {
    const { requestId: id, op, status } = f.header;
    const p = this.pending.get(id);
    if (!p) {
      if (this.abandoned.delete(id)) this.log.debug({ node: this.address, id, op: opName(op) }, 'late reply to a timed-out request dropped');
      else this.protocolError(`reply to unknown request ${id} (${opName(op)})`);
      return;
    }
    if (op !== p.op) {
      this.protocolError(`reply ${id} is for ${opName(op)}, the request was ${opName(p.op)}`);
      return;
    }
    if (status === 0 && op === Op.READ && f.payload.length !== p.length) {
      this.protocolError(`READ ${id} answered with ${f.payload.length} bytes, ${p.length} asked`);
      return;
    }
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (status !== 0) p.reject(new NodeError(status, f.payload.toString('utf8'), opName(op)));
    else p.resolve(f);
  }

  // --- lifecycle ----------------------------------------------------------------------------

  private protocolError(desc: string): void {
    this.log.warn({ node: this.address, desc }, 'storage node protocol error, closing the connection');
    this.shutdown({ reason: 'protocol', error: new NodeProtocolError(`${this.address}: ${desc}`) });
  }

  private onSocketClose(): void {
    if (this.state === 'closed') return;
    const err = this.socketError;
    const desc = err
      ? `${this.state === 'connecting' ? 'cannot connect to' : 'lost connection to'} ${this.address}: ${err.code ?? err.message}`
      : `${this.address} closed the connection${this.decoder.buffered ? ' in the middle of a reply' : ''}`;
    this.shutdown({ reason: 'remote', error: new NodeClosed(desc, undefined, { cause: err, code: err?.code }) });
  }

  /** Idempotent: fails everything outstanding and tells the close listeners, once. */
  private shutdown(info: NodeCloseInfo): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.destroy();
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.reject(this.closedError(opName(p.op), info));
    }
    this.ending.end(info);
  }

  /** The error for anything attempted on, or cut off by, a closed connection, naming why it closed. */
  private closedError(op?: string, info = this.ending.info): StorageNodeError {
    const why = info?.error;
    if (why instanceof NodeProtocolError) return new NodeProtocolError(why.desc, op);
    if (why instanceof NodeClosed) return new NodeClosed(why.desc, op, { cause: why.cause, code: why.code });
    if (info?.reason === 'local') return new NodeClosed(`connection to ${this.address} was closed`, op);
    return new NodeClosed(`not connected to ${this.address}`, op, { cause: why });
  }
}
