/**
 * A client of the storage node running in this process — a hyperconverged host, whose agent runs
 * the volume frontend and a storage node in one process. Requests go straight to the node's
 * ObjectStore: no TCP hop, no frames, no second process to wake up (on one host that hop was most
 * of the cost of a local replica).
 *
 * It keeps the rules of a network client (node-client.ts), so the frontend cannot tell them apart:
 *  - order: each request is handed to the store synchronously in the call, and the store runs the
 *    requests on one object in call order — as the server does with frames in arrival order;
 *  - FLUSH covers what this client wrote, trimmed or deleted without FUA since its last FLUSH (its
 *    own set, as the server keeps one per connection); a failed FLUSH leaves them owed;
 *  - a failure is the NodeError a network client would receive for it (same errno and message,
 *    logged by the node the same way), a request without an answer in time a NodeTimeout, and
 *    once the node stops or close() was called every request fails with NodeClosed;
 *  - COPY runs the node's own copy path (StorageNodeServer.copyObject): it pulls over TCP.
 * One difference: a request already handed to the store is not cut off by close() or the node
 * stopping (the store finishes it before it closes): one that succeeds resolves, so its caller
 * learns the real outcome instead of "unknown"; one that fails fails with NodeClosed.
 */
import { Ending } from '../../core/ending.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './client.js';
import { NodeClosed, NodeError, NodeTimeout, errnoNumber } from './errors.js';
import { requestError, type DurableOptions, type NodeClient, type NodeCloseInfo, type RequestOptions } from './node-client.js';
import { NO_OBJECT, Op, opName, type CopyReply, type CopyRequest, type NodeStatReply } from './protocol.js';
import type { StorageNodeServer } from './server.js';
import type { ObjectStat } from './store.js';

/** What a fast attempt returns when the request must be queued instead. */
const LATER: unique symbol = Symbol('later');

export interface InProcessClientOptions {
  /** Default timeout of each request. Default 10 s, as over the network. */
  timeoutMs?: number;
  /** Names the client in the node's log. */
  client?: string;
}

export class InProcessNodeClient implements NodeClient {
  readonly address: string;
  private readonly ending: Ending<NodeCloseInfo>;
  /** Objects written, trimmed or deleted without FUA since this client's last FLUSH. */
  private readonly touched = new Set<string>();
  private open: boolean;
  private pending = 0;
  private readonly unlisten: () => void;

  constructor(private readonly server: StorageNodeServer, private readonly o: InProcessClientOptions = {}) {
    this.address = `in-process:${server.nodeId ?? `${server.host}:${server.port}`}`;
    this.ending = new Ending((e) => server.log.warn({ node: this.address, err: (e as Error).message }, 'close listener threw'));
    this.open = server.running;
    if (this.open) {
      this.unlisten = server.onStop(() => this.end({ reason: 'remote', error: new NodeClosed(`storage node ${this.address} stopped`) }));
    } else {
      this.unlisten = () => {};
      this.end({ reason: 'remote', error: new NodeClosed(`storage node ${this.address} is not running`) });
    }
  }

  get isOpen(): boolean { return this.open; }
  get inflight(): number { return this.pending; }

  read(objectId: string, offset: number, length: number, opts: RequestOptions = {}): Promise<Buffer> {
    const store = this.server.store;
    return this.run(Op.READ, objectId, offset, length, opts, () => store.readQueued(objectId, offset, length), false,
      () => store.readNow(objectId, offset, length) ?? LATER);
  }

  readInto(objectId: string, offset: number, target: Buffer, opts: RequestOptions = {}): Promise<void> {
    const store = this.server.store;
    // Queued, it reads into a buffer of its own, copied only if the answer came in time.
    return this.run<Buffer | null>(Op.READ, objectId, offset, target.length, opts, () => store.readQueued(objectId, offset, target.length), false,
      () => (store.readNowInto(objectId, offset, target) ? null : LATER)).then((b) => { if (b) b.copy(target); });
  }

  write(objectId: string, offset: number, data: Uint8Array, opts: DurableOptions = {}): Promise<void> {
    const fua = opts.fua === true;
    const store = this.server.store;
    if (fua) return this.run(Op.WRITE, objectId, offset, data.length, opts, () => store.write(objectId, offset, data, true));
    return this.run(Op.WRITE, objectId, offset, data.length, opts, () => this.touch(objectId, false, store.writeQueued(objectId, offset, data)), false,
      () => (store.writeNow(objectId, offset, data) ? this.touch(objectId, false, undefined) : LATER));
  }

  flush(objectId?: string, opts: RequestOptions = {}): Promise<void> {
    const all = objectId === undefined;
    return this.run(Op.FLUSH, objectId ?? NO_OBJECT, 0, 0, opts, () => {
      const ids = all ? [...this.touched] : [objectId];
      if (all) this.touched.clear();
      else this.touched.delete(objectId);
      return this.server.store.flush(ids).then(() => {}, (e: unknown) => {
        for (const id of ids) this.touched.add(id);
        throw e;
      });
    }, all);
  }

  trim(objectId: string, offset: number, length: number, opts: DurableOptions = {}): Promise<void> {
    const fua = opts.fua === true;
    return this.run(Op.TRIM, objectId, offset, length, opts, () => this.touch(objectId, fua, this.server.store.trim(objectId, offset, length, fua)));
  }

  delete(objectId: string, opts: DurableOptions = {}): Promise<void> {
    const fua = opts.fua === true;
    return this.run(Op.DELETE, objectId, 0, 0, opts, () => this.touch(objectId, fua, this.server.store.delete(objectId, fua)));
  }

  copyObject(objectId: string, source: CopyRequest, opts: RequestOptions = {}): Promise<CopyReply> {
    return this.run(Op.COPY, objectId, 0, 0, opts, () => this.server.copyObject(objectId, source));
  }

  stat(objectId: string, opts: RequestOptions = {}): Promise<ObjectStat> {
    return this.run(Op.STAT, objectId, 0, 0, opts, () => this.server.store.stat(objectId));
  }

  /** The node's space and state. */
  nodeStat(opts: RequestOptions = {}): Promise<NodeStatReply> {
    return this.run(Op.STAT, NO_OBJECT, 0, 0, opts, () => this.server.nodeStat(), true);
  }

  ping(): Promise<number> {
    return this.open ? Promise.resolve(0) : Promise.reject(this.closedError(opName(Op.PING)));
  }

  onClose(listener: (info: NodeCloseInfo) => void): () => void {
    return this.ending.on(listener);
  }

  async close(): Promise<void> {
    this.end({ reason: 'local' });
  }

  // --- internals ------------------------------------------------------------------------------

  /** As the server does: a change without FUA is owed to this client's next FLUSH. */
  private touch<T>(objectId: string, fua: boolean, v: T): T {
    if (!fua) this.touched.add(objectId);
    return v;
  }

  /**
   * Checks the request as a network client would, then hands it to the node: done at once when
   * `now` can (the store's fast path: nothing to wait for, so no timer either), else `start`
   * enqueues it on the object synchronously (call order is execution order), with the timeout.
   */
  private run<T>(op: Op, objectId: string, offset: number, length: number, opts: RequestOptions, start: () => Promise<T>, noObject = false,
    now?: () => T | typeof LATER): Promise<T> {
    const name = opName(op);
    if (!this.open) return Promise.reject(this.closedError(name));
    const bad = requestError(name, objectId, offset, length, noObject);
    if (bad) return Promise.reject(bad);
    if (now) {
      let v: T | typeof LATER;
      try {
        v = now();
      } catch (e) {
        return Promise.reject(this.failed(e, name, objectId));
      }
      if (v !== LATER) return Promise.resolve(v);
    }
    let p: Promise<T>;
    try {
      p = start();
    } catch (e) { // the store's checks throw synchronously
      return Promise.reject(this.failed(e, name, objectId));
    }
    this.pending++;
    const timeoutMs = opts.timeoutMs ?? this.o.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => {
        settled = true;
        this.pending--;
        reject(new NodeTimeout(`no reply from ${this.address} within ${timeoutMs} ms`, name, timeoutMs, true));
      }, timeoutMs) : undefined;
      p.then((v) => {
        if (settled) return;
        if (timer) clearTimeout(timer);
        this.pending--;
        resolve(v);
      }, (e: unknown) => {
        if (settled) return;
        if (timer) clearTimeout(timer);
        this.pending--;
        reject(this.failed(e, name, objectId));
      });
    });
  }

  /**
   * What a network client would receive: the node's error reply, as a NodeError — or NodeClosed
   * when the node stopped meanwhile (a stopping node aborts its copies; over TCP the caller would
   * have seen its connection drop).
   */
  private failed(e: unknown, op: string, objectId: string): NodeError | NodeClosed {
    if (!this.open) return this.closedError(op);
    const [code, message] = this.server.requestFailed(e, op, objectId, 'in-process', this.o.client ?? '');
    return new NodeError(errnoNumber(code), message.slice(0, 4000), op);
  }

  private end(info: NodeCloseInfo): void {
    if (!this.open && this.ending.info !== undefined) return;
    this.open = false;
    this.unlisten?.();
    this.ending.end(info);
  }

  private closedError(op: string): NodeClosed {
    const why = this.ending.info?.error;
    if (why instanceof NodeClosed) return new NodeClosed(why.desc, op);
    return new NodeClosed(`client of ${this.address} was closed`, op);
  }
}
