/**
 * NBD wire format: constants, encoders and decoders (pure functions, no I/O).
 *
 * Written from the protocol description (NetworkBlockDevice/nbd, doc/proto.md): fixed newstyle
 * handshake, option haggling, the transmission-phase request and the simple reply. All integers
 * are big-endian. 64-bit offsets and sizes are JavaScript numbers: exports are far below 2^53
 * bytes, and a decoded offset beyond 2^53 (imprecise) is past the end of any export anyway.
 * Handles are opaque 64-bit values and stay bigints.
 */

// ------------------------------------------------------------------------------------------ magics
export const NBD_MAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// ----------------------------------------------------------------------------------------- flags
/** Handshake flags (server → client, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
/** Client flags (client → server, 32 bits). */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;
export const KNOWN_CLIENT_FLAGS = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;

/** Transmission flags (16 bits). */
export const TFLAG = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

// --------------------------------------------------------------------------------------- options
export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

const REP_ERR = 0x80000000;
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: REP_ERR + 1,
  ERR_POLICY: REP_ERR + 2,
  ERR_INVALID: REP_ERR + 3,
  ERR_PLATFORM: REP_ERR + 4,
  ERR_TLS_REQD: REP_ERR + 5,
  ERR_UNKNOWN: REP_ERR + 6,
  ERR_SHUTDOWN: REP_ERR + 7,
  ERR_BLOCK_SIZE_REQD: REP_ERR + 8,
  ERR_TOO_BIG: REP_ERR + 9,
} as const;
export const isErrorReply = (type: number) => type >= REP_ERR;

export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

// -------------------------------------------------------------------------------------- commands
export const CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

export const CMD_FLAG = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

/** The error values allowed in replies (proto.md "Error values"). */
export const NBD_ERR = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrorName = keyof typeof NBD_ERR;

export function nbdErrorName(errno: number): string {
  for (const [k, v] of Object.entries(NBD_ERR)) if (v === errno) return k;
  return `errno ${errno}`;
}

// ----------------------------------------------------------------------------------------- sizes
export const GREETING_SIZE = 18; // NBDMAGIC + IHAVEOPT + 16-bit handshake flags
export const OPTION_HEADER_SIZE = 16; // IHAVEOPT + option + length
export const OPTION_REPLY_HEADER_SIZE = 20; // magic + option + type + length
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_REPLY_HEADER_SIZE = 20;
export const EXPORT_NAME_REPLY_ZEROES = 124;
/** The longest string proto.md allows (export names, messages). */
export const MAX_STRING = 4096;

// ------------------------------------------------------------------------------- 64-bit helpers
const TWO32 = 0x1_0000_0000;

/** Reads an unsigned 64-bit value as a number (exact below 2^53). */
export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * TWO32 + buf.readUInt32BE(at + 4);
}

/** Writes a non-negative integer below 2^64 (exact below 2^53) as an unsigned 64-bit value. */
export function writeU64(buf: Buffer, value: number, at: number): void {
  const hi = Math.floor(value / TWO32);
  buf.writeUInt32BE(hi >>> 0, at);
  buf.writeUInt32BE(value - hi * TWO32, at + 4);
}

// ------------------------------------------------------------------------------------- handshake
export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.allocUnsafe(GREETING_SIZE);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

/** The handshake flags of a server greeting, or null when it is not a newstyle greeting. */
export function decodeGreeting(b: Buffer): number | null {
  if (b.length < GREETING_SIZE) return null;
  if (b.readBigUInt64BE(0) !== NBD_MAGIC || b.readBigUInt64BE(8) !== IHAVEOPT) return null;
  return b.readUInt16BE(16);
}

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(flags >>> 0, 0);
  return b;
}

export interface OptionHeader {
  option: number;
  length: number;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(OPTION_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, OPTION_HEADER_SIZE);
  return b;
}

/** null when the magic is wrong (the client is not speaking newstyle options). */
export function decodeOptionHeader(b: Buffer): OptionHeader | null {
  if (b.readBigUInt64BE(0) !== IHAVEOPT) return null;
  return { option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, OPTION_REPLY_HEADER_SIZE);
  return b;
}

export function decodeOptionReplyHeader(b: Buffer): OptionReplyHeader | null {
  if (b.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) return null;
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

/** The answer to NBD_OPT_EXPORT_NAME: size, transmission flags and (unless NO_ZEROES) 124 zeroes. */
export function encodeExportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : EXPORT_NAME_REPLY_ZEROES));
  writeU64(b, size, 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

/** NBD_REP_SERVER data: a 32-bit name length, the name, then an optional description. */
export function encodeServerEntry(name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description, 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function decodeServerEntry(b: Buffer): { name: string; description: string } | null {
  if (b.length < 4) return null;
  const len = b.readUInt32BE(0);
  if (len > b.length - 4) return null;
  return { name: b.toString('utf8', 4, 4 + len), description: b.toString('utf8', 4 + len) };
}

/** NBD_OPT_INFO / NBD_OPT_GO data. */
export interface InfoRequest {
  name: string;
  requests: number[];
}

export function encodeInfoRequest(req: InfoRequest): Buffer {
  const n = Buffer.from(req.name, 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length + 2 + 2 * req.requests.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(req.requests.length, 4 + n.length);
  req.requests.forEach((r, i) => b.writeUInt16BE(r, 4 + n.length + 2 + 2 * i));
  return b;
}

/** null when the lengths inside do not add up to the option length (NBD_REP_ERR_INVALID). */
export function decodeInfoRequest(b: Buffer): InfoRequest | null {
  if (b.length < 6) return null;
  const nameLen = b.readUInt32BE(0);
  if (nameLen > b.length - 6) return null;
  const count = b.readUInt16BE(4 + nameLen);
  if (b.length !== 4 + nameLen + 2 + 2 * count) return null;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(b.readUInt16BE(4 + nameLen + 2 + 2 * i));
  return { name: b.toString('utf8', 4, 4 + nameLen), requests };
}

export interface BlockSizeInfo {
  min: number;
  preferred: number;
  max: number;
}

export type InfoReply =
  | { type: typeof INFO.EXPORT; size: number; flags: number }
  | { type: typeof INFO.NAME; name: string }
  | { type: typeof INFO.DESCRIPTION; description: string }
  | ({ type: typeof INFO.BLOCK_SIZE } & BlockSizeInfo)
  | { type: number; unknown: Buffer };

export function encodeInfoReply(info: InfoReply): Buffer {
  if ('unknown' in info) {
    const b = Buffer.allocUnsafe(2 + info.unknown.length);
    b.writeUInt16BE(info.type, 0);
    info.unknown.copy(b, 2);
    return b;
  }
  switch (info.type) {
    case INFO.EXPORT: {
      const b = Buffer.allocUnsafe(12);
      b.writeUInt16BE(INFO.EXPORT, 0);
      writeU64(b, info.size, 2);
      b.writeUInt16BE(info.flags, 10);
      return b;
    }
    case INFO.BLOCK_SIZE: {
      const b = Buffer.allocUnsafe(14);
      b.writeUInt16BE(INFO.BLOCK_SIZE, 0);
      b.writeUInt32BE(info.min, 2);
      b.writeUInt32BE(info.preferred, 6);
      b.writeUInt32BE(info.max, 10);
      return b;
    }
    case INFO.NAME:
    case INFO.DESCRIPTION: {
      const s = Buffer.from('name' in info ? info.name : info.description, 'utf8');
      const b = Buffer.allocUnsafe(2 + s.length);
      b.writeUInt16BE(info.type, 0);
      s.copy(b, 2);
      return b;
    }
  }
}

/** null when a known information type has the wrong length. */
export function decodeInfoReply(b: Buffer): InfoReply | null {
  if (b.length < 2) return null;
  const type = b.readUInt16BE(0);
  switch (type) {
    case INFO.EXPORT:
      return b.length === 12 ? { type, size: readU64(b, 2), flags: b.readUInt16BE(10) } : null;
    case INFO.BLOCK_SIZE:
      return b.length === 14 ? { type, min: b.readUInt32BE(2), preferred: b.readUInt32BE(6), max: b.readUInt32BE(10) } : null;
    case INFO.NAME:
      return { type, name: b.toString('utf8', 2) };
    case INFO.DESCRIPTION:
      return { type, description: b.toString('utf8', 2) };
    default:
      return { type, unknown: Buffer.from(b.subarray(2)) };
  }
}

// ---------------------------------------------------------------------------------- transmission
export interface Request {
  flags: number;
  type: number;
  handle: bigint;
  offset: number;
  length: number;
}

export function encodeRequest(r: Request, into?: Buffer, at = 0): Buffer {
  const b = into ?? Buffer.allocUnsafe(REQUEST_SIZE);
  b.writeUInt32BE(REQUEST_MAGIC, at);
  b.writeUInt16BE(r.flags, at + 4);
  b.writeUInt16BE(r.type, at + 6);
  b.writeBigUInt64BE(r.handle, at + 8);
  writeU64(b, r.offset, at + 16);
  b.writeUInt32BE(r.length, at + 24);
  return b;
}

/** null when the magic is wrong (the stream is out of sync: the connection must be dropped). */
export function decodeRequest(b: Buffer, at = 0): Request | null {
  if (b.readUInt32BE(at) !== REQUEST_MAGIC) return null;
  return {
    flags: b.readUInt16BE(at + 4),
    type: b.readUInt16BE(at + 6),
    handle: b.readBigUInt64BE(at + 8),
    offset: readU64(b, at + 16),
    length: b.readUInt32BE(at + 24),
  };
}

export interface SimpleReply {
  error: number;
  handle: bigint;
}

export function encodeSimpleReply(error: number, handle: bigint, into?: Buffer, at = 0): Buffer {
  const b = into ?? Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, at);
  b.writeUInt32BE(error >>> 0, at + 4);
  b.writeBigUInt64BE(handle, at + 8);
  return b;
}

/** null when the magic is not the simple reply's (this client never negotiates structured replies). */
export function decodeSimpleReply(b: Buffer, at = 0): SimpleReply | null {
  if (b.readUInt32BE(at) !== SIMPLE_REPLY_MAGIC) return null;
  return { error: b.readUInt32BE(at + 4), handle: b.readBigUInt64BE(at + 8) };
}
