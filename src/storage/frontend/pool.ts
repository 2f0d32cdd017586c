/**
 * The frontend's connections to storage nodes: one client per node, shared by every volume
 * session of the process (each request is pipelined on it) — a StorageNodeClient over TCP, or,
 * for a node running in this very process (`addLocal`: a hyperconverged agent), an
 * InProcessNodeClient that calls the node's store directly.
 *
 * Connections open lazily and come back after a node hung up, but a dead node must not make
 * requests wait: the first attempt after a healthy connection ended is waited for (a restarted node
 * is back at once); once an attempt failed, requests fail fast with NodeClosed, and a new attempt
 * is made at most every `retryAfterMs` (started by a request or by the ping timer) — those fail
 * fast too. Only `connect()` (copies, explicit checks) waits for a fresh attempt.
 *
 * RTT is measured with PING on connect and every `pingEveryMs`; `nearest()` orders nodes local
 * first, then by RTT, nodes that cannot be reached last. The in-process node is local with RTT 0:
 * first of all.
 */
import {
  InProcessNodeClient, NodeClosed, StorageNodeClient, silentLogger, type NodeClient, type NodeLogger, type StorageNodeServer,
} from '../node/index.js';
import { isLocalHost } from './local-host.js';
import type { NodeAddress } from './map.js';

export interface NodePoolOptions {
  /** Names this process in the nodes' logs. */
  client?: string;
  log?: NodeLogger;
  /** Bounds connect + HELLO. Default 2 s. */
  connectTimeoutMs?: number;
  /** After a failed attempt, the next one waits this long (requests fail fast meanwhile). Default 1 s. */
  retryAfterMs?: number;
  /** Default timeout of each request on the nodes. Default 10 s. */
  requestTimeoutMs?: number;
  /** RTT is measured this often. Default 10 s. */
  pingEveryMs?: number;
  /** Which nodes count as local (read first). Default: loopback or one of this machine's addresses. */
  isLocal?: (addr: NodeAddress) => boolean;
}

interface Entry {
  addr: NodeAddress;
  local: boolean;
  /** The node runs in this process: reached through this server's store, never over TCP. */
  inProcess: StorageNodeServer | null;
  client: NodeClient | null;
  attempt: Promise<NodeClient> | null;
  /** The pending attempt is a retry after a failure: requests do not wait for it. */
  retrying: boolean;
  /** When the last attempt failed; 0 while nothing failed since the last good connection. */
  failedAt: number;
  lastError: string;
  /** Smoothed round-trip time in ms; NaN until measured. */
  rtt: number;
}

/** Sort keys: local nodes before remote ones, unreachable ones after all. */
const LOCAL_BONUS = 1e6;
const UNKNOWN_RTT = 1e3;
const UNREACHABLE = 1e9;

export class NodePool {
  private readonly entries = new Map<string, Entry>();
  private readonly log: NodeLogger;
  private readonly connectTimeoutMs: number;
  private readonly retryAfterMs: number;
  private readonly requestTimeoutMs: number;
  private readonly isLocal: (addr: NodeAddress) => boolean;
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly o: NodePoolOptions = {}) {
    this.log = o.log ?? silentLogger;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 2000;
    this.retryAfterMs = o.retryAfterMs ?? 1000;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 10_000;
    this.isLocal = o.isLocal ?? ((a) => isLocalHost(a.host));
  }

  /** Adds a node, or updates its address: a changed host, port or token means a new connection. */
  setAddress(addr: NodeAddress): void {
    if (this.closed) return;
    const e = this.entries.get(addr.nodeId);
    // The node in this process is reached in process whatever its address: the address is for the
    // other nodes (a COPY from it pulls over TCP from there).
    if (e?.inProcess || (e && e.addr.host === addr.host && e.addr.port === addr.port && e.addr.token === addr.token)) {
      e.addr = addr;
      return;
    }
    if (e?.client) this.retire(e.client);
    this.entries.set(addr.nodeId, {
      addr, local: this.isLocal(addr), inProcess: null, client: null, attempt: null, retrying: false, failedAt: 0, lastError: '', rtt: NaN,
    });
    this.startTimer();
  }

  /**
   * Reaches `nodeId` in process, through `server` (the storage node this process runs), from now
   * on. Call it before sessions use the node: a TCP connection it replaces is retired, and what a
   * session wrote through it can no longer be flushed. The node's address (for other nodes'
   * copies from it) comes from setAddress as for any node — until then it is the server's listen
   * address without a token.
   */
  addLocal(nodeId: string, server: StorageNodeServer): void {
    if (this.closed) return;
    const e = this.entries.get(nodeId);
    if (e?.inProcess === server) return;
    if (e?.client) this.retire(e.client);
    this.entries.set(nodeId, {
      addr: e?.addr ?? { nodeId, zone: '', host: server.host, port: server.port, token: '' },
      local: true, inProcess: server, client: null, attempt: null, retrying: false, failedAt: 0, lastError: '', rtt: 0,
    });
    this.startTimer();
  }

  address(nodeId: string): NodeAddress | undefined {
    return this.entries.get(nodeId)?.addr;
  }

  /** The open connection to the node, if there is one (no waiting: the hot path). */
  client(nodeId: string): NodeClient | undefined {
    const c = this.entries.get(nodeId)?.client;
    return c && c.isOpen ? c : undefined;
  }

  /**
   * A connection to the node (by id, or by address, which is recorded first). Fails fast with
   * NodeClosed while the node is known to be unreachable.
   */
  get(node: string | NodeAddress): Promise<NodeClient> {
    const e = this.entry(node);
    if (!e) return Promise.reject(new NodeClosed(`storage node ${String(node)} is not known to this frontend`));
    if (e.client?.isOpen) return Promise.resolve(e.client);
    if (e.attempt) return e.retrying ? Promise.reject(this.unreachable(e)) : e.attempt;
    if (e.failedAt === 0) return this.attempt(e, false);
    if (Date.now() - e.failedAt >= this.retryAfterMs) void this.attempt(e, true).catch(() => {});
    return Promise.reject(this.unreachable(e));
  }

  /** A connection to the node, trying again now if there is none (waits up to the connect timeout). */
  async connect(node: string | NodeAddress): Promise<NodeClient> {
    const e = this.entry(node);
    if (!e) throw new NodeClosed(`storage node ${String(node)} is not known to this frontend`);
    if (e.client?.isOpen) return e.client;
    return e.attempt ?? this.attempt(e, false);
  }

  /** Measured RTT in ms (NaN if not yet). */
  rtt(nodeId: string): number {
    return this.entries.get(nodeId)?.rtt ?? NaN;
  }

  isLocalNode(nodeId: string): boolean {
    return this.entries.get(nodeId)?.local ?? false;
  }

  /** Lower is nearer: local first, then by RTT, unreachable nodes last. */
  score(nodeId: string): number {
    const e = this.entries.get(nodeId);
    if (!e) return UNREACHABLE * 2;
    let s = Number.isNaN(e.rtt) ? UNKNOWN_RTT : e.rtt;
    if (e.local) s -= LOCAL_BONUS;
    if (e.failedAt !== 0 && !e.client?.isOpen) s += UNREACHABLE;
    return s;
  }

  /** The nodes in order of preference for reading (a new array; ties keep their order). */
  nearest(nodeIds: readonly string[]): string[] {
    return nodeIds.map((id, i) => ({ id, i, s: this.score(id) })).sort((a, b) => a.s - b.s || a.i - b.i).map((x) => x.id);
  }

  /** Pings every connected node now (also tries again nodes that failed); resolves when all answered. */
  async measure(): Promise<void> {
    await Promise.all([...this.entries.values()].map(async (e) => {
      if (e.client?.isOpen) await this.ping(e, e.client);
      else if (e.failedAt !== 0 && !e.attempt && Date.now() - e.failedAt >= this.retryAfterMs) await this.attempt(e, true).catch(() => {});
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map(async (e) => {
      await e.attempt?.catch(() => {});
      await e.client?.close();
    }));
  }

  // --- internals ------------------------------------------------------------------------------

  private entry(node: string | NodeAddress): Entry | undefined {
    if (typeof node !== 'string') {
      this.setAddress(node);
      return this.entries.get(node.nodeId);
    }
    return this.entries.get(node);
  }

  private unreachable(e: Entry): NodeClosed {
    return new NodeClosed(`storage node ${e.addr.nodeId} (${e.addr.host}:${e.addr.port}) is unreachable${e.lastError ? `: ${e.lastError}` : ''}`);
  }

  private attempt(e: Entry, retrying: boolean): Promise<NodeClient> {
    const { addr } = e;
    const p: Promise<NodeClient> = this.open(e).then((c) => {
      if (this.entries.get(addr.nodeId) !== e || this.closed) {
        void c.close();
        throw new NodeClosed(`storage node ${addr.nodeId}: address changed while connecting`);
      }
      if (e.attempt === p) e.attempt = null;
      if (e.client?.isOpen) { // another attempt won
        void c.close();
        return e.client;
      }
      e.client = c;
      if (e.failedAt !== 0) this.log.info({ node: addr.nodeId, address: c.address }, 'storage node reachable again');
      e.failedAt = 0;
      e.lastError = '';
      c.onClose((info) => this.onClose(e, c, info.reason, info.error?.message));
      void this.ping(e, c);
      return c;
    }, (err: Error) => {
      if (this.entries.get(addr.nodeId) === e && e.attempt === p) {
        e.attempt = null;
        if (e.failedAt === 0) this.log.warn({ node: addr.nodeId, address: `${addr.host}:${addr.port}`, err: err.message }, 'cannot connect to storage node');
        e.failedAt = Date.now();
        e.lastError = err.message;
      }
      throw err;
    });
    e.attempt = p;
    e.retrying = retrying;
    return p;
  }

  /** A new client of the node: in process, or a connection (connect + HELLO). */
  private async open(e: Entry): Promise<NodeClient> {
    if (e.inProcess) {
      const c = new InProcessNodeClient(e.inProcess, { timeoutMs: this.requestTimeoutMs, client: this.o.client });
      if (!c.isOpen) throw new NodeClosed(`storage node ${e.addr.nodeId} (in this process) is not running`);
      return c;
    }
    const { addr } = e;
    return StorageNodeClient.connect({
      host: addr.host, port: addr.port, token: addr.token, timeoutMs: this.requestTimeoutMs, connectTimeoutMs: this.connectTimeoutMs,
      client: this.o.client, signal: this.stopping.signal, log: this.log,
    });
  }

  private onClose(e: Entry, c: NodeClient, reason: string, why: string | undefined): void {
    if (e.client !== c) return;
    e.client = null;
    if (reason === 'local' || this.closed || this.entries.get(e.addr.nodeId) !== e) return;
    this.log.warn({ node: e.addr.nodeId, reason, err: why }, 'lost the connection to storage node; reconnecting');
    e.lastError = why ?? 'connection closed';
    // A node that restarted is back at once; one that died fails this quickly (refused) or within the connect timeout.
    if (!e.attempt) void this.attempt(e, false).catch(() => {});
  }

  private async ping(e: Entry, c: NodeClient): Promise<void> {
    try {
      const ms = await c.ping({ timeoutMs: this.connectTimeoutMs });
      e.rtt = Number.isNaN(e.rtt) ? ms : e.rtt * 0.7 + ms * 0.3;
    } catch { /* a lost connection shows in onClose */ }
  }

  /** An old connection (the node moved): new requests go elsewhere, this one ends once idle. */
  private retire(c: NodeClient): void {
    const poll = () => {
      if (c.inflight === 0 || !c.isOpen) void c.close();
      else setTimeout(poll, 100).unref();
    };
    poll();
  }

  private startTimer(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.measure(), this.o.pingEveryMs ?? 10_000);
    this.timer.unref();
  }
}
