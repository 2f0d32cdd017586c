/**
 * `kumo storage-node`: the ObjectStore of one data directory served by a StorageNodeServer, known
 * to the controller. It registers with the cluster's join token (retrying while the controller
 * cannot be reached: a node may start before its controller), serves with the node token it got,
 * and heartbeats its address and free space; a controller that no longer knows the token (401)
 * gets a fresh registration. Objects nothing refers to any more are deleted by the controller
 * (storage/controller/reconcile.ts), through the block service like any other client.
 *
 * `DIR/node.json` keeps what must survive a restart: the name (so the node registers again as
 * itself and keeps its id), the port (frontends cache the address, so a restart with `--listen`
 * port 0 binds the same one again) and the node token (so the node serves its frontends at once
 * after a restart, even while the controller is unreachable).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { STORAGE_PATHS, type StorageHeartbeatBody, type StorageRegisterBody, type StorageRegisterReply } from '../wire.js';
import { silentLogger, type NodeLogger } from './log.js';
import { StorageNodeServer } from './server.js';

export interface StorageNodeDaemonOptions {
  /** The data directory: objects, and node.json. */
  dataDir: string;
  zone: string;
  controllerUrl: string;
  joinToken: string;
  /** Default 127.0.0.1:0 (port 0: the port of the last run, else a free one). */
  listen?: { host: string; port: number };
  /** The host frontends and other nodes connect to; default the listen host (or this machine's address when that is a wildcard). */
  advertise?: string;
  /** Default: the name in node.json, else `<hostname>-<basename of dataDir>`. */
  name?: string;
  heartbeatMs?: number;
  log?: NodeLogger;
}

/** What node.json holds. */
export interface NodeIdentity { name: string; port: number; nodeId?: string; token?: string }

/** The controller refused the registration (4xx): retrying cannot help, the operator must act. */
export class RegistrationRefused extends Error {
  constructor(readonly status: number, detail: string) {
    super(`the controller refused the registration (HTTP ${status}): ${detail}`);
    this.name = 'RegistrationRefused';
  }
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

/** Stable per data directory, and a valid name anywhere: letters, digits, `.`, `_`, `-`. */
export function defaultNodeName(dataDir: string): string {
  return `${hostname()}-${basename(resolve(dataDir))}`.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 63);
}

/** Listening on every address says nothing about which one peers should use: the first external IPv4 is the usual answer. */
function guessAdvertise(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return hostname();
}

export class StorageNodeDaemon {
  server: StorageNodeServer | null = null;
  identity: NodeIdentity = { name: '', port: 0 };
  /** Where peers reach the block service. */
  host = '';
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private beat: Promise<void> = Promise.resolve();
  private readonly log: NodeLogger;
  private readonly file: string;

  constructor(readonly o: StorageNodeDaemonOptions) {
    this.log = o.log ?? silentLogger;
    this.file = join(o.dataDir, 'node.json');
  }

  get nodeId(): string | undefined { return this.identity.nodeId; }
  get port(): number { return this.server?.port ?? 0; }

  /** Listens, then registers (resolves once registered, or stopped); a refusal (bad join token…) rejects. */
  async start(): Promise<void> {
    await mkdir(this.o.dataDir, { recursive: true });
    const saved = await this.load();
    const name = this.o.name ?? saved?.name ?? defaultNodeName(this.o.dataDir);
    // A renamed node is another node: its id and token were the old name's.
    const same = saved && saved.name === name ? saved : undefined;
    const listen = this.o.listen ?? { host: '127.0.0.1', port: 0 };
    this.server = await this.listen(listen.host, listen.port || same?.port || 0, same, listen.port === 0);
    this.host = this.o.advertise ?? (WILDCARDS.has(listen.host) ? guessAdvertise() : this.server.host);
    this.identity = { name, port: this.server.port, ...(same?.nodeId ? { nodeId: same.nodeId } : {}), ...(same?.token ? { token: same.token } : {}) };
    await this.save();
    this.log.info({ node: name, zone: this.o.zone, listen: `${this.server.host}:${this.server.port}`, advertise: `${this.host}:${this.server.port}`, data: resolve(this.o.dataDir) },
      `storage node ${name} listening on ${this.server.host}:${this.server.port}, storing in ${resolve(this.o.dataDir)}`);
    try {
      await this.register();
    } catch (e) {
      await this.server.stop();
      throw e;
    }
    this.schedule();
  }

  /** The persisted port may have been taken meanwhile (by anyone's outgoing connection): a fresh one is better than no node. */
  private async listen(host: string, port: number, saved: NodeIdentity | undefined, mayMove: boolean): Promise<StorageNodeServer> {
    const make = (p: number) => new StorageNodeServer({ dir: this.o.dataDir, token: saved?.token ?? '', nodeId: saved?.nodeId, host, port: p, log: this.log });
    const s = make(port);
    try {
      await s.start();
      return s;
    } catch (e) {
      await s.stop().catch(() => {});
      if (!mayMove || port === 0 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      this.log.warn({ port }, `port ${port} of the last run is taken; listening on a new one (the controller learns it at registration)`);
      const fresh = make(0);
      await fresh.start();
      return fresh;
    }
  }

  private async load(): Promise<NodeIdentity | undefined> {
    let text: string;
    try { text = await readFile(this.file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const v = JSON.parse(text) as Partial<NodeIdentity>;
    if (typeof v.name !== 'string' || !Number.isInteger(v.port)) throw new Error(`${this.file} is not a storage node identity ({name, port, nodeId?, token?})`);
    return v as NodeIdentity;
  }

  /** Written to a temporary file and renamed, so a crash leaves the old or the new file, never half of one. Mode 0600: it holds the node token. */
  private async save(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, `${JSON.stringify(this.identity, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, this.file);
  }

  private async space(): Promise<{ totalBytes: number; freeBytes: number }> {
    return this.server!.store.space();
  }

  private async post(path: string, token: string, body: unknown): Promise<Response> {
    return fetch(this.o.controllerUrl.replace(/\/+$/, '') + path, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
      signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)]),
    });
  }

  /** Retries while the controller cannot be reached or fails (5xx); a 4xx is an answer and rejects. Ends quietly on stop(). */
  private async register(): Promise<void> {
    for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
      try {
        const body: StorageRegisterBody = { name: this.identity.name, zone: this.o.zone, host: this.host, port: this.server!.port, ...(await this.space()) };
        const res = await this.post(STORAGE_PATHS.register, this.o.joinToken, body);
        const text = await res.text();
        if (res.status >= 400 && res.status < 500) throw new RegistrationRefused(res.status, detailOf(text));
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${detailOf(text)}`);
        const reply = JSON.parse(text) as StorageRegisterReply;
        this.server!.setToken(reply.nodeToken);
        this.server!.nodeId = reply.nodeId;
        if (this.identity.nodeId && this.identity.nodeId !== reply.nodeId) {
          this.log.warn({ was: this.identity.nodeId, now: reply.nodeId }, 'the controller gave this node a new id (its store no longer knew the old one)');
        }
        this.identity = { ...this.identity, port: this.server!.port, nodeId: reply.nodeId, token: reply.nodeToken };
        await this.save();
        this.log.info({ nodeId: reply.nodeId, controller: this.o.controllerUrl }, 'registered with the controller');
        return;
      } catch (e) {
        if (e instanceof RegistrationRefused) throw e;
        if (this.stopping.signal.aborted) return;
        if (attempt === 1 || attempt % 10 === 0) this.log.warn({ err: (e as Error).message, attempt, controller: this.o.controllerUrl }, 'cannot register with the controller yet; retrying');
        await sleep(Math.min(5000, 200 * attempt), this.stopping.signal);
      }
    }
  }

  /** One heartbeat after the other (never two at once, nor one during a re-registration). */
  private schedule(): void {
    if (this.stopping.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.beat = this.heartbeat().finally(() => this.schedule());
    }, this.o.heartbeatMs ?? 5000);
    this.timer.unref();
  }

  private async heartbeat(): Promise<void> {
    try {
      const body: StorageHeartbeatBody = { nodeId: this.identity.nodeId!, host: this.host, port: this.server!.port, ...(await this.space()) };
      const res = await this.post(STORAGE_PATHS.heartbeat, this.identity.token ?? '', body);
      const text = await res.text();
      // A controller that lost our token (restored store, another controller) gets a fresh registration.
      if (res.status === 401) {
        this.log.warn({ controller: this.o.controllerUrl }, 'the controller no longer knows this node\'s token; registering again');
        await this.register();
        return;
      }
      if (!res.ok) this.log.warn({ status: res.status, err: detailOf(text) }, 'the controller refused a heartbeat');
    } catch (e) {
      if (!this.stopping.signal.aborted) this.log.warn({ err: (e as Error).message }, 'heartbeat to the controller failed');
    }
  }

  /** Stops heartbeats and registration attempts, then the block service (its connections drop; the data stays). */
  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.timer) clearTimeout(this.timer);
    await this.beat;
    await this.server?.stop();
  }
}

function detailOf(text: string): string {
  try {
    const p = JSON.parse(text) as { detail?: string; error?: string; message?: string };
    return p.detail ?? p.error ?? p.message ?? text.slice(0, 300);
  } catch { return text.slice(0, 300); }
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((r) => {
  const t = setTimeout(done, ms);
  function done() { clearTimeout(t); signal.removeEventListener('abort', done); r(); }
  signal.addEventListener('abort', done, { once: true });
});
