import Fastify, { type FastifyInstance } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import type { ComputeDriver, LaunchSpec, VmReport, VmSpec } from '../compute/driver.js';
import type { Logger } from 'pino';
import { consoleRoutes } from './console-routes.js';
import type { AgentStorage } from './storage.js';
import { relocateRoutes } from './relocate-routes.js';
import { migrationRoutes } from './migration-routes.js';
import { AgentMetadata } from './metadata.js';
import type { MetadataLink } from '../metadata/link.js';
import {
  AGENT_PATHS, CONTROLLER_PATHS, type ExitBody, type HeartbeatBody, type MetadataBody, type RegisterBody, type RegisterReply, type StartBody, type StopBody,
} from './protocol.js';

export interface AgentOptions {
  controllerUrl: string; joinToken: string; zone: string; listen: { host: string; port: number };
  /** Public URL the controller calls; defaults to http://listen. */
  advertiseUrl?: string;
  hosts: { name: string; vcpus: number; memoryMiB: number; architectures: string[]; driver: ComputeDriver }[];
  heartbeatMs?: number; log: Logger;
  /** Volumes over NBD and image kernels for real hosts; without it disks are pathless (sim). */
  storage?: AgentStorage;
  /** Where incoming live migrations listen; default the listen host. */
  migrationHost?: string;
  /** How guests reach the metadata service; absent or null: they do not (sim hosts, missing tools). */
  metadataLink?: MetadataLink | null;
  /** Agent state (metadata link addresses and DHCP, seed ISOs); required with metadataLink or nocloudSeed. */
  dataDir?: string;
  /** Every VM started here also gets a NoCloud seed ISO as a CD-ROM (guests that boot without network). */
  nocloudSeed?: boolean;
}

/** Without storage every disk is pathless: enough for the sim driver, which keeps no data. */
const pathless = async (spec: VmSpec): Promise<LaunchSpec> =>
  ({ ...spec, disks: spec.disks.map((d) => ({ ...d, source: { kind: 'file', path: '' } })) });

/**
 * The agent: serves the controller's idempotent VM operations on its drivers, registers its hosts,
 * and reports what runs (heartbeat) and what stopped by itself (exit events).
 */
export class Agent {
  private app: FastifyInstance | null = null;
  private nodeToken = '';
  private readonly drivers = new Map<string, ComputeDriver>();
  private timer: NodeJS.Timeout | null = null;
  url = '';
  readonly metadata: AgentMetadata;

  constructor(private readonly o: AgentOptions) {
    this.metadata = new AgentMetadata({
      controllerUrl: o.controllerUrl, token: () => this.nodeToken, link: o.metadataLink ?? null, dataDir: o.dataDir ?? '', log: o.log,
    });
  }

  /** The seed goes on every launch, incoming migrations too: QEMU migrates only between identical device sets. */
  private async withSeed(launch: LaunchSpec): Promise<LaunchSpec> {
    return this.o.nocloudSeed ? { ...launch, seed: await this.metadata.seedIso(launch.vmId) } : launch;
  }

  /** A VM runs here (started, adopted or arrived by migration): its guest reaches the metadata service. */
  private async serveMetadata(hostId: string, vmId: string): Promise<void> {
    const d = this.drivers.get(hostId);
    try {
      await this.metadata.attach(vmId, (await d?.nicDevices?.(vmId)) ?? []);
    } catch (e) {
      this.o.log.warn({ vmId, err: (e as Error).message }, 'the VM runs without the metadata service');
    }
  }

  async start(): Promise<void> {
    const app = Fastify({ logger: false, bodyLimit: 1 << 20 });
    this.app = app;
    app.addHook('onRequest', async (req, reply) => {
      const got = Buffer.from(req.headers.authorization ?? '');
      const want = Buffer.from(`Bearer ${this.nodeToken}`);
      if (!this.nodeToken || got.length !== want.length || !timingSafeEqual(got, want)) return reply.code(401).send({ error: 'bad node token' });
    });
    const driver = (hostId: string) => {
      const d = this.drivers.get(hostId);
      if (!d) throw Object.assign(new Error(`this agent does not serve ${hostId}`), { statusCode: 404 });
      return d;
    };
    app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
      this.o.log.warn({ err: err.message }, 'agent operation failed');
      reply.code(err.statusCode && err.statusCode < 500 ? err.statusCode : 500).send({ error: err.message });
    });
    type P = { Params: { hostId: string; vmId: string } };
    app.post<P & { Body: StartBody }>(AGENT_PATHS.start(':hostId', ':vmId'), async (req) => {
      const { hostId, vmId } = req.params;
      this.o.log.info({ vmId, hostId }, 'starting VM');
      const d = driver(hostId);
      const spec = { ...req.body, vmId };
      const storage = this.o.storage;
      if (!storage) { await d.start(await pathless(spec)); return {}; }
      const launch = await this.withSeed(await storage.launch(hostId, spec));
      try {
        await d.start(launch);
      } catch (e) {
        if (!(await d.list()).some((v) => v.vmId === vmId)) await storage.frontend.detach(vmId);
        throw e;
      }
      await this.serveMetadata(hostId, vmId);
      return {};
    });
    app.post<P & { Body: StopBody }>(AGENT_PATHS.stop(':hostId', ':vmId'), async (req) => {
      this.o.log.info({ vmId: req.params.vmId, force: req.body.force }, 'stopping VM');
      await driver(req.params.hostId).stop(req.params.vmId, req.body);
      await this.o.storage?.frontend.detach(req.params.vmId);
      await this.metadata.detach(req.params.vmId);
      return {};
    });
    app.put<P & { Body: MetadataBody }>(AGENT_PATHS.metadata(':hostId', ':vmId'), async (req) => {
      driver(req.params.hostId);
      if (req.body?.vmId !== req.params.vmId) throw Object.assign(new Error('metadata for another VM'), { statusCode: 400 });
      return this.metadata.update(req.params.vmId, req.body);
    });
    app.post<P>(AGENT_PATHS.reset(':hostId', ':vmId'), async (req) => {
      this.o.log.info({ vmId: req.params.vmId }, 'resetting VM');
      await driver(req.params.hostId).reset(req.params.vmId);
      return {};
    });
    app.get<P>(AGENT_PATHS.list(':hostId'), async (req): Promise<VmReport[]> => driver(req.params.hostId).list());
    if (this.o.storage) {
      this.o.storage.bindToken(() => this.nodeToken);
      await relocateRoutes(app, this.o.storage.frontend, this.o.log);
    }
    await consoleRoutes(app, driver);
    await migrationRoutes(app, {
      driver, storage: this.o.storage, migrationHost: this.o.migrationHost ?? this.o.listen.host, pathless, log: this.o.log,
      arrived: (hostId, vmId) => this.serveMetadata(hostId, vmId),
      withSeed: (launch) => this.withSeed(launch),
    });
    await app.listen({ host: this.o.listen.host, port: this.o.listen.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.o.listen.port;
    this.url = this.o.advertiseUrl ?? `http://${this.o.listen.host}:${port}`;
    await this.register();
    for (const [hostId, d] of this.drivers) {
      for (const v of await d.list()) if (v.power === 'running') await this.serveMetadata(hostId, v.vmId);
    }
    await this.o.storage?.frontend.start(async (hostId) => new Set((await this.drivers.get(hostId)?.list() ?? []).filter((v) => v.power === 'running').map((v) => v.vmId)));
    this.timer = setInterval(() => void this.heartbeat(), this.o.heartbeatMs ?? 5000);
    this.timer.unref();
  }

  /** Retries until the controller answers: an agent may start before its controller. */
  private async register(): Promise<void> {
    const body: RegisterBody = {
      zone: this.o.zone, url: this.url, driver: this.o.hosts[0].driver.name, accel: this.o.hosts[0].driver.accel,
      hosts: this.o.hosts.map(({ name, vcpus, memoryMiB, architectures }) => ({ name, vcpus, memoryMiB, architectures })),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(this.o.controllerUrl + CONTROLLER_PATHS.register, {
          method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${this.o.joinToken}` }, body: JSON.stringify(body),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
        const reply = JSON.parse(text) as RegisterReply;
        this.nodeToken = reply.nodeToken;
        for (const h of reply.hosts) {
          const d = this.o.hosts.find((x) => x.name === h.name)!.driver;
          if (!this.drivers.has(h.hostId)) d.onExit((vmId, reason) => void this.exited({ hostId: h.hostId, vmId, reason }));
          this.drivers.set(h.hostId, d);
        }
        this.o.log.info({ controller: this.o.controllerUrl, hosts: reply.hosts.length, url: this.url }, 'registered with the controller');
        return;
      } catch (e) {
        if (attempt === 1 || attempt % 10 === 0) this.o.log.warn({ err: (e as Error).message, attempt }, 'cannot register with the controller yet; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * attempt)));
      }
    }
  }

  private async post(path: string, body: unknown): Promise<Response> {
    return fetch(this.o.controllerUrl + path, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${this.nodeToken}` }, body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  }

  private async heartbeat(): Promise<void> {
    try {
      const body: HeartbeatBody = { hosts: await Promise.all([...this.drivers].map(async ([hostId, d]) => ({ hostId, vms: await d.list() }))) };
      const res = await this.post(CONTROLLER_PATHS.heartbeat, body);
      await res.text().catch(() => '');
      // A controller that lost our token (restored store, new controller) gets a fresh registration.
      if (res.status === 401) await this.register();
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'heartbeat to the controller failed');
    }
  }

  private async exited(b: ExitBody): Promise<void> {
    this.o.log.info(b, 'VM stopped by itself');
    await this.metadata.detach(b.vmId).catch((e: Error) => this.o.log.warn({ vmId: b.vmId, err: e.message }, 'could not detach the metadata service of a stopped VM'));
    await this.o.storage?.frontend.detach(b.vmId).catch((e: Error) => this.o.log.warn({ vmId: b.vmId, err: e.message }, 'could not close the volumes of a stopped VM'));
    try { await this.post(CONTROLLER_PATHS.exit, b); } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'could not report a VM exit; the next heartbeat will');
    }
  }

  /** Stops serving; the VMs keep running and a restarted agent adopts them. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.app?.close();
    await this.metadata.close();
    await this.o.storage?.frontend.close();
    await Promise.all([...new Set(this.o.hosts.map((h) => h.driver))].map((d) => d.close()));
  }
}
