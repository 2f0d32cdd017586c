/**
 * A real cloud for end-to-end tests and the boot bench: a `kumo controller` and a separate
 * `kumo agent --driver qemu`, each its own process, so a test can kill the agent alone.
 *
 * A bare controller has no images, and only `kumo up` builds and registers `tiny-linux`. So the
 * data directory is seeded first: `kumo up --driver sim` runs until it has registered the image
 * and is then stopped. The controller then starts on the same store. The QEMU agent registers
 * under the same zone and host name as the seed's sim agent (`kumo up` uses the machine's host
 * name), so it takes over that host row and no stale sim host is left for the scheduler.
 *
 * Every process started here is stopped by its pid: the kumo processes through KumoProc, the seed's
 * agent child by the pid /proc lists for it, and the QEMUs by the pids in the agent's run
 * directories (`<agent data>/vms/<vmId>/qemu.pid`, checked against /proc/PID/cmdline).
 */
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { findQemu, isQemuFor, procCmdline, waitGone } from '../../src/compute/qemu/process.js';
import { freePort, KumoProc, waitFor } from '../api/support.js';
import { Cloud, rest, type Creds } from '../helpers/cloud.js';
import { Images } from '../../src/services/images.js';
import { SYSTEM } from '../../src/services/principal.js';
import { openDb } from '../../src/state/db.js';

export const BOOT_MS = 240_000; // a TCG boot on two loaded cores can take minutes; this is a wait, not a measure
export const TINY_IMAGE = 'tiny-linux';
/** A VM type the e2e controller adds: a 1 GiB system disk, so whole-volume copies stay short. */
export const SMALL_DISK_TYPE = 'be.1g';

export interface RequestInfo {
  requestId: string; method: string; resourceId: string; status: string; progress: number; message: string; result: unknown;
  error: { code?: number; message?: string }; createdAt: string; startedAt: string; finishedAt: string;
}
export interface KumoEvent { seq: number; tenantId: string | null; kind: string; resourceId: string; data: Record<string, unknown>; at: string }
export interface HostInfo { hostId: string; name: string; zone: string; memoryMiB: number; vcpus: number; status: string; driver: string; lastSeen: string }
export interface StorageNodeInfo { nodeId: string; name: string; zone: string; status: string; address: string; lastSeen: string }
export interface VolumeLocation { nodeId: string; zone: string; inSync: number; syncing: number; outOfSync: number }

const t0 = Date.now();
/** A progress line with the time since the process started, for long tests and the bench. */
export const say = (s: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);

/** Pids of the children of `pid` (one level), from /proc. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export class QemuCloud {
  readonly data: string;
  readonly agentData: string;
  readonly runDir: string;
  readonly host = hostname();
  readonly zone = 'zone-1';
  /** Not started: it only reads credentials.json (rewritten with the URL by each controller start) for `rest()`. */
  readonly cloud: Cloud;
  controller: KumoProc | null = null;
  agent: KumoProc | null = null;
  /** Storage node processes by name; the first is the seed's (`<host>-storage`, data in DATA/storage), taken over like the host. */
  readonly storage = new Map<string, KumoProc>();
  readonly mainStorage = `${hostname()}-storage`;
  url = '';
  imageId = '';
  readonly variants = new Map<string, string>();
  private agentPort = 0;
  private agentStarts = 0;

  /**
   * `hyperconverged`: the main storage node (`<host>-storage`, DATA/storage, as `kumo up` runs it)
   * runs inside the QEMU agent (`kumo agent --storage-data`) instead of as a process of its own.
   */
  constructor(prefix = 'kumo-e2e-', readonly hyperconverged = false) {
    this.data = mkdtempSync(join(tmpdir(), prefix));
    this.agentData = join(this.data, 'qemu-agent');
    this.runDir = join(this.agentData, 'vms');
    this.cloud = new Cloud(this.data, []);
  }

  get creds(): Creds { return this.cloud.creds; }
  get agentLog(): string { return join(this.data, 'logs', 'qemu-agent.log'); }

  /**
   * `variants`: more kernel-boot images made from tiny-linux's files with words appended to its
   * kernel command line (e.g. `kumo.counter=1`), registered in the store between the seed and the
   * controller start (nothing else has the store open then). Their ids land in `variants`.
   */
  async start(o: { variants?: Record<string, string> } = {}): Promise<void> {
    await this.seed();
    for (const [name, words] of Object.entries(o.variants ?? {})) this.variants.set(name, await this.registerVariant(name, words));
    writeFileSync(join(this.data, 'vm-types.json'), JSON.stringify([{ type: SMALL_DISK_TYPE, vcpus: 1, memoryMiB: 256, systemDiskGiB: 1, resourceType: 'best-effort' }]));
    this.controller = new KumoProc('controller', ['controller', '--data', this.data, '--port', '0', '--listen', '127.0.0.1', '--vm-types', join(this.data, 'vm-types.json'),
      '--log', join(this.data, 'logs', 'controller-e2e.log')]);
    this.url = await this.controller.waitForOutput(/REST: +(http:\/\/\S+)\/v1/, 60_000);
    if (!this.hyperconverged) await this.startStorageNode(this.mainStorage);
    this.agentPort = await freePort();
    await this.startAgent();
  }

  private async registerVariant(name: string, words: string): Promise<string> {
    const db = await openDb(`sqlite:${join(this.data, 'kumo.db')}`);
    try {
      const images = new Images(db);
      images.setDataDir(this.data);
      const dir = join(this.data, 'images', this.imageId);
      const r = await images.register(SYSTEM, {
        name, os: 'linux', kind: 'tiny', disk: join(dir, 'disk.raw'),
        files: [{ name: 'vmlinux', path: join(dir, 'vmlinux') }, { name: 'initrd.img', path: join(dir, 'initrd.img') }],
        boot: { kernel: 'vmlinux', initrd: 'initrd.img', append: `console=ttyS0 quiet ${words}` },
      });
      return r.imageId;
    } finally {
      await db.close();
    }
  }

  storageDir(name: string): string { return name === this.mainStorage ? join(this.data, 'storage') : join(this.data, `storage-${name}`); }

  /** Starts `kumo storage-node NAME` (same data dir, hence same id and port, every time) and waits until it is up. */
  async startStorageNode(name: string, zone = this.zone): Promise<StorageNodeInfo> {
    const previous = (await this.storageNodes()).find((n) => n.name === name);
    const p = new KumoProc(`storage-node ${name}`, ['storage-node', '--controller', this.url, '--zone', zone, '--name', name, '--listen', '127.0.0.1:0',
      '--data', this.storageDir(name), '--join-token-file', join(this.data, 'join-token'), '--log', join(this.data, 'logs', `storage-${name}.log`)]);
    this.storage.set(name, p);
    return waitFor(`storage node ${name} to be up`, async () => {
      const n = (await this.storageNodes()).find((x) => x.name === name);
      return n && n.status === 'up' && (!previous || n.lastSeen !== previous.lastSeen) ? n : null;
    }, 30_000, 200);
  }

  /** Stops a storage node process: SIGTERM (orderly) or SIGKILL (a crash). */
  async stopStorageNode(name: string, sig: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const p = this.storage.get(name);
    if (!p) return;
    if (sig === 'SIGKILL') await p.kill9();
    else await p.stop();
    this.storage.delete(name);
  }

  async storageNodes(): Promise<StorageNodeInfo[]> {
    const r = await this.rest('admin', 'GET', '/storage-nodes');
    if (r.status !== 200) throw new Error(`GET /storage-nodes: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as StorageNodeInfo[];
  }

  async locations(volumeId: string): Promise<VolumeLocation[]> {
    const r = await this.rest('admin', 'GET', `/volumes/${volumeId}`);
    if (r.status !== 200) throw new Error(`GET /volumes/${volumeId}: ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { locations: VolumeLocation[] }).locations;
  }

  /** The VM's system volume id. */
  async systemVolume(vmId: string): Promise<string> {
    const r = await this.rest('tenant', 'GET', `/vms/${vmId}`);
    if (r.status !== 200) throw new Error(`GET /vms/${vmId}: ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { disks: { slot: number; volumeId: string }[] }).disks.find((d) => d.slot === 0)!.volumeId;
  }

  /** `kumo up --driver sim` builds and registers tiny-linux into the store, then is stopped. */
  private async seed(): Promise<void> {
    const up = new KumoProc('kumo up (seed)', ['up', '--data', this.data, '--port', '0', '--listen', '127.0.0.1', '--driver', 'sim']);
    let children: number[] = [];
    try {
      await up.waitForOutput(/(kumo is up)/, 180_000);
      const m = /image: +tiny-linux \((img-[0-9a-f]+)\)/.exec(up.out);
      if (!m) throw new Error(`kumo up registered no tiny-linux image:\n${up.out}`);
      this.imageId = m[1];
      children = up.proc.pid ? childPids(up.proc.pid) : [];
    } finally {
      await up.stop();
      // kumo up stops its agent on SIGTERM; one left behind (it was SIGKILLed) goes by its pid.
      for (const pid of children) {
        if ((procCmdline(pid) ?? []).some((a) => a.startsWith(this.data))) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
  }

  /** Starts `kumo agent --driver qemu` with the same --data/--host/--zone/--listen every time and waits until its host is up. */
  async startAgent(): Promise<void> {
    const previous = await this.hostRow().catch(() => null);
    this.agentStarts++;
    this.agent = new KumoProc(`agent#${this.agentStarts}`, ['agent', '--driver', 'qemu', '--controller', this.url, '--zone', this.zone, '--host', this.host,
      '--listen', `127.0.0.1:${this.agentPort}`, '--data', this.agentData, '--join-token-file', join(this.data, 'join-token'), '--log', this.agentLog,
      ...(this.hyperconverged ? ['--storage-data', this.storageDir(this.mainStorage), '--storage-name', this.mainStorage, '--storage-listen', '127.0.0.1:0'] : [])]);
    await this.agent.waitForOutput(/(serving at)/, 60_000);
    // Registration happens before "serving at" is printed; the host row then names the QEMU driver.
    await waitFor('the QEMU agent\'s host to be up', async () => {
      const h = await this.hostRow().catch(() => null);
      return h && h.driver === 'qemu' && h.status === 'up' && (!previous || h.lastSeen !== previous.lastSeen) ? h : null;
    }, 30_000, 200);
  }

  /** Stops the agent process alone: SIGTERM (orderly; it lets go of its QEMUs) or SIGKILL (a crash). */
  async stopAgent(sig: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const a = this.agent;
    if (!a) return;
    if (sig === 'SIGKILL') await a.kill9();
    else await a.stop();
    this.agent = null;
  }

  async hostRow(): Promise<HostInfo> {
    const r = await this.rest('admin', 'GET', '/hosts');
    if (r.status !== 200) throw new Error(`GET /hosts: ${r.status} ${JSON.stringify(r.body)}`);
    const h = (r.body as HostInfo[]).find((x) => x.name === this.host && x.zone === this.zone);
    if (!h) throw new Error(`no host ${this.host} in ${this.zone}`);
    return h;
  }

  rest(who: 'admin' | 'tenant', method: string, path: string, body?: unknown) {
    return rest(this.cloud, who, method, path, body);
  }

  /** POSTs an async VM operation and returns its request id (throws on anything but 202). */
  async submit(vmId: string, op: 'power-on' | 'power-off' | 'reset' | 'restore-image', body: unknown = {}): Promise<string> {
    const r = await this.rest('tenant', 'POST', `/vms/${vmId}/${op}`, body);
    if (r.status !== 202) throw new Error(`${op} ${vmId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { requestId: string }).requestId;
  }

  /** waitRequest (long-poll) until the request ends. */
  async wait(requestId: string, timeoutMs = BOOT_MS): Promise<RequestInfo> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      const r = await this.rest('tenant', 'GET', `/requests/${requestId}/wait?timeoutSeconds=${Math.min(left, 30)}`);
      if (r.status !== 200) throw new Error(`waitRequest ${requestId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      const info = r.body as RequestInfo;
      if (!['queued', 'running'].includes(info.status)) return info;
      if (Date.now() >= until) throw new Error(`request ${requestId} (${info.method}) still ${info.status} after ${timeoutMs} ms: ${info.message}`);
    }
  }

  /** Submits and waits; throws unless the request succeeded. */
  async run(vmId: string, op: 'power-on' | 'power-off' | 'reset' | 'restore-image', body: unknown = {}, timeoutMs = BOOT_MS): Promise<RequestInfo> {
    const info = await this.wait(await this.submit(vmId, op, body), timeoutMs);
    if (info.status !== 'succeeded') throw new Error(`${op} ${vmId}: request ${info.requestId} ${info.status}: ${JSON.stringify(info.error)} ${info.message}`);
    return info;
  }

  async allocate(type = 'be.small', name?: string): Promise<string> {
    const r = await this.rest('tenant', 'POST', '/vms', { type, ...(name ? { name } : {}) });
    if (r.status !== 201) throw new Error(`allocateVm: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { vmId: string }).vmId;
  }

  async status(vmId: string): Promise<{ status: string; power: string; requestId: string }> {
    const r = await this.rest('tenant', 'GET', `/vms/${vmId}/status`);
    if (r.status !== 200) throw new Error(`getVmStatus ${vmId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as { status: string; power: string; requestId: string };
  }

  /** The console as getVmConsole returns it through the API (only while the VM is placed on a host). */
  async console(vmId: string): Promise<string> {
    const r = await this.rest('tenant', 'GET', `/vms/${vmId}/console`);
    if (r.status !== 200) throw new Error(`getVmConsole ${vmId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { console: string }).console;
  }

  /** Waits until the console, read through the API, shows `KUMO-BOOT vm=<id> boot=<n>` with n ≥ `atLeast`; returns n. */
  async waitBoot(vmId: string, atLeast: number, timeoutMs = BOOT_MS): Promise<number> {
    const re = new RegExp(`KUMO-BOOT vm=${vmId} boot=(\\d+)`, 'g');
    let last = '';
    try {
      return await waitFor(`${vmId} to print KUMO-BOOT boot>=${atLeast}`, async () => {
        last = await this.console(vmId);
        const boots = [...last.matchAll(re)].map((m) => Number(m[1]));
        const best = boots.length ? Math.max(...boots) : 0;
        return best >= atLeast ? best : null;
      }, timeoutMs, 1000);
    } catch (e) {
      throw new Error(`${(e as Error).message}; console tail:\n${last.slice(-1500)}`);
    }
  }

  /** The highest `KUMO-COUNTER n=` on the VM's console (through the API), 0 when none yet. */
  async counter(vmId: string): Promise<number> {
    const ns = [...(await this.console(vmId)).matchAll(/KUMO-COUNTER n=(\d+)/g)].map((m) => Number(m[1]));
    return ns.length ? Math.max(...ns) : 0;
  }

  /** Waits until the guest's counter passes `n`: its disk writes are acknowledged again and again. */
  counterPast(vmId: string, n: number): Promise<number> {
    return waitFor(`${vmId}'s counter to pass ${n}`, async () => {
      const c = await this.counter(vmId);
      return c > n ? c : null;
    }, BOOT_MS, 300);
  }

  vmDir(vmId: string): string { return join(this.runDir, vmId); }

  /** The pid of the VM's QEMU from its run directory, or null when none runs. */
  qemuPid(vmId: string): number | null { return findQemu(join(this.vmDir(vmId), 'qemu.pid')); }

  /** console.log as QEMU writes it into the run directory (kept after the VM stops). */
  consoleLog(vmId: string): string {
    try { return readFileSync(join(this.vmDir(vmId), 'console.log'), 'utf8'); } catch { return ''; }
  }

  /** The agent's JSON log lines (all agent runs append to the same file). */
  agentLogLines(): Record<string, unknown>[] {
    if (!existsSync(this.agentLog)) return [];
    return readFileSync(this.agentLog, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
      try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; }
    });
  }

  /** Every QEMU this cloud's agent started: by pidfile, and by a scan of /proc for our run dir (belt and braces). */
  qemuPids(): { vmId: string; pid: number }[] {
    const out = new Map<number, string>();
    for (const vmId of existsSync(this.runDir) ? readdirSync(this.runDir) : []) {
      const pid = this.qemuPid(vmId);
      if (pid !== null) out.set(pid, vmId);
    }
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const argv = procCmdline(Number(e));
      const i = argv?.indexOf('-pidfile') ?? -1;
      if (argv && i >= 0 && argv[i + 1]?.startsWith(this.runDir + '/') && isQemuFor(Number(e), argv[i + 1])) {
        out.set(Number(e), argv[i + 1].slice(this.runDir.length + 1).split('/')[0]);
      }
    }
    return [...out].map(([pid, vmId]) => ({ vmId, pid }));
  }

  /** The agent first (so no exit is reported), then each QEMU by pid, then the controller; the data goes. */
  async destroy(keep = false): Promise<void> {
    await this.agent?.stop().catch(() => undefined);
    for (const { vmId, pid } of this.qemuPids()) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await waitGone(pid, join(this.vmDir(vmId), 'qemu.pid'), 10_000);
    }
    for (const p of this.storage.values()) await p.stop().catch(() => undefined);
    await this.controller?.stop().catch(() => undefined);
    if (!keep) rmSync(this.data, { recursive: true, force: true });
  }
}

/** The tenant's /v1/events websocket, recording every event it receives. */
export class EventLog {
  readonly events: KumoEvent[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => { try { this.events.push(JSON.parse(d.toString()) as KumoEvent); } catch { /* not an event */ } });
  }

  static open(c: QemuCloud, who: 'admin' | 'tenant' = 'tenant'): Promise<EventLog> {
    const ws = new WebSocket(`${c.url.replace(/^http/, 'ws')}/v1/events`, { headers: { authorization: `Bearer ${c.creds[who].key}` } });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new EventLog(ws)));
      ws.once('error', reject);
    });
  }

  find(kind: string, resourceId: string, afterSeq = 0): KumoEvent | undefined {
    return this.events.find((e) => e.kind === kind && e.resourceId === resourceId && e.seq > afterSeq);
  }

  get lastSeq(): number { return this.events.reduce((m, e) => Math.max(m, e.seq), 0); }

  close(): void { this.ws.close(); }
}

export { sleep, waitFor };
