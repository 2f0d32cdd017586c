/**
 * The storage node wire protocol, version 1: binary frames over TCP, pipelined — a client sends
 * requests without waiting, the node answers each one when done (not necessarily in order), and a
 * reply names its request by id.
 *
 * Every frame is a 48-byte header, big-endian, then `payloadLength` bytes:
 *
 *   off size field
 *    0   4   magic          'KUMQ' (0x4b554d51) on requests, 'KUMR' (0x4b554d52) on replies
 *    4   1   version        1
 *    5   1   opcode         Op below; a reply repeats its request's
 *    6   2   flags          bit 0 FUA (WRITE, TRIM, DELETE: on stable storage before the reply)
 *    8   4   request id     chosen by the client, echoed in the reply
 *   12   4   payloadLength  bytes after the header (≤ MAX_PAYLOAD)
 *   16  16   object id      128-bit block object id (all zeros when the op names none)
 *   32   8   offset         byte offset inside the object
 *   40   4   length         byte count (READ, TRIM; WRITE's equals payloadLength)
 *   44   4   status         0 in requests; in replies 0 = ok, else a Linux errno (EIO = 5…)
 *
 * Payloads: WRITE → the data; READ reply → exactly `length` bytes; an error reply → a UTF-8
 * message; HELLO, COPY, STAT and their replies → JSON (control, not data path); PING → echoed.
 *
 * A connection starts with HELLO {token}; anything else first, or a wrong token, gets an EACCES
 * error reply and the node hangs up. A frame with a wrong magic or an oversized payload cannot be
 * resynchronised: the receiver drops the connection without a reply (other connections go on).
 * An unsupported version gets an EPROTONOSUPPORT reply (in this layout), then the hang-up.
 */
import { OBJECT_ID_BYTES } from '../blockmap/ids.js';
import { NodeProtocolError } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const REQUEST_MAGIC = 0x4b554d51; // 'KUMQ'
export const REPLY_MAGIC = 0x4b554d52; // 'KUMR'
export const HEADER_BYTES = 48;
/** Largest payload in one frame: a READ or WRITE moves at most this much. */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
export const FLAG_FUA = 1;
export const NO_OBJECT = '0'.repeat(OBJECT_ID_BYTES * 2);

export enum Op {
  HELLO = 1,
  READ = 2,
  WRITE = 3,
  /** Object id zero: every object this connection wrote before the FLUSH; else that object. */
  FLUSH = 4,
  TRIM = 5,
  DELETE = 6,
  /** Pull an object from another node: payload CopyRequest, reply CopyReply. */
  COPY = 7,
  /** Object id zero: the node (NodeStatReply); else the object (ObjectStat). */
  STAT = 8,
  PING = 9,
}

export const opName = (op: number): string => Op[op] ?? `OP${op}`;

export interface HelloRequest { token: string; client?: string }
export interface HelloReply { server: 'kumo-storage-node'; version: number; nodeId?: string; maxPayload: number; maxObjectBytes: number }
/** The node the object is pulled from; `token` defaults to the pulling node's own token. */
export interface CopyRequest { host: string; port: number; token?: string; timeoutMs?: number }
export interface CopyReply { size: number; bytesWritten: number }
export interface NodeStatReply { nodeId?: string; totalBytes: number; freeBytes: number; dirtyObjects: number; connections: number; punchesHoles: boolean }

export interface FrameHeader {
  magic: number;
  version: number;
  op: number;
  flags: number;
  requestId: number;
  payloadLength: number;
  objectId: string;
  offset: number;
  length: number;
  status: number;
}

export interface Frame { header: FrameHeader; payload: Buffer }

const U32 = 2 ** 32;

export function encodeHeader(h: Omit<FrameHeader, 'version'> & { version?: number }): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt32BE(h.magic, 0);
  b.writeUInt8(h.version ?? PROTOCOL_VERSION, 4);
  b.writeUInt8(h.op, 5);
  b.writeUInt16BE(h.flags, 6);
  b.writeUInt32BE(h.requestId >>> 0, 8);
  b.writeUInt32BE(h.payloadLength, 12);
  if (b.write(h.objectId, 16, OBJECT_ID_BYTES, 'hex') !== OBJECT_ID_BYTES) throw new RangeError(`not an object id: ${h.objectId}`);
  b.writeUInt32BE(Math.floor(h.offset / U32), 32);
  b.writeUInt32BE(h.offset % U32, 36);
  b.writeUInt32BE(h.length, 40);
  b.writeUInt32BE(h.status, 44);
  return b;
}

export function decodeHeader(b: Buffer): FrameHeader {
  return {
    magic: b.readUInt32BE(0),
    version: b.readUInt8(4),
    op: b.readUInt8(5),
    flags: b.readUInt16BE(6),
    requestId: b.readUInt32BE(8),
    payloadLength: b.readUInt32BE(12),
    objectId: b.toString('hex', 16, 32),
    offset: b.readUInt32BE(32) * U32 + b.readUInt32BE(36),
    length: b.readUInt32BE(40),
    status: b.readUInt32BE(44),
  };
}

/**
 * Cuts a byte stream into frames. Socket chunks split frames anywhere; payloads that arrive in
 * one chunk are not copied. A wrong magic (checked on the first bytes, before a whole header is
 * there) or an oversized payload sets `failure`: push() still returns the good frames before it —
 * so what a peer sent before turning bad is served the same however the bytes were chunked — and
 * throws it from then on. The caller drops the connection once it sees `failure`.
 */
export class FrameDecoder {
  /** Why the stream cannot be trusted any more, once it cannot. */
  failure: NodeProtocolError | undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  private header: FrameHeader | null = null;
  private readonly magicBytes = Buffer.alloc(4);

  constructor(private readonly magic: number, private readonly maxPayload = MAX_PAYLOAD) {
    this.magicBytes.writeUInt32BE(magic);
  }

  push(chunk: Buffer): Frame[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
    const out: Frame[] = [];
    try {
      for (;;) {
        if (!this.header) {
          this.checkMagicPrefix();
          if (this.size < HEADER_BYTES) break;
          const h = decodeHeader(this.take(HEADER_BYTES));
          if (h.payloadLength > this.maxPayload) {
            throw new NodeProtocolError(`frame payload of ${h.payloadLength} bytes exceeds ${this.maxPayload}`);
          }
          this.header = h;
        }
        if (this.size < this.header.payloadLength) break;
        out.push({ header: this.header, payload: this.take(this.header.payloadLength) });
        this.header = null;
      }
    } catch (e) {
      this.failure = e as NodeProtocolError;
      this.chunks = [];
      this.size = 0;
      if (out.length === 0) throw e;
    }
    return out;
  }

  /** Bytes of an unfinished frame; non-zero at close means a truncated frame. */
  get buffered(): number { return this.size + (this.header ? HEADER_BYTES : 0); }

  private checkMagicPrefix(): void {
    if (this.size === 0) return;
    const first = this.chunks[0];
    const n = Math.min(4, this.size);
    const got = first.length >= n ? first.subarray(0, n) : Buffer.concat(this.chunks).subarray(0, n);
    if (!got.equals(this.magicBytes.subarray(0, n))) {
      throw new NodeProtocolError(`bad magic 0x${got.toString('hex')} (expected 0x${this.magicBytes.toString('hex').slice(0, n * 2)})`);
    }
  }

  private take(n: number): Buffer {
    this.size -= n;
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
