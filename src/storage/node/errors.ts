/**
 * Every way a storage node request can fail, as one error family (like the QMP client's):
 *  - NodeError: the node answered with an error reply, carrying an errno-like code (EIO, ENOSPC,
 *    EACCES for a bad token, EINVAL for a bad request…). The node is fine; this request is not.
 *  - NodeTimeout: no reply in time. The node may still carry the request out (a WRITE may land).
 *  - NodeClosed: no connection, or it ended with the request in flight; its outcome is unknown.
 *  - NodeProtocolError: the peer sent something that is not this protocol; the connection is dropped.
 * The frontend treats all but NodeError(EINVAL) alike for replication: that replica missed the write.
 */
import { constants } from 'node:os';

export type StorageNodeErrorClass = 'NodeError' | 'NodeTimeout' | 'NodeClosed' | 'NodeProtocolError';

export class StorageNodeError extends Error {
  readonly class: StorageNodeErrorClass;
  /** The operation that failed (READ, WRITE…), when there was one. */
  readonly op: string | undefined;
  /** The message without the "storage node OP:" prefix. */
  readonly desc: string;
  constructor(cls: StorageNodeErrorClass, desc: string, op?: string, options?: { cause?: unknown }) {
    super(op ? `storage node ${op}: ${desc}` : `storage node: ${desc}`, options);
    this.name = 'StorageNodeError';
    this.class = cls;
    this.op = op;
    this.desc = desc;
  }
}

/** An error reply from the node. */
export class NodeError extends StorageNodeError {
  /** errno name, e.g. 'EIO'; 'E<number>' for a number this system has no name for. */
  readonly code: string;
  /** The number on the wire (Linux errno values). */
  readonly errno: number;
  /** The node's own message. */
  readonly detail: string;
  constructor(errno: number, detail: string, op?: string) {
    const code = errnoName(errno);
    super('NodeError', `${code}: ${detail}`, op);
    this.name = 'NodeError';
    this.code = code;
    this.errno = errno;
    this.detail = detail;
  }
}

export class NodeTimeout extends StorageNodeError {
  constructor(message: string, op?: string, readonly timeoutMs?: number, readonly sent?: boolean) {
    super('NodeTimeout', message, op);
    this.name = 'NodeTimeout';
  }
}

export class NodeClosed extends StorageNodeError {
  /** The socket error code behind the close (ECONNREFUSED, ECONNRESET…), if any. */
  readonly code: string | undefined;
  constructor(message: string, op?: string, options?: { cause?: unknown; code?: string }) {
    super('NodeClosed', message, op, options);
    this.name = 'NodeClosed';
    this.code = options?.code;
  }
}

export class NodeProtocolError extends StorageNodeError {
  constructor(message: string, op?: string) {
    super('NodeProtocolError', message, op);
    this.name = 'NodeProtocolError';
  }
}

export const isNodeError = (e: unknown, code?: string): e is NodeError =>
  e instanceof NodeError && (code === undefined || e.code === code);

// --- errno codes on the wire ---------------------------------------------------------------------

const ERRNO = constants.errno as Record<string, number>;
const NAMES = new Map(Object.entries(ERRNO).map(([name, n]) => [n, name] as const));

export function errnoName(n: number): string {
  return NAMES.get(n) ?? `E${n}`;
}

/** The wire number for an errno name; EIO for anything unknown. */
export function errnoNumber(code: string | undefined): number {
  return (code !== undefined ? ERRNO[code] : undefined) ?? ERRNO.EIO;
}

/** A failure inside the node, with the errno code its error reply carries. */
export class NodeOpError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'NodeOpError';
  }
}

/** The errno name and message an error reply carries. */
export function errorReply(e: unknown): [string, string] {
  if (e instanceof NodeOpError) return [e.code, e.message];
  if (e instanceof NodeError) return [e.code, e.message];
  if (e instanceof NodeTimeout) return ['ETIMEDOUT', e.message];
  if (e instanceof NodeClosed) return [e.code && /^E[A-Z]+$/.test(e.code) ? e.code : 'ECONNRESET', e.message];
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && /^E[A-Z0-9]+$/.test(err.code)) return [err.code, err.message];
  return ['EIO', String((e as Error)?.message ?? e)];
}
