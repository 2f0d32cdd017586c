/**
 * NbdClient: a small NBD client (fixed newstyle, simple replies, pipelined requests) for tests,
 * tools and frontends that talk to an NBD export. It negotiates with NBD_OPT_GO (asking for
 * NBD_INFO_BLOCK_SIZE) and falls back to NBD_OPT_EXPORT_NAME when the server answers UNSUP.
 *
 *   const c = await NbdClient.connect({ path: sock }, { exportName: 'vol-1' });
 *   await c.write(0, Buffer.from('hello'), { fua: true });
 *   const b = await c.read(0, 5);
 *   await c.disconnect();
 */
import { writeFrame } from '../../core/frames.js';
import { connect, type Socket } from 'node:net';
import { ByteQueue, SocketReader } from './bytes.js';
import {
  CMD, CMD_FLAG, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, GREETING_SIZE, INFO,
  OPT, OPTION_REPLY_HEADER_SIZE, REP, SIMPLE_REPLY_SIZE, TFLAG, decodeGreeting, decodeInfoReply,
  decodeOptionReplyHeader, decodeServerEntry, decodeSimpleReply, encodeClientFlags, encodeInfoRequest,
  encodeOption, encodeRequest, isErrorReply, nbdErrorName, readU64, type BlockSizeInfo, type Request,
} from './protocol.js';
import type { NbdAddress } from './server.js';

/** The server answered a request with an error value. */
export class NbdRequestError extends Error {
  readonly code: string;
  constructor(readonly errno: number, what: string) {
    super(`${what}: ${nbdErrorName(errno)}`);
    this.name = 'NbdRequestError';
    this.code = nbdErrorName(errno);
  }
}

/** The server refused an option, or broke the protocol during the handshake. */
export class NbdHandshakeError extends Error {
  constructor(message: string, readonly replyType?: number) {
    super(message);
    this.name = 'NbdHandshakeError';
  }
}

export interface ExportInfo {
  name: string;
  size: number;
  flags: number;
  blockSize?: BlockSizeInfo;
}

export interface NbdClientOptions {
  exportName?: string;
  /** Skip NBD_OPT_GO and enter transmission with NBD_OPT_EXPORT_NAME. */
  useExportName?: boolean;
}

interface Pending {
  type: number;
  length: number;
  resolve: (b: Buffer | undefined) => void;
  reject: (e: Error) => void;
}

const MAX_OPTION_REPLY = 1024 * 1024;

function dial(addr: NbdAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = 'path' in addr ? connect(addr.path) : connect(addr.port, addr.host);
    s.once('connect', () => {
      s.off('error', reject);
      s.setNoDelay?.(true);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** One option exchange in the handshake: the replies up to and including the final one. */
async function option(socket: Socket, reader: SocketReader, opt: number, data?: Buffer): Promise<{ type: number; data: Buffer }[]> {
  socket.write(encodeOption(opt, data));
  const replies: { type: number; data: Buffer }[] = [];
  for (;;) {
    const h = decodeOptionReplyHeader(await reader.read(OPTION_REPLY_HEADER_SIZE));
    if (!h) throw new NbdHandshakeError('bad option reply magic');
    if (h.option !== opt) throw new NbdHandshakeError(`reply for option ${h.option}, expected ${opt}`);
    if (h.length > MAX_OPTION_REPLY) throw new NbdHandshakeError(`option reply of ${h.length} bytes`);
    const body = Buffer.from(await reader.read(h.length));
    replies.push({ type: h.type, data: body });
    // LIST, INFO and GO send several replies; every other option, and every error, is final.
    const more = (opt === OPT.LIST && h.type === REP.SERVER) || ((opt === OPT.INFO || opt === OPT.GO) && h.type === REP.INFO);
    if (!more) return replies;
  }
}

async function greet(addr: NbdAddress): Promise<{ socket: Socket; reader: SocketReader; noZeroes: boolean }> {
  const socket = await dial(addr);
  const reader = new SocketReader(socket);
  try {
    const flags = decodeGreeting(await reader.read(GREETING_SIZE));
    if (flags === null) throw new NbdHandshakeError('not an NBD newstyle server');
    if (!(flags & FLAG_FIXED_NEWSTYLE)) throw new NbdHandshakeError('server does not speak fixed newstyle');
    const noZeroes = (flags & FLAG_NO_ZEROES) !== 0;
    socket.write(encodeClientFlags(FLAG_C_FIXED_NEWSTYLE | (noZeroes ? FLAG_C_NO_ZEROES : 0)));
    return { socket, reader, noZeroes };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function refusal(opt: string, r: { type: number; data: Buffer }): NbdHandshakeError {
  const msg = r.data.length ? `: ${r.data.toString('utf8')}` : '';
  return new NbdHandshakeError(`${opt} refused (reply type 0x${r.type.toString(16)})${msg}`, r.type);
}

function parseInfo(name: string, replies: { type: number; data: Buffer }[]): ExportInfo {
  const last = replies[replies.length - 1];
  if (last.type !== REP.ACK) throw refusal('NBD_OPT_GO/INFO', last);
  const out: Partial<ExportInfo> = { name };
  for (const r of replies.slice(0, -1)) {
    const info = decodeInfoReply(r.data);
    if (!info) throw new NbdHandshakeError('malformed NBD_REP_INFO');
    if (info.type === INFO.EXPORT && 'size' in info) {
      out.size = info.size;
      out.flags = info.flags;
    } else if (info.type === INFO.BLOCK_SIZE && 'min' in info) {
      out.blockSize = { min: info.min, preferred: info.preferred, max: info.max };
    }
  }
  if (out.size === undefined) throw new NbdHandshakeError('no NBD_INFO_EXPORT before NBD_REP_ACK');
  return out as ExportInfo;
}

export class NbdClient {
  private readonly queue: ByteQueue;
  private readonly pending = new Map<bigint, Pending>();
  private nextHandle = 1n;
  private replyHeader: { handle: bigint; p: Pending } | null = null;
  private failed: Error | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  private closedResolve!: () => void;
  /** Resolves once the connection is closed. */
  readonly closed: Promise<void> = new Promise((r) => (this.closedResolve = r));

  private constructor(
    private readonly socket: Socket,
    reader: SocketReader,
    readonly info: ExportInfo,
  ) {
    this.queue = reader.detach();
    socket.on('data', (c: Buffer) => {
      this.queue.push(c);
      this.parse();
    });
    socket.on('error', (err) => this.fail(new Error(`NBD connection failed: ${err.message}`)));
    socket.on('close', () => {
      this.fail(new Error('NBD connection closed'));
      this.closedResolve();
    });
    this.parse();
  }

  /** Connects and enters the transmission phase on `exportName` (default: the default export ""). */
  static async connect(addr: NbdAddress, opts: NbdClientOptions = {}): Promise<NbdClient> {
    const name = opts.exportName ?? '';
    const { socket, reader, noZeroes } = await greet(addr);
    try {
      if (!opts.useExportName) {
        const replies = await option(socket, reader, OPT.GO, encodeInfoRequest({ name, requests: [INFO.BLOCK_SIZE] }));
        const last = replies[replies.length - 1];
        if (last.type !== REP.ERR_UNSUP) return new NbdClient(socket, reader, parseInfo(name, replies));
      }
      socket.write(encodeOption(OPT.EXPORT_NAME, Buffer.from(name, 'utf8')));
      const b = await reader.read(10 + (noZeroes ? 0 : 124));
      return new NbdClient(socket, reader, { name, size: readU64(b, 0), flags: b.readUInt16BE(8) });
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** The export names a server lists (NBD_OPT_LIST), then NBD_OPT_ABORT. */
  static async list(addr: NbdAddress): Promise<string[]> {
    return NbdClient.withHandshake(addr, async (socket, reader) => {
      const replies = await option(socket, reader, OPT.LIST);
      const last = replies[replies.length - 1];
      if (last.type !== REP.ACK) throw refusal('NBD_OPT_LIST', last);
      return replies.slice(0, -1).map((r) => {
        const e = decodeServerEntry(r.data);
        if (!e) throw new NbdHandshakeError('malformed NBD_REP_SERVER');
        return e.name;
      });
    });
  }

  /** NBD_OPT_INFO for one export, then NBD_OPT_ABORT. */
  static async describe(addr: NbdAddress, name: string): Promise<ExportInfo> {
    return NbdClient.withHandshake(addr, async (socket, reader) =>
      parseInfo(name, await option(socket, reader, OPT.INFO, encodeInfoRequest({ name, requests: [INFO.BLOCK_SIZE] }))),
    );
  }

  private static async withHandshake<T>(addr: NbdAddress, fn: (s: Socket, r: SocketReader) => Promise<T>): Promise<T> {
    const { socket, reader } = await greet(addr);
    try {
      const out = await fn(socket, reader);
      await option(socket, reader, OPT.ABORT).catch(() => []);
      return out;
    } finally {
      socket.destroy();
    }
  }

  get size(): number {
    return this.info.size;
  }

  get flags(): number {
    return this.info.flags;
  }

  get readOnly(): boolean {
    return (this.info.flags & TFLAG.READ_ONLY) !== 0;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  read(offset: number, length: number, opts: { fua?: boolean } = {}): Promise<Buffer> {
    return this.request({ type: CMD.READ, flags: opts.fua ? CMD_FLAG.FUA : 0, offset, length }).then((b) => b!);
  }

  async write(offset: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    await this.request({ type: CMD.WRITE, flags: opts.fua ? CMD_FLAG.FUA : 0, offset, length: data.length }, data);
  }

  async flush(): Promise<void> {
    await this.request({ type: CMD.FLUSH, flags: 0, offset: 0, length: 0 });
  }

  async trim(offset: number, length: number, opts: { fua?: boolean } = {}): Promise<void> {
    await this.request({ type: CMD.TRIM, flags: opts.fua ? CMD_FLAG.FUA : 0, offset, length });
  }

  async writeZeroes(offset: number, length: number, opts: { fua?: boolean; noHole?: boolean } = {}): Promise<void> {
    const flags = (opts.fua ? CMD_FLAG.FUA : 0) | (opts.noHole ? CMD_FLAG.NO_HOLE : 0);
    await this.request({ type: CMD.WRITE_ZEROES, flags, offset, length });
  }

  /**
   * Sends any request (flags and type as given) and resolves with the READ payload, if any.
   * `payload` follows the header as is (for WRITE). Meant for tools and tests.
   */
  request(r: Omit<Request, 'handle'>, payload?: Buffer): Promise<Buffer | undefined> {
    if (this.failed) return Promise.reject(this.failed);
    const handle = this.nextHandle++;
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { type: r.type, length: r.length, resolve, reject });
      const header = encodeRequest({ ...r, handle });
      writeFrame(this.socket, header, payload);
    });
  }

  /** Waits for the requests in flight, sends NBD_CMD_DISC and closes. */
  async disconnect(): Promise<void> {
    if (!this.failed && this.pending.size > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
    if (!this.failed && !this.socket.destroyed) {
      this.socket.write(encodeRequest({ type: CMD.DISC, flags: 0, handle: this.nextHandle++, offset: 0, length: 0 }));
      this.socket.end();
    }
    await this.closed;
  }

  /** Drops the connection; requests in flight fail. */
  destroy(): void {
    this.socket.destroy();
  }

  private parse(): void {
    const q = this.queue;
    for (;;) {
      if (!this.replyHeader) {
        if (q.length < SIMPLE_REPLY_SIZE) return;
        const r = decodeSimpleReply(q.take(SIMPLE_REPLY_SIZE));
        if (!r) return this.protocolError('bad reply magic');
        const p = this.pending.get(r.handle);
        if (!p) return this.protocolError(`reply for unknown handle ${r.handle}`);
        if (r.error !== 0) {
          this.settled(r.handle);
          p.reject(new NbdRequestError(r.error, `NBD command ${p.type}`));
          continue;
        }
        if (p.type !== CMD.READ || p.length === 0) {
          this.settled(r.handle);
          p.resolve(p.type === CMD.READ ? Buffer.alloc(0) : undefined);
          continue;
        }
        this.replyHeader = { handle: r.handle, p };
      }
      const { handle, p } = this.replyHeader;
      if (q.length < p.length) return;
      this.replyHeader = null;
      this.settled(handle);
      p.resolve(q.take(p.length));
    }
  }

  private settled(handle: bigint): void {
    this.pending.delete(handle);
    if (this.pending.size === 0 && this.idleWaiters.length) for (const w of this.idleWaiters.splice(0)) w();
  }

  private protocolError(msg: string): void {
    this.fail(new Error(`NBD protocol error: ${msg}`));
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failed ??= err;
    const all = [...this.pending.values()];
    this.pending.clear();
    this.replyHeader = null;
    for (const p of all) p.reject(this.failed);
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
