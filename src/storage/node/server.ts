/**
 * The storage node's block service: the ObjectStore served over the binary protocol (protocol.ts)
 * on TCP. Each connection authenticates with the node token, then pipelines requests; each frame
 * is handed to the store the moment it is parsed, so requests on one object run in arrival order
 * while requests on different objects overlap, and replies go out as they complete.
 *
 * Durability: a WRITE (or TRIM, DELETE) with FUA is answered after the fdatasync of that object; a
 * FLUSH after the fdatasync of every object this connection wrote, trimmed or deleted before the
 * FLUSH arrived — also those still in flight, since the FLUSH queues behind them on each object.
 *
 * A connection that sends garbage is dropped; the others go on. One that sends faster than the
 * disk keeps up is paused (too many requests in flight, or too many reply bytes unsent).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { NodeOpError, errnoNumber, errorReply } from './errors.js';
import { StorageNodeClient } from './client.js';
import { silentLogger, type NodeLogger } from './log.js';
import {
  FLAG_FUA, FrameDecoder, MAX_PAYLOAD, NO_OBJECT, Op, PROTOCOL_VERSION, REPLY_MAGIC, REQUEST_MAGIC,
  encodeHeader, opName, type CopyReply, type CopyRequest, type Frame, type FrameHeader, type HelloReply, type HelloRequest, type NodeStatReply,
} from './protocol.js';
import { ObjectStore, type ObjectStoreOptions, type SourceReader } from './store.js';

export interface StorageNodeServerOptions {
  /** The node's data directory (objects live in `<dir>/objects`). */
  dir: string;
  /** The shared node token every client must present in HELLO. */
  token: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Reported in HELLO and STAT replies once known (the controller assigns it). */
  nodeId?: string;
  log?: NodeLogger;
  store?: Omit<ObjectStoreOptions, 'log'>;
  /** A connection must authenticate within this. Default 10 s. */
  helloTimeoutMs?: number;
  /** Requests in flight per connection before it stops being read. Default 4096. */
  maxInflight?: number;
  /** Unsent reply bytes per connection before it stops being read. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Per-read timeout when pulling a COPY from another node. Default 30 s. */
  copyTimeoutMs?: number;
}

export class StorageNodeServer {
  readonly store: ObjectStore;
  private server: Server | null = null;
  private readonly conns = new Set<Connection>();
  private readonly peers = new Map<string, Promise<StorageNodeClient>>();
  private token: string;
  private readonly stopping = new AbortController();
  /** In-process clients (in-process.ts): told when the node stops, as network clients see their connection drop. */
  private readonly stopListeners = new Set<() => void>();
  nodeId: string | undefined;
  host = '';
  port = 0;
  readonly log: NodeLogger;

  constructor(readonly o: StorageNodeServerOptions) {
    this.log = o.log ?? silentLogger;
    this.store = new ObjectStore(o.dir, { ...o.store, log: this.log });
    this.token = o.token;
    this.nodeId = o.nodeId;
  }

  /** Opens the store and listens; resolves with the address actually bound. */
  async start(): Promise<{ host: string; port: number }> {
    await this.store.open();
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.o.host ?? '127.0.0.1', port: this.o.port ?? 0 }, () => { server.off('error', reject); resolve(); });
    });
    const addr = server.address();
    this.host = typeof addr === 'object' && addr ? addr.address : this.o.host ?? '127.0.0.1';
    this.port = typeof addr === 'object' && addr ? addr.port : this.o.port ?? 0;
    this.log.info({ dir: this.o.dir, host: this.host, port: this.port, punchesHoles: this.store.punchesHoles }, 'storage node listening');
    return { host: this.host, port: this.port };
  }

  /** A new token (e.g. issued at registration) applies to connections made from now on. */
  setToken(token: string): void { this.token = token; }

  get connections(): number { return this.conns.size; }

  /** Started and not stopped: requests may reach the store. */
  get running(): boolean { return this.server !== null; }

  /** `listener` runs once when stop() begins; returns its removal. */
  onStop(listener: () => void): () => void {
    this.stopListeners.add(listener);
    return () => { this.stopListeners.delete(listener); };
  }

  /** Stops listening, drops every connection, waits for the store's operations, closes its files. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const l of [...this.stopListeners]) l();
    this.stopListeners.clear();
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const c of this.conns) c.destroy();
    this.stopping.abort();
    await Promise.all([...this.peers.values()].map(async (p) => (await p.catch(() => null))?.close()));
    this.peers.clear();
    await closed;
    await this.store.close();
  }

  checkToken(got: string): boolean {
    const a = Buffer.from(got);
    const b = Buffer.from(this.token);
    return this.token !== '' && a.length === b.length && timingSafeEqual(a, b);
  }

  helloReply(): HelloReply {
    return {
      server: 'kumo-storage-node', version: PROTOCOL_VERSION, maxPayload: MAX_PAYLOAD, maxObjectBytes: this.store.maxObjectBytes,
      ...(this.nodeId ? { nodeId: this.nodeId } : {}),
    };
  }

  async nodeStat(): Promise<NodeStatReply> {
    return {
      ...(this.nodeId ? { nodeId: this.nodeId } : {}), ...(await this.store.space()),
      dirtyObjects: this.store.dirtyObjects, connections: this.conns.size, punchesHoles: this.store.punchesHoles,
    };
  }

  /**
   * COPY: replaces the object with the one on the node `req` names, pulled over TCP. Takes its
   * place in the object's FIFO at the call (writes called after it land on the copy). Network and
   * in-process clients both come here.
   */
  copyObject(objectId: string, req: CopyRequest): Promise<CopyReply> {
    return this.store.copyFrom(objectId, () => this.sourceReader(objectId, req));
  }

  /** The errno name and message of a failed request, logged unless it is the client's own mistake. */
  requestFailed(e: unknown, op: string, objectId: string, peer: string, client: string): [string, string] {
    const [code, message] = errorReply(e);
    if (code !== 'EINVAL' && code !== 'EOPNOTSUPP') this.log.warn({ peer, client, op, objectId, code, err: message }, 'storage request failed');
    return [code, message];
  }

  /** A source reader over another node, on a connection kept for later copies from it. */
  async sourceReader(objectId: string, req: CopyRequest): Promise<SourceReader> {
    if (typeof req.host !== 'string' || !Number.isInteger(req.port)) throw new NodeOpError('EINVAL', 'COPY needs {host, port} of the source node');
    const token = req.token ?? this.token;
    const key = JSON.stringify([req.host, req.port, token]);
    let p = this.peers.get(key);
    const live = p && await p.then((c) => c.isOpen, () => false);
    if (!p || !live) {
      p = StorageNodeClient.connect({
        host: req.host, port: req.port, token, client: `copy to ${this.nodeId ?? `${this.host}:${this.port}`}`, log: this.log, signal: this.stopping.signal,
      });
      this.peers.set(key, p);
      p.catch(() => { if (this.peers.get(key) === p) this.peers.delete(key); });
    }
    const client = await p;
    const timeoutMs = req.timeoutMs ?? this.o.copyTimeoutMs ?? 30_000;
    const st = await client.stat(objectId, { timeoutMs });
    return { size: st.size, read: (offset, length) => client.read(objectId, offset, length, { timeoutMs }) };
  }

  private accept(socket: Socket): void {
    const conn = new Connection(this, socket);
    this.conns.add(conn);
    socket.once('close', () => this.conns.delete(conn));
  }
}

/** One client connection: authentication, frame dispatch, replies, back-pressure. */
class Connection {
  private readonly decoder = new FrameDecoder(REQUEST_MAGIC);
  private authed = false;
  private ending = false;
  private inflight = 0;
  private paused = false;
  /** Objects written, trimmed or deleted since this connection's last FLUSH. */
  private readonly touched = new Set<string>();
  private readonly helloTimer: NodeJS.Timeout;
  private readonly peer: string;
  private client = '';

  constructor(private readonly srv: StorageNodeServer, private readonly socket: Socket) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => srv.log.debug({ peer: this.peer, err: err.code ?? err.message }, 'storage connection error'));
    socket.on('drain', () => this.maybeResume());
    this.helloTimer = setTimeout(() => {
      srv.log.warn({ peer: this.peer }, 'no HELLO in time, dropping the connection');
      this.destroy();
    }, srv.o.helloTimeoutMs ?? 10_000);
    this.helloTimer.unref();
    socket.once('close', () => clearTimeout(this.helloTimer));
  }

  destroy(): void { this.socket.destroy(); }

  private onData(chunk: Buffer): void {
    if (this.ending) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.srv.log.warn({ peer: this.peer, client: this.client, err: (e as Error).message }, 'protocol error, dropping the connection');
      this.hangUp();
      return;
    }
    for (const f of frames) {
      if (this.ending || this.socket.destroyed) return;
      this.dispatch(f);
    }
    if (this.decoder.failure) {
      this.srv.log.warn({ peer: this.peer, client: this.client, err: this.decoder.failure.message }, 'protocol error, dropping the connection');
      // The replies to the good frames before the garbage go out first.
      this.hangUp();
    }
  }

  private dispatch({ header: h, payload }: Frame): void {
    if (h.version !== PROTOCOL_VERSION) {
      this.fail(h, 'EPROTONOSUPPORT', `protocol version ${h.version} is not supported (this node speaks ${PROTOCOL_VERSION})`, true);
      return;
    }
    if (!this.authed) {
      this.hello(h, payload);
      return;
    }
    const fua = (h.flags & FLAG_FUA) !== 0;
    const store = this.srv.store;
    // Every store call below enqueues on its object synchronously: frame order is execution order per object.
    try {
      if (h.objectId === NO_OBJECT && DATA_OPS.has(h.op)) throw new NodeOpError('EINVAL', `${opName(h.op)} needs an object id`);
      switch (h.op) {
        case Op.READ:
          this.track(h, store.read(h.objectId, h.offset, h.length));
          return;
        case Op.WRITE:
          if (h.length !== payload.length) throw new NodeOpError('EINVAL', `WRITE length ${h.length} but ${payload.length} payload bytes`);
          this.track(h, store.write(h.objectId, h.offset, payload, fua), !fua);
          return;
        case Op.FLUSH:
          this.flush(h);
          return;
        case Op.TRIM:
          this.track(h, store.trim(h.objectId, h.offset, h.length, fua), !fua);
          return;
        case Op.DELETE:
          this.track(h, store.delete(h.objectId, fua), !fua);
          return;
        case Op.COPY: {
          const req = parseJson<CopyRequest>(payload, 'COPY');
          this.track(h, this.srv.copyObject(h.objectId, req));
          return;
        }
        case Op.STAT:
          this.track(h, h.objectId === NO_OBJECT ? this.srv.nodeStat() : store.stat(h.objectId));
          return;
        case Op.PING:
          this.reply(h, payload);
          return;
        case Op.HELLO:
          throw new NodeOpError('EINVAL', 'already authenticated');
        default:
          throw new NodeOpError('EOPNOTSUPP', `unknown opcode ${h.op}`);
      }
    } catch (e) {
      this.failWith(h, e);
    }
  }

  private hello(h: FrameHeader, payload: Buffer): void {
    if (h.op !== Op.HELLO) {
      this.fail(h, 'EACCES', `${opName(h.op)} before HELLO`, true);
      return;
    }
    let req: HelloRequest;
    try { req = parseJson<HelloRequest>(payload, 'HELLO'); } catch (e) {
      this.fail(h, 'EACCES', (e as Error).message, true);
      return;
    }
    if (typeof req.token !== 'string' || !this.srv.checkToken(req.token)) {
      this.srv.log.warn({ peer: this.peer, client: req.client }, 'bad node token, dropping the connection');
      this.fail(h, 'EACCES', 'bad node token', true);
      return;
    }
    clearTimeout(this.helloTimer);
    this.authed = true;
    this.client = typeof req.client === 'string' ? req.client.slice(0, 200) : '';
    this.srv.log.debug({ peer: this.peer, client: this.client }, 'storage client authenticated');
    this.reply(h, Buffer.from(JSON.stringify(this.srv.helloReply())));
  }

  private flush(h: FrameHeader): void {
    const ids = h.objectId === NO_OBJECT ? [...this.touched] : [h.objectId];
    if (h.objectId === NO_OBJECT) this.touched.clear();
    else this.touched.delete(h.objectId);
    // A failed flush leaves the objects owed: the next FLUSH tries them again.
    this.track(h, this.srv.store.flush(ids).catch((e: unknown) => {
      for (const id of ids) this.touched.add(id);
      throw e;
    }));
  }

  /** Replies when `p` settles; `touches` records the object for this connection's next FLUSH. */
  private track(h: FrameHeader, p: Promise<unknown>, touches = false): void {
    if (touches) this.touched.add(h.objectId);
    this.inflight++;
    if (this.inflight >= (this.srv.o.maxInflight ?? 4096)) this.pause();
    p.then(
      (v) => this.reply(h, Buffer.isBuffer(v) ? v : v === undefined ? undefined : Buffer.from(JSON.stringify(v))),
      (e: unknown) => this.failWith(h, e),
    ).finally(() => {
      this.inflight--;
      if (this.ending) { if (this.inflight === 0) this.socket.end(); } else this.maybeResume();
    });
  }

  private reply(h: FrameHeader, payload?: Buffer, status = 0): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    const len = payload?.length ?? 0;
    const header = encodeHeader({ ...h, magic: REPLY_MAGIC, payloadLength: len, status });
    if (len > 0) {
      this.socket.cork();
      this.socket.write(header);
      this.socket.write(payload!);
      this.socket.uncork();
    } else {
      this.socket.write(header);
    }
    if (this.socket.writableLength > (this.srv.o.maxQueuedBytes ?? 64 * 1024 * 1024)) this.pause();
  }

  private failWith(h: FrameHeader, e: unknown): void {
    const [code, message] = this.srv.requestFailed(e, opName(h.op), h.objectId, this.peer, this.client);
    this.fail(h, code, message, false);
  }

  /** An error reply; with `hangUp`, nothing more is read and the connection ends after it. */
  private fail(h: FrameHeader, code: string, message: string, hangUp: boolean): void {
    this.reply({ ...h, version: PROTOCOL_VERSION }, Buffer.from(message.slice(0, 4000)), errnoNumber(code));
    if (hangUp) this.hangUp();
  }

  /** Reads nothing more; ends the connection once the requests under way are answered. */
  private hangUp(): void {
    if (this.ending) return;
    this.ending = true;
    this.socket.pause();
    if (this.inflight === 0) this.socket.end();
    // A peer that never reads (or a request that never ends) must not keep the socket forever.
    setTimeout(() => this.destroy(), 5000).unref();
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private maybeResume(): void {
    if (!this.paused) return;
    if (this.inflight >= (this.srv.o.maxInflight ?? 4096)) return;
    if (this.socket.writableLength > (this.srv.o.maxQueuedBytes ?? 64 * 1024 * 1024)) return;
    this.paused = false;
    this.socket.resume();
  }
}

const DATA_OPS = new Set<number>([Op.READ, Op.WRITE, Op.TRIM, Op.DELETE, Op.COPY]);

function parseJson<T>(payload: Buffer, what: string): T {
  try {
    const v = JSON.parse(payload.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as T;
  } catch (e) {
    throw new NodeOpError('EINVAL', `${what} payload is not a JSON object: ${(e as Error).message}`);
  }
}
