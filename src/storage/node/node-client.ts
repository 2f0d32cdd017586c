/**
 * What the frontend (VolumeSession, sync), its node pool and the controller's housekeeping need
 * from one storage node. Two implementations keep the same rules:
 *  - StorageNodeClient: a node elsewhere, over TCP (client.ts);
 *  - InProcessNodeClient: a node running in this process (a hyperconverged agent, in-process.ts),
 *    called directly — the network hop was most of the cost of a local replica.
 * The rules: requests on one object run in call order (requests on different objects overlap);
 * `flush()` covers every object this client wrote, trimmed or deleted before; a failure is one of
 * the StorageNodeError family (NodeError when the node itself refused or failed the request).
 */
import { isObjectId } from '../blockmap/ids.js';
import { NodeError, errnoNumber, type StorageNodeError } from './errors.js';
import { MAX_PAYLOAD, NO_OBJECT, type CopyReply, type CopyRequest } from './protocol.js';
import type { ObjectStat } from './store.js';

export interface RequestOptions {
  /** Milliseconds; `Infinity` waits for as long as the connection lives. */
  timeoutMs?: number;
}
export interface DurableOptions extends RequestOptions {
  /** Force unit access: answered once on stable storage (fdatasync on the node). */
  fua?: boolean;
}

export interface NodeCloseInfo {
  /** `local`: close() was called; `remote`: the node hung up, died or stopped; `protocol`: we hung up on garbage. */
  reason: 'local' | 'remote' | 'protocol';
  error?: StorageNodeError;
}

export interface NodeClient {
  /** Requests are accepted (a closed client fails every one with NodeClosed). */
  readonly isOpen: boolean;
  /** Requests sent and not yet answered. */
  readonly inflight: number;
  /** Where the node is, for logs. */
  readonly address: string;
  /** `length` bytes of the object at `offset` (zeros where nothing was written). */
  read(objectId: string, offset: number, length: number, opts?: RequestOptions): Promise<Buffer>;
  /** read() into the caller's buffer (`target.length` bytes), for a client that can spare the copy (in process). */
  readInto?(objectId: string, offset: number, target: Buffer, opts?: RequestOptions): Promise<void>;
  write(objectId: string, offset: number, data: Uint8Array, opts?: DurableOptions): Promise<void>;
  /** Without an object id: every object this client wrote (or trimmed, deleted) before; else that object. */
  flush(objectId?: string, opts?: RequestOptions): Promise<void>;
  /** Deallocates the range; it reads as zeros afterwards. */
  trim(objectId: string, offset: number, length: number, opts?: DurableOptions): Promise<void>;
  delete(objectId: string, opts?: DurableOptions): Promise<void>;
  /**
   * Has the node pull `objectId` from another node (`source`, over TCP), replacing its own copy;
   * answered once the copy is on stable storage. Writes sent by this client after it land on the copy.
   */
  copyObject(objectId: string, source: CopyRequest, opts?: RequestOptions): Promise<CopyReply>;
  stat(objectId: string, opts?: RequestOptions): Promise<ObjectStat>;
  /** Round-trip time in milliseconds (0 in process). */
  ping(opts?: RequestOptions): Promise<number>;
  /** Called once when the client ends, whatever the cause; at once (async) if it already has. */
  onClose(listener: (info: NodeCloseInfo) => void): () => void;
  close(): Promise<void>;
}

/**
 * The checks every client makes before a request goes anywhere: a well-formed object id (unless
 * the op takes none), a range a request may carry. Null when the request may go.
 */
export function requestError(op: string, objectId: string, offset: number, length: number, noObject: boolean): NodeError | null {
  if (!noObject && (!isObjectId(objectId) || objectId === NO_OBJECT)) {
    return new NodeError(errnoNumber('EINVAL'), `not an object id: ${JSON.stringify(String(objectId).slice(0, 40))} (not sent)`, op);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > MAX_PAYLOAD) {
    return new NodeError(errnoNumber('EINVAL'), `bad range ${offset}+${length} (at most ${MAX_PAYLOAD} bytes a request; not sent)`, op);
  }
  return null;
}
