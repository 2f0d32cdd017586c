/**
 * NbdServer: named exports served over a unix socket or TCP, fixed newstyle handshake, simple
 * replies. One listener serves every export; each connection picks one in the handshake.
 *
 *   const server = new NbdServer();
 *   server.addExport('vol-1', await FileBackend.open('/var/lib/kumo/vol-1.raw'));
 *   await server.listen({ path: '/run/kumo/nbd.sock' });
 *   // qemu: -blockdev driver=nbd,server.type=unix,server.path=/run/kumo/nbd.sock,export=vol-1
 *
 * A connection that breaks the protocol is dropped alone; other connections and exports go on.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { BlockBackend } from './backend.js';
import { ConnectionClosed, SocketReader } from './bytes.js';
import { NbdProtocolError, negotiate } from './handshake.js';
import type { BlockSizeInfo } from './protocol.js';
import { Transmission } from './transmission.js';

/** The subset of pino's Logger used here, so the agent's logger plugs in as is. */
export interface NbdLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentNbdLogger: NbdLogger = { debug() {}, warn() {} };

export type NbdAddress = { path: string } | { host: string; port: number };

export interface NbdServerOptions {
  logger?: NbdLogger;
  /** A client must reach the transmission phase within this time (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Advertised with NBD_INFO_BLOCK_SIZE (default min 1, preferred 4 KiB, max 32 MiB). */
  blockSize?: BlockSizeInfo;
  /** Per connection: reading pauses at this many requests in flight (default 256)… */
  maxInFlight?: number;
  /** …or this many payload bytes in flight (default 128 MiB). */
  maxInFlightBytes?: number;
}

export const DEFAULT_BLOCK_SIZE: BlockSizeInfo = { min: 1, preferred: 4096, max: 32 * 1024 * 1024 };

/** Longest option data accepted in the handshake: a GO with a 4 KiB name and every info type fits. */
const MAX_OPTION_LENGTH = 256 * 1024;

export class NbdServer {
  private readonly exports = new Map<string, BlockBackend>();
  private readonly attached = new Map<string, Set<Transmission>>();
  private readonly handshaking = new Set<Socket>();
  private server: Server | null = null;
  private closing = false;
  private readonly log: NbdLogger;
  private readonly blockSize: BlockSizeInfo;
  private nextConnId = 1;

  constructor(private readonly opts: NbdServerOptions = {}) {
    this.log = opts.logger ?? silentNbdLogger;
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  }

  // ------------------------------------------------------------------------------------ exports
  addExport(name: string, backend: BlockBackend): void {
    if (Buffer.byteLength(name, 'utf8') > 4096) throw new Error('NBD export names are at most 4096 bytes');
    if (this.exports.has(name)) throw new Error(`NBD export ${JSON.stringify(name)} already exists`);
    if (!Number.isSafeInteger(backend.size) || backend.size < 0) throw new Error(`NBD export ${JSON.stringify(name)}: bad size ${backend.size}`);
    this.exports.set(name, backend);
  }

  /**
   * New clients no longer find the export; connected ones get answers to what they have in flight
   * and are then disconnected. Resolves once they are all closed. The backend is not closed.
   */
  async removeExport(name: string): Promise<void> {
    this.exports.delete(name);
    const conns = this.attached.get(name);
    if (conns) await Promise.all([...conns].map((t) => t.close()));
  }

  hasExport(name: string): boolean {
    return this.exports.has(name);
  }

  exportNames(): string[] {
    return [...this.exports.keys()];
  }

  /** Connections in the transmission phase, per export. */
  connectionCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, set] of this.attached) if (set.size > 0) out[name] = set.size;
    return out;
  }

  // ------------------------------------------------------------------------------------ listener
  /**
   * Listens on a unix socket path (a stale socket file nobody answers on is replaced) or TCP
   * host:port (port 0 picks one). Resolves with the address actually bound.
   */
  async listen(addr: NbdAddress): Promise<NbdAddress> {
    if (this.server) throw new Error('NbdServer is already listening');
    if (this.closing) throw new Error('NbdServer is closed');
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (s) => this.onConnection(s));
    this.server = server;
    if ('path' in addr && isSocket(addr.path) && !(await answers(addr.path))) unlinkSync(addr.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.warn({ err }, 'nbd: listener error'));
        resolve();
      };
      if ('path' in addr) server.listen(addr.path, done);
      else server.listen(addr.port, addr.host, done);
    }).catch((err) => {
      this.server = null;
      throw err;
    });
    return this.address()!;
  }

  address(): NbdAddress | null {
    const a = this.server?.address();
    if (!a) return null;
    if (typeof a === 'string') return { path: a };
    return { host: (a as AddressInfo).address, port: (a as AddressInfo).port };
  }

  /**
   * Stops listening, drops connections still in the handshake, lets attached clients have the
   * answers to what they have in flight, then disconnects them. Backends are not closed.
   */
  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const s of this.handshaking) s.destroy();
    const all = [...this.attached.values()].flatMap((set) => [...set]);
    await Promise.all(all.map((t) => t.close()));
    await closed;
  }

  // ---------------------------------------------------------------------------------- connection
  private onConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const id = this.nextConnId++;
    socket.setNoDelay?.(true);
    socket.on('error', (err) => this.log.debug({ conn: id, err: err.message }, 'nbd: socket error'));
    this.handshaking.add(socket);
    const reader = new SocketReader(socket);
    const timer = setTimeout(() => {
      this.log.warn({ conn: id }, 'nbd: handshake timed out');
      socket.destroy();
    }, this.opts.handshakeTimeoutMs ?? 30_000);
    const io = { reader, write: (b: Buffer) => void socket.write(b) };
    const lookup = { get: (n: string) => this.exports.get(n), names: () => this.exports.keys() };

    negotiate(io, lookup, { blockSize: this.blockSize, maxOptionLength: MAX_OPTION_LENGTH })
      .then((chosen) => {
        clearTimeout(timer);
        this.handshaking.delete(socket);
        if (!chosen) {
          reader.detach();
          socket.end(() => socket.destroy());
          return;
        }
        if (this.closing || socket.destroyed || this.exports.get(chosen.name) !== chosen.backend) {
          socket.destroy();
          return;
        }
        this.log.debug({ conn: id, export: chosen.name, flags: chosen.flags }, 'nbd: client attached');
        const t = new Transmission(socket, reader.detach(), chosen.backend, {
          maxBlock: this.blockSize.max,
          maxInFlight: this.opts.maxInFlight ?? 256,
          maxInFlightBytes: this.opts.maxInFlightBytes ?? 128 * 1024 * 1024,
          maxPendingOutput: 4 * 1024 * 1024,
          onProtocolError: (msg) => this.log.warn({ conn: id, export: chosen.name }, `nbd: dropping connection: ${msg}`),
        });
        let set = this.attached.get(chosen.name);
        if (!set) this.attached.set(chosen.name, (set = new Set()));
        set.add(t);
        void t.done.then(() => {
          set.delete(t);
          if (set.size === 0 && this.attached.get(chosen.name) === set) this.attached.delete(chosen.name);
          this.log.debug({ conn: id, export: chosen.name }, 'nbd: client detached');
        });
      })
      .catch((err: unknown) => {
        clearTimeout(timer);
        this.handshaking.delete(socket);
        if (err instanceof NbdProtocolError) this.log.warn({ conn: id }, `nbd: dropping connection in handshake: ${err.message}`);
        else if (!(err instanceof ConnectionClosed)) this.log.warn({ conn: id, err }, 'nbd: handshake failed');
        reader.detach();
        socket.destroy();
      });
  }
}

function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Whether something accepts connections on a unix socket path. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
