/**
 * The agent's metadata service: one responder (metadata/responder.ts) for the host's VMs, behind
 * one 127.0.0.1 listener per VM; the link (metadata/link.ts) steers each VM's first NIC to its own
 * listener, so the port a request arrives on is the only thing that says which VM asks.
 * Metadata comes from the controller — pushed on every init-API change, fetched on a miss (after an
 * agent restart or a migration) and refetched after CACHE_MS so a lost push delays, never loses.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { NicDevice } from '../compute/driver.js';
import { limited } from '../core/limit.js';
import { pickGuestAddress, vmFileName, type MetadataLink } from '../metadata/link.js';
import { buildSeedIso } from '../metadata/nocloud.js';
import { metadataHandler, type MetadataResponder } from '../metadata/responder.js';
import type { VmMetadata } from '../metadata/types.js';
import { fromWire, type MetadataBody } from '../metadata/wire.js';
import { CONTROLLER_PATHS, type AppliedBody, type GuestPolling } from './protocol.js';

const CACHE_MS = 30_000;
/** Controller fetches at once: a cold boot storm queues here instead of overflowing the controller's accept queue. */
const FETCHES = 16;

export interface AgentMetadataOptions {
  controllerUrl: string;
  token: () => string;
  /** null: guests are not connected to the service (sim hosts, or ip/nft/dnsmasq missing — said once at start). */
  link: MetadataLink | null;
  dataDir: string;
  log: Logger;
}

interface Served {
  server: http.Server; port: number; device: string; guestAddress: string;
  /** When the listener opened (the VM started here, arrived, or the agent restarted). */
  since: number;
  /** The guest has asked kumo's guest-agent endpoints since then (a cloud-init guest never does). */
  polled: boolean;
}

/** Stops a listener and drops its connections, long-polls included. */
function shut(server: http.Server): void {
  server.close();
  server.closeAllConnections();
}

export class AgentMetadata {
  readonly responder: MetadataResponder;
  private readonly served = new Map<string, Served>();
  private readonly byPort = new Map<number, string>();
  private readonly cache = new Map<string, { md: Promise<VmMetadata | null>; until: number }>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: AgentMetadataOptions) {
    this.responder = metadataHandler({
      identify: async (req) => this.byPort.get(req.socket.localPort ?? -1) ?? null,
      lookup: (vmId) => this.lookup(vmId),
      secret: randomBytes(32),
      onApplied: (vmId, generation) => this.applied(vmId, generation),
    });
  }

  /** Connects the VM's first NIC to its listener; repeated after an agent restart or a migration. */
  attach(vmId: string, nics: NicDevice[]): Promise<void> {
    const first = [...nics].sort((a, b) => a.slot - b.slot)[0];
    if (!first || !this.o.link) return Promise.resolve();
    const link = this.o.link;
    // One at a time: two VMs must not pick the same free address.
    const next = this.chain.then(async () => {
      const s = await this.listen(vmId, first.device, () => this.guestAddress(vmId, link));
      await link.attach({ vmId, device: first.device, mac: first.mac, guestAddress: s.guestAddress, port: s.port });
      this.o.log.info({ vmId, device: first.device, guestAddress: s.guestAddress, port: s.port }, 'metadata service attached');
      void this.lookup(vmId);
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** Queued behind any attach in flight, so a VM stopped right after it started leaves nothing behind. */
  detach(vmId: string): Promise<void> {
    const next = this.chain.then(async () => {
      const s = this.served.get(vmId);
      this.cache.delete(vmId);
      if (!s) return;
      this.served.delete(vmId);
      this.byPort.delete(s.port);
      shut(s.server);
      await this.o.link?.detach(vmId, s.device, s.guestAddress);
      await rm(this.stateFile(vmId), { force: true });
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** A pushed change: the VM's pending long-polls answer now. Says whether a guest agent will confirm it. */
  update(vmId: string, body: MetadataBody): GuestPolling {
    this.cache.set(vmId, { md: Promise.resolve(fromWire(body)), until: Date.now() + CACHE_MS });
    this.responder.notify(vmId);
    const s = this.served.get(vmId);
    return s ? { polled: s.polled, servedMs: Date.now() - s.since } : { polled: false, servedMs: null };
  }

  /** Stops serving; the VMs and their DHCP keep running, and a restarted agent attaches them again. */
  async close(): Promise<void> {
    this.responder.close();
    for (const s of this.served.values()) shut(s.server);
    this.served.clear();
    this.byPort.clear();
  }

  /**
   * The VM's NoCloud seed ISO, written now from its current metadata: for guests that boot
   * without network (`kumo agent --nocloud-seed`). Init-API changes after the start reach such a
   * guest only through the network service.
   */
  async seedIso(vmId: string): Promise<string> {
    const md = await this.lookup(vmId);
    if (!md) throw new Error(`no metadata for ${vmId}: the controller does not place it on this agent`);
    const dir = join(this.o.dataDir, 'metadata', 'seeds');
    await mkdir(dir, { recursive: true });
    const iso = join(dir, `${vmFileName(vmId)}.iso`);
    await buildSeedIso(md, iso);
    return iso;
  }

  /** The port for a VM (its listener), for tests and the boot-storm bench that connect without a link. */
  portOf(vmId: string): number | undefined {
    return this.served.get(vmId)?.port;
  }

  /** Opens the VM's listener (once); the link may be absent (bench, sim). */
  async listen(vmId: string, device: string, address: () => Promise<string> = async () => ''): Promise<Served> {
    const had = this.served.get(vmId);
    if (had) return had;
    const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      if (req.url?.startsWith('/kumo/')) s.polled = true;
      this.responder.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
    const s: Served = { server, port: (server.address() as AddressInfo).port, device, guestAddress: await address(), since: Date.now(), polled: false };
    this.served.set(vmId, s);
    this.byPort.set(s.port, vmId);
    return s;
  }

  private stateFile(vmId: string) { return join(this.o.dataDir, 'metadata', `${vmFileName(vmId)}.address`); }

  /** The guest keeps its address across agent restarts: it is saved; a new one is the VM's first free candidate. */
  private async guestAddress(vmId: string, link: MetadataLink): Promise<string> {
    const file = this.stateFile(vmId);
    const saved = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (saved) return saved;
    const inUse = await link.addressesInUse();
    for (const s of this.served.values()) inUse.add(s.guestAddress);
    const a = pickGuestAddress(vmId, inUse);
    await mkdir(join(this.o.dataDir, 'metadata'), { recursive: true });
    await writeFile(file, `${a}\n`);
    return a;
  }

  private lookup(vmId: string): Promise<VmMetadata | null> {
    const hit = this.cache.get(vmId);
    if (hit && hit.until > Date.now()) return hit.md;
    const md = this.fetch(vmId);
    const entry = { md, until: Date.now() + CACHE_MS };
    this.cache.set(vmId, entry);
    // A failed fetch is not remembered: the next request asks again.
    md.catch(() => null).then((m) => { if (m === null && this.cache.get(vmId) === entry) this.cache.delete(vmId); });
    return md;
  }

  private readonly fetch = limited(FETCHES, (vmId: string) => this.fetchMetadata(vmId));

  private async fetchMetadata(vmId: string): Promise<VmMetadata | null> {
    const res = await fetch(this.o.controllerUrl + CONTROLLER_PATHS.metadata(vmId), {
      headers: { authorization: `Bearer ${this.o.token()}` }, signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 404) { await res.text(); return null; }
    if (!res.ok) throw new Error(`controller: HTTP ${res.status} for the metadata of ${vmId}`);
    return fromWire(await res.json() as MetadataBody);
  }

  private async applied(vmId: string, generation: number): Promise<void> {
    const res = await fetch(this.o.controllerUrl + CONTROLLER_PATHS.configApplied(vmId), {
      method: 'POST', headers: { authorization: `Bearer ${this.o.token()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ generation } satisfies AppliedBody), signal: AbortSignal.timeout(10_000),
    });
    await res.text();
    if (!res.ok) throw new Error(`controller: HTTP ${res.status} for the applied generation of ${vmId}`);
    this.o.log.info({ vmId, generation }, 'guest applied its configuration');
  }
}
