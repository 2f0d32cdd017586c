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
 * More agents can join (startAgent({name, zone})): each is another host — its own --host, --data
 * and --listen port — on this machine, in the same zone or another, for migration and drain tests.
 * Their volumes come from the storage nodes over TCP like the main agent's.
 *
 * Every process started here is stopped by its pid: the kumo processes through KumoProc, the seed's
 * agent child by the pid /proc lists for it, and the QEMUs by the pids in the agents' run
 * directories (`<agent data>/vms/<vmId>/qemu.pid`, checked against /proc/PID/cmdline).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { findQemu, isQemuFor, procCmdline, waitGone } from '../../src/compute/qemu/process.js';
import { tapName } from '../../src/compute/qemu/taps.js';
import { LinuxMetadataLink } from '../../src/sdn/linux/metadata-link.js';
import { freePort, KumoProc, waitFor } from '../api/support.js';
import { Cloud, rest, type Creds } from '../helpers/cloud.js';
import { Images } from '../../src/services/images.js';
import { SYSTEM } from '../../src/services/principal.js';
import { openDb } from '../../src/state/db.js';
import { say } from '../helpers/say.js';

export const BOOT_MS = 240_000; // a TCG boot on two loaded cores can take minutes; this is a wait, not a measure
export const TINY_IMAGE = 'tiny-linux';
/** A VM type the e2e controller adds: a 1 GiB system disk, so whole-volume copies stay short. */
export const SMALL_DISK_TYPE = 'be.1g';
/** 128 MiB of RAM and a 1 GiB disk: the least a migration has to copy. */
export const TINY_TYPE = 'be.128m';

export interface RequestInfo {
  requestId: string; method: string; resourceId: string; status: string; progress: number; message: string; result: unknown;
  error: { code?: number; message?: string }; createdAt: string; startedAt: string; finishedAt: string;
}
export interface KumoEvent { seq: number; tenantId: string | null; kind: string; resourceId: string; data: Record<string, unknown>; at: string }
export interface HostInfo { hostId: string; name: string; zone: string; memoryMiB: number; vcpus: number; status: string; driver: string; lastSeen: string }
export interface StorageNodeInfo { nodeId: string; name: string; zone: string; status: string; address: string; lastSeen: string }
export interface VolumeLocation { nodeId: string; zone: string; inSync: number; syncing: number; outOfSync: number }

export { say };

/** Pids of the children of `pid` (one level), from /proc. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export type ImageRegistration = Parameters<Images['register']>[1];

export interface VmInfo {
  vmId: string; name: string; type: string; status: string; power: string; zone: string; host: string; memoryMiB: number;
  disks: { slot: number; volumeId: string; sizeGiB: number }[]; nics: { slot: number; networkId: string; mac: string; ipAddresses: string[] }[];
}

export interface AgentOptions {
  /** Host name, unique in its zone; it also names the agent's data dir (DATA/agent-<name>) and log. */
  name: string;
  zone?: string;
  /** A storage node `<name>-storage` inside the agent (`--storage-data`): a hyperconverged host. */
  storage?: boolean;
  vcpus?: number;
  memoryMiB?: number;
  /** More `kumo agent` flags, appended as given. */
  args?: string[];
}

/**
 * One `kumo agent --driver qemu`, i.e. one host. Every start uses the same --data, --host, --zone and
 * --listen, so a restarted agent is the same host and finds its QEMUs again.
 */
export class QemuAgent {
  proc: KumoProc | null = null;
  hostId = '';
  private starts = 0;

  constructor(private readonly c: QemuCloud, readonly name: string, readonly zone: string, readonly data: string, readonly logFile: string,
    readonly port: number, readonly storageNode: string | null, private readonly args: string[]) {}

  get runDir(): string { return join(this.data, 'vms'); }
  get running(): boolean { return this.proc?.running ?? false; }

  /** Starts the agent and waits until its host is up, registered by this run. */
  async start(): Promise<this> {
    if (this.running) throw new Error(`agent ${this.name} already runs`);
    const previous = await this.host().catch(() => null);
    this.starts++;
    this.proc = new KumoProc(`agent ${this.name}#${this.starts}`, ['agent', '--driver', 'qemu', '--controller', this.c.url, '--zone', this.zone, '--host', this.name,
      '--listen', `127.0.0.1:${this.port}`, '--data', this.data, '--join-token-file', join(this.c.data, 'join-token'), '--log', this.logFile,
      ...(this.storageNode ? ['--storage-data', this.c.storageDir(this.storageNode), '--storage-name', this.storageNode, '--storage-listen', '127.0.0.1:0'] : []),
      ...this.args]);
    await this.proc.waitForOutput(/(serving at)/, 60_000);
    // Registration happens before "serving at" is printed; the main host's row named the seed's sim driver until now.
    const h = await waitFor(`host ${this.name} (${this.zone}) to be up`, async () => {
      const x = await this.host().catch(() => null);
      return x && x.driver === 'qemu' && x.status === 'up' && (!previous || x.lastSeen !== previous.lastSeen) ? x : null;
    }, 30_000, 200);
    this.hostId = h.hostId;
    return this;
  }

  /** SIGTERM (orderly; it lets go of its QEMUs, which run on) or SIGKILL (a crash). */
  async stop(sig: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p) return;
    if (sig === 'SIGKILL') await p.kill9();
    else await p.stop();
    this.proc = null;
  }

  async host(): Promise<HostInfo> {
    const r = await this.c.rest('admin', 'GET', '/hosts');
    if (r.status !== 200) throw new Error(`GET /hosts: ${r.status} ${JSON.stringify(r.body)}`);
    const h = (r.body as HostInfo[]).find((x) => x.name === this.name && x.zone === this.zone);
    if (!h) throw new Error(`no host ${this.name} in ${this.zone}`);
    return h;
  }

  vmDir(vmId: string): string { return join(this.runDir, vmId); }

  /** The pid of the VM's QEMU on this host, from its run directory, or null when none runs here. */
  qemuPid(vmId: string): number | null { return findQemu(join(this.vmDir(vmId), 'qemu.pid')); }

  /** console.log as QEMU writes it into the run directory (kept after the VM stops). */
  consoleLog(vmId: string): string {
    try { return readFileSync(join(this.vmDir(vmId), 'console.log'), 'utf8'); } catch { return ''; }
  }

  /** The agent's JSON log lines (every run of it appends to the same file). */
  logLines(): Record<string, unknown>[] {
    if (!existsSync(this.logFile)) return [];
    return readFileSync(this.logFile, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
      try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; }
    });
  }
}

export class QemuCloud {
  readonly data: string;
  readonly host = hostname();
  readonly zone = 'zone-1';
  /** Not started: it only reads credentials.json (rewritten with the URL by each controller start) for `rest()`. */
  readonly cloud: Cloud;
  controller: KumoProc | null = null;
  /** Every agent by host name; the main one (the seed's host name, DATA/qemu-agent) is created by start(). */
  readonly agents = new Map<string, QemuAgent>();
  /** Storage node processes by name; the first is the seed's (`<host>-storage`, data in DATA/storage), taken over like the host. */
  readonly storage = new Map<string, KumoProc>();
  readonly mainStorage = `${hostname()}-storage`;
  url = '';
  imageId = '';
  readonly variants = new Map<string, string>();
  /** The controller's flags beyond the fixed ones, as of its last start. */
  controllerArgs: string[] = [];
  // Fixed, so agents and storage nodes keep their --controller URL across controller restarts.
  private controllerPort = 0;
  private controllerStarts = 0;

  /**
   * `hyperconverged`: the main storage node (`<host>-storage`, DATA/storage, as `kumo up` runs it)
   * runs inside the main QEMU agent (`kumo agent --storage-data`) instead of as a process of its own.
   */
  constructor(prefix = 'kumo-e2e-', readonly hyperconverged = false) {
    this.data = mkdtempSync(join(tmpdir(), prefix));
    this.cloud = new Cloud(this.data, []);
  }

  get creds(): Creds { return this.cloud.creds; }
  /** The main agent (the one the single-host tests use); throws before start(). */
  get main(): QemuAgent {
    const a = this.agents.get(this.host);
    if (!a) throw new Error('the cloud is not started');
    return a;
  }
  get agent(): KumoProc | null { return this.agents.get(this.host)?.proc ?? null; }
  get agentData(): string { return join(this.data, 'qemu-agent'); }
  get runDir(): string { return join(this.agentData, 'vms'); }
  get agentLog(): string { return join(this.data, 'logs', 'qemu-agent.log'); }

  /**
   * `variants`: more kernel-boot images made from tiny-linux's files with words appended to its
   * kernel command line (e.g. `kumo.counter=1`), registered in the store between the seed and the
   * controller start (nothing else has the store open then). Their ids land in `variants`.
   * `vmTypes`: catalog entries added beside SMALL_DISK_TYPE and TINY_TYPE. `controllerArgs`: more
   * `kumo controller` flags.
   */
  async start(o: { variants?: Record<string, string>; vmTypes?: object[]; controllerArgs?: string[]; images?: ImageRegistration[]; agentArgs?: string[] } = {}): Promise<void> {
    await this.seed();
    for (const [name, words] of Object.entries(o.variants ?? {})) this.variants.set(name, await this.registerVariant(name, words));
    for (const image of o.images ?? []) this.variants.set(image.name, await this.registerImage(image));
    writeFileSync(join(this.data, 'vm-types.json'), JSON.stringify([
      { type: SMALL_DISK_TYPE, vcpus: 1, memoryMiB: 256, systemDiskGiB: 1, resourceType: 'best-effort' },
      { type: TINY_TYPE, vcpus: 1, memoryMiB: 128, systemDiskGiB: 1, resourceType: 'best-effort' },
      ...(o.vmTypes ?? []),
    ]));
    this.controllerPort = await freePort();
    await this.startController(o.controllerArgs ?? []);
    if (!this.hyperconverged) await this.startStorageNode(this.mainStorage);
    const main = new QemuAgent(this, this.host, this.zone, this.agentData, this.agentLog, await freePort(),
      this.hyperconverged ? this.mainStorage : null, o.agentArgs ?? []);
    this.agents.set(this.host, main);
    await main.start();
  }

  /** Starts `kumo controller` on the store (same port every time) with `args` beyond the fixed flags. */
  async startController(args: string[] = this.controllerArgs): Promise<void> {
    if (this.controller?.running) throw new Error('the controller already runs');
    this.controllerArgs = args;
    this.controllerStarts++;
    this.controller = new KumoProc(`controller#${this.controllerStarts}`, ['controller', '--data', this.data, '--port', String(this.controllerPort), '--listen', '127.0.0.1',
      '--vm-types', join(this.data, 'vm-types.json'), '--log', join(this.data, 'logs', 'controller-e2e.log'), ...args]);
    this.url = await this.controller.waitForOutput(/REST: +(http:\/\/\S+)\/v1/, 60_000);
  }

  /** Stops the controller (SIGTERM) and starts it again with `args`; agents and nodes keep running and reconnect. */
  async restartController(args: string[] = this.controllerArgs): Promise<void> {
    await this.controller?.stop();
    this.controller = null;
    await this.startController(args);
    await waitFor('every running agent\'s host to be up after the controller restart', async () => {
      const r = await this.rest('admin', 'GET', '/hosts').catch(() => null);
      if (r?.status !== 200) return null;
      const hosts = r.body as HostInfo[];
      return [...this.agents.values()].filter((a) => a.running).every((a) => hosts.some((h) => h.hostId === a.hostId && h.status === 'up')) || null;
    }, 30_000, 200);
  }

  private registerVariant(name: string, words: string): Promise<string> {
    const dir = join(this.data, 'images', this.imageId);
    return this.registerImage({
      name, os: 'linux', kind: 'tiny', disk: join(dir, 'disk.raw'),
      files: [{ name: 'vmlinux', path: join(dir, 'vmlinux') }, { name: 'initrd.img', path: join(dir, 'initrd.img') }],
      boot: { kernel: 'vmlinux', initrd: 'initrd.img', append: `console=ttyS0 quiet ${words}` },
    });
  }

  /** Registers an image in the store before the controller starts (as `kumo up` does for tiny-linux). */
  private async registerImage(image: ImageRegistration): Promise<string> {
    const db = await openDb(`sqlite:${join(this.data, 'kumo.db')}`);
    try {
      const images = new Images(db);
      images.setDataDir(this.data);
      return (await images.register(SYSTEM, image)).imageId;
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
    return (await this.vm(vmId)).disks.find((d) => d.slot === 0)!.volumeId;
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

  /**
   * Without options: (re)starts the main agent, as the single-host tests do. With options: starts
   * the agent of host `name` — created on first use with its own data dir, log and listen port,
   * the same ones on every later start — and returns it once its host is up.
   */
  async startAgent(o?: AgentOptions): Promise<QemuAgent> {
    if (!o || o.name === this.host) return this.main.start();
    let a = this.agents.get(o.name);
    if (!a) {
      const zone = o.zone ?? this.zone;
      if ([...this.agents.values()].some((x) => x.name === o.name)) throw new Error(`host ${o.name} exists`);
      a = new QemuAgent(this, o.name, zone, join(this.data, `agent-${o.name}`), join(this.data, 'logs', `agent-${o.name}.log`), await freePort(),
        o.storage ? `${o.name}-storage` : null,
        [...(o.vcpus ? ['--vcpus', String(o.vcpus)] : []), ...(o.memoryMiB ? ['--memory-mib', String(o.memoryMiB)] : []), ...(o.args ?? [])]);
      this.agents.set(o.name, a);
    }
    return a.start();
  }

  /** Stops an agent process alone (the main one by default): SIGTERM (orderly) or SIGKILL (a crash). */
  async stopAgent(sig: 'SIGTERM' | 'SIGKILL', name = this.host): Promise<void> {
    await this.agents.get(name)?.stop(sig);
  }

  /** The main host's row. */
  async hostRow(): Promise<HostInfo> { return this.main.host(); }

  async hosts(): Promise<(HostInfo & { maintenance: boolean; vms: number })[]> {
    const r = await this.rest('admin', 'GET', '/hosts');
    if (r.status !== 200) throw new Error(`GET /hosts: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as (HostInfo & { maintenance: boolean; vms: number })[];
  }

  /** getHostInfo (admin): the row and the VMs placed on the host. */
  async hostInfo(hostId: string): Promise<HostInfo & { maintenance: boolean; vmList: { vmId: string; status: string }[] }> {
    const r = await this.rest('admin', 'GET', `/hosts/${hostId}`);
    if (r.status !== 200) throw new Error(`GET /hosts/${hostId}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as HostInfo & { maintenance: boolean; vmList: { vmId: string; status: string }[] };
  }

  /** The agent of a host id (throws for a host no agent of ours serves). */
  agentOf(hostId: string): QemuAgent {
    const a = [...this.agents.values()].find((x) => x.hostId === hostId);
    if (!a) throw new Error(`no agent of this cloud serves ${hostId}`);
    return a;
  }

  rest(who: 'admin' | 'tenant', method: string, path: string, body?: unknown) {
    return rest(this.cloud, who, method, path, body);
  }

  async vm(vmId: string): Promise<VmInfo> {
    const r = await this.rest('tenant', 'GET', `/vms/${vmId}`);
    if (r.status !== 200) throw new Error(`GET /vms/${vmId}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as VmInfo;
  }

  /** POSTs an async VM operation and returns its request id (throws on anything but 202). */
  async submit(vmId: string, op: 'power-on' | 'power-off' | 'reset' | 'restore-image', body: unknown = {}): Promise<string> {
    const r = await this.rest('tenant', 'POST', `/vms/${vmId}/${op}`, body);
    if (r.status !== 202) throw new Error(`${op} ${vmId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { requestId: string }).requestId;
  }

  /** migrateVm: `target` as the API takes it ({} lets the scheduler choose); returns the request id. */
  async migrate(vmId: string, target: { host?: string; zone?: string; followStorage?: boolean } = {}): Promise<string> {
    // Naming the destination host is for administrators; a zone or the scheduler's choice is the tenant's.
    // REST takes an operation's single struct parameter as the whole body.
    const r = await this.rest(target.host ? 'admin' : 'tenant', 'POST', `/vms/${vmId}/migrate`, target);
    if (r.status !== 202) throw new Error(`migrate ${vmId} to ${JSON.stringify(target)}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { requestId: string }).requestId;
  }

  /** drainHost (admin); returns the request id. */
  async drain(hostId: string): Promise<string> {
    const r = await this.rest('admin', 'POST', `/hosts/${hostId}/drain`);
    if (r.status !== 202) throw new Error(`drain ${hostId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { requestId: string }).requestId;
  }

  async setMaintenance(hostId: string, maintenance: boolean): Promise<void> {
    const r = await this.rest('admin', 'PUT', `/hosts/${hostId}/maintenance`, { maintenance });
    if (r.status !== 204) throw new Error(`maintenance ${hostId}=${maintenance}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }

  async request(requestId: string, who: 'admin' | 'tenant' = 'tenant'): Promise<RequestInfo> {
    const r = await this.rest(who, 'GET', `/requests/${requestId}`);
    if (r.status !== 200) throw new Error(`GET /requests/${requestId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as RequestInfo;
  }

  /** cancelRequest; returns the HTTP status with the body (204 and nothing when accepted). */
  cancel(requestId: string) {
    return this.rest('tenant', 'POST', `/requests/${requestId}/cancel`);
  }

  /** waitRequest (long-poll) until the request ends. */
  async wait(requestId: string, timeoutMs = BOOT_MS, who: 'admin' | 'tenant' = 'tenant'): Promise<RequestInfo> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      const r = await this.rest(who, 'GET', `/requests/${requestId}/wait?timeoutSeconds=${Math.min(left, 30)}`);
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
  counterPast(vmId: string, n: number, timeoutMs = BOOT_MS): Promise<number> {
    return waitFor(`${vmId}'s counter to pass ${n}`, async () => {
      const c = await this.counter(vmId);
      return c > n ? c : null;
    }, timeoutMs, 300);
  }

  vmDir(vmId: string): string { return this.main.vmDir(vmId); }

  /** The pid of the VM's QEMU on the main host, or null when none runs there. */
  qemuPid(vmId: string): number | null { return this.main.qemuPid(vmId); }

  consoleLog(vmId: string): string { return this.main.consoleLog(vmId); }

  agentLogLines(): Record<string, unknown>[] { return this.main.logLines(); }

  /**
   * Every QEMU any agent of this cloud started: by pidfile, and by a scan of /proc for a -pidfile
   * under our data dir (belt and braces: an incoming QEMU may sit elsewhere in a run dir).
   */
  qemuPids(): { vmId: string; pid: number; agent: string }[] {
    return this.qemus().map(({ vmId, pid, agent }) => ({ vmId, pid, agent }));
  }

  private qemus(): { vmId: string; pid: number; agent: string; pidfile: string }[] {
    const out = new Map<number, { vmId: string; agent: string; pidfile: string }>();
    for (const a of this.agents.values()) {
      for (const vmId of existsSync(a.runDir) ? readdirSync(a.runDir) : []) {
        const pid = a.qemuPid(vmId);
        if (pid !== null) out.set(pid, { vmId, agent: a.name, pidfile: join(a.vmDir(vmId), 'qemu.pid') });
      }
    }
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const argv = procCmdline(Number(e));
      const i = argv?.indexOf('-pidfile') ?? -1;
      const pidfile = i >= 0 ? argv![i + 1] : undefined;
      if (!pidfile?.startsWith(this.data + '/') || !isQemuFor(Number(e), pidfile)) continue;
      const a = [...this.agents.values()].find((x) => pidfile.startsWith(x.runDir + '/'));
      out.set(Number(e), { vmId: a ? pidfile.slice(a.runDir.length + 1).split('/')[0] : basename(dirname(pidfile)), agent: a?.name ?? '?', pidfile });
    }
    return [...out].map(([pid, q]) => ({ pid, ...q }));
  }

  /** Names of the network interfaces of this machine (`ip -j link show`). */
  links(): string[] {
    return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
  }

  /**
   * The tap devices named after the VM: every NIC slot and every name variant (a migration's
   * destination on this same kernel uses another prefix than `kt`), on any host of this machine.
   */
  vmTaps(vmId: string): string[] {
    const own = tapName(vmId, 0);
    const hex = own.slice(2, -1);
    return this.links().filter((n) => n.length === own.length && n.startsWith('k') && n.slice(2, -1) === hex);
  }

  /** Agents first (so no exit is reported), then each QEMU by pid, the VMs' taps, storage, the controller; the data goes. */
  async destroy(keep = false): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop().catch(() => undefined)));
    const vmIds = new Set<string>();
    for (const { vmId, pid, pidfile } of this.qemus()) {
      vmIds.add(vmId);
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await waitGone(pid, pidfile, 10_000);
    }
    // The agents delete taps when their VMs stop; with the agents gone first, ours are left to us.
    for (const a of this.agents.values()) for (const vmId of existsSync(a.runDir) ? readdirSync(a.runDir) : []) vmIds.add(vmId);
    for (const a of this.agents.values()) await detachMetadata(a.data);
    for (const vmId of vmIds) {
      for (const tap of (() => { try { return this.vmTaps(vmId); } catch { return []; } })()) {
        try { execFileSync('ip', ['link', 'delete', 'dev', tap], { stdio: 'ignore' }); } catch { /* gone meanwhile */ }
      }
    }
    for (const p of this.storage.values()) await p.stop().catch(() => undefined);
    await this.controller?.stop().catch(() => undefined);
    if (!keep) rmSync(this.data, { recursive: true, force: true });
  }
}

/**
 * The metadata links an agent left (its DHCP servers by pid, its nft elements and routes): what
 * the agent would have undone had its VMs stopped while it ran.
 */
async function detachMetadata(agentData: string): Promise<void> {
  const dir = join(agentData, 'metadata');
  const link = new LinuxMetadataLink({ dir: join(dir, 'dhcp'), log: { info: () => {}, warn: () => {} } });
  for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.address')) : []) {
    const vmId = f.slice(0, -'.address'.length);
    const address = readFileSync(join(dir, f), 'utf8').trim();
    for (const variant of [0, 1] as const) await link.detach(vmId, tapName(vmId, 0, variant), address).catch(() => {});
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
