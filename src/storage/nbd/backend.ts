/**
 * What an NBD export serves: a BlockBackend. The server checks bounds, flags and read-only-ness
 * before calling it, so a backend sees only in-range requests. Errors it throws carry an errno-like
 * `code` ('EIO', 'ENOSPC', …, as Node's fs errors do) that becomes the NBD error of the reply.
 */
import { NBD_ERR, type NbdErrorName } from './protocol.js';

export interface BlockBackend {
  /** Export size in bytes. Read once, when a client enters transmission. */
  readonly size: number;
  /** Advertised as NBD_FLAG_READ_ONLY; the server answers EPERM to writes and never calls them. */
  readonly readOnly?: boolean;
  /**
   * True when every connection sees the same data and flush() covers writes made through any
   * connection (no per-connection cache): the export then advertises NBD_FLAG_CAN_MULTI_CONN.
   */
  readonly multiConn?: boolean;
  /** Resolves with exactly `length` bytes. */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional: fills `target` with the bytes at `offset`. When present the server reads straight
   * into its reply buffer (header and data leave in one write, no copy).
   */
  readInto?(offset: number, target: Buffer): Promise<void>;
  /** With `fua`, resolves only once the data is on stable storage. May keep `data` (it is not reused). */
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  /** Every write that completed before the call is on stable storage when this resolves. */
  flush(): Promise<void>;
  /** Advisory: the range is no longer needed. Its contents are undefined until written again. */
  trim(offset: number, length: number): Promise<void>;
  /** The range reads back as zeroes afterwards; with `fua`, durably so. */
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void>;
}

/** An error a backend throws on purpose, with the errno-like code the client should see. */
export class BlockError extends Error {
  constructor(readonly code: NbdErrorName | string, message?: string) {
    super(message ?? code);
    this.name = 'BlockError';
  }
}

/** Host errno names that map to something other than EIO. */
const BY_CODE: Record<string, number> = {
  EPERM: NBD_ERR.EPERM,
  EACCES: NBD_ERR.EPERM,
  EROFS: NBD_ERR.EPERM,
  EIO: NBD_ERR.EIO,
  ENOMEM: NBD_ERR.ENOMEM,
  EINVAL: NBD_ERR.EINVAL,
  ENOSPC: NBD_ERR.ENOSPC,
  EDQUOT: NBD_ERR.ENOSPC, // proto.md: map EDQUOT and EFBIG to ENOSPC
  EFBIG: NBD_ERR.ENOSPC,
  EOVERFLOW: NBD_ERR.EOVERFLOW,
  ENOTSUP: NBD_ERR.ENOTSUP,
  EOPNOTSUPP: NBD_ERR.ENOTSUP,
  ESHUTDOWN: NBD_ERR.ESHUTDOWN,
};

/** The NBD error value for anything a backend threw: its `code` if known, EIO otherwise. */
export function nbdErrnoOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  return (typeof code === 'string' && BY_CODE[code]) || NBD_ERR.EIO;
}
