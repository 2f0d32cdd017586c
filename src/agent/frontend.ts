import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { HttpMapSource } from '../storage/frontend/http-map.js';
import { NodePool } from '../storage/frontend/pool.js';
import { VolumeSession } from '../storage/frontend/session.js';
import { NbdServer } from '../storage/nbd/index.js';
import type { StorageNodeServer } from '../storage/node/server.js';
import { relocationStep, type RelocateBody, type RelocateProgress, type RelocateResult } from '../storage/relocation/step.js';

export interface AgentFrontendOptions {
  /** `<agent data>/frontend`: the NBD socket and the attachments file. */
  dir: string;
  controllerUrl: string;
  /** The agent's node token: it authenticates the frontend's block-map calls. */
  token: () => string;
  log: Logger;
  /** The storage node this process runs (`kumo agent --storage-data`): reached in process, read first. */
  localNode?: LocalNode;
}

export interface LocalNode { nodeId: string; server: StorageNodeServer }

/** The volumes a VM has open, and for which of the agent's hosts (the lease holder). */
interface Attachment { hostId: string; volumeIds: string[] }

const fail = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

/**
 * The agent's volume frontend (DESIGN.md §6): one NBD server on a unix socket exporting each volume
 * of the VMs running here under its volume id, each export a VolumeSession holding the volume's
 * write lease for the VM's host. Attachments are written to disk, so a restarted agent opens the
 * volumes of the VMs it adopts again (QEMU reconnects to the socket) and gives back the leases of
 * those that stopped meanwhile.
 */
export class AgentFrontend {
  readonly socket: string;
  private readonly nbd: NbdServer;
  private readonly pool: NodePool;
  private readonly sessions = new Map<string, VolumeSession>();
  private readonly attached = new Map<string, Attachment>();
  private readonly file: string;
  /** Attach and detach run one at a time: they share the attachments file. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: AgentFrontendOptions) {
    this.socket = join(o.dir, 'nbd.sock');
    this.file = join(o.dir, 'attachments.json');
    this.nbd = new NbdServer({ logger: o.log });
    this.pool = new NodePool({ client: 'agent', log: o.log });
    if (o.localNode) this.pool.addLocal(o.localNode.nodeId, o.localNode.server);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => {}).then(fn);
    this.chain = next;
    return next;
  }

  /**
   * Listens, then settles the attachments an earlier run left: VMs still running get their volumes
   * again, the others' leases are given back.
   */
  async start(running: (hostId: string) => Promise<Set<string>>): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    await this.nbd.listen({ path: this.socket });
    const before = JSON.parse(await readFile(this.file, 'utf8').catch(() => '{}')) as Record<string, Attachment>;
    for (const [vmId, a] of Object.entries(before)) {
      const alive = await running(a.hostId).then((s) => s.has(vmId), () => false);
      try {
        await this.attach(a.hostId, vmId, a.volumeIds);
        if (!alive) await this.detach(vmId);
        else this.o.log.info({ vmId, volumes: a.volumeIds }, 'volumes of a running VM opened again');
      } catch (e) {
        this.o.log.warn({ vmId, err: (e as Error).message }, 'could not settle the volumes of a VM from before the restart');
      }
    }
  }

  /** Opens the VM's volumes (taking their write leases for `hostId`) and exports them; idempotent. */
  attach(hostId: string, vmId: string, volumeIds: string[]): Promise<void> {
    return this.serial(async () => {
      const opened: string[] = [];
      try {
        for (const volumeId of volumeIds) {
          if (this.sessions.has(volumeId)) continue;
          const map = new HttpMapSource({ controllerUrl: this.o.controllerUrl, holder: hostId, auth: { bearer: this.o.token() } });
          const session = await VolumeSession.open({ map, volumeId, pool: this.pool, log: this.o.log });
          this.sessions.set(volumeId, session);
          opened.push(volumeId);
          this.nbd.addExport(volumeId, session);
        }
      } catch (e) {
        for (const v of opened) await this.closeSession(v);
        throw new Error(`cannot open the volumes of ${vmId}: ${(e as Error).message}`);
      }
      this.attached.set(vmId, { hostId, volumeIds });
      await this.save();
    });
  }

  /** Flushes and closes the VM's volumes and gives their leases back; a VM with none is fine. */
  detach(vmId: string): Promise<void> {
    return this.serial(async () => {
      const a = this.attached.get(vmId);
      if (!a) return;
      for (const v of a.volumeIds) await this.closeSession(v);
      this.attached.delete(vmId);
      await this.save();
    });
  }

  private async closeSession(volumeId: string): Promise<void> {
    const s = this.sessions.get(volumeId);
    if (!s) return;
    this.sessions.delete(volumeId);
    if (this.nbd.hasExport(volumeId)) await this.nbd.removeExport(volumeId);
    await s.close().catch((e: Error) => this.o.log.warn({ volumeId, err: e.message }, 'closing a volume failed; its lease lapses by itself'));
  }

  private async save(): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify(Object.fromEntries(this.attached), null, 1));
    await rename(tmp, this.file);
  }

  /** Runs a relocation step on a volume held here (the controller routes steps to the lease holder). */
  relocate(volumeId: string, b: RelocateBody, onProgress: (p: RelocateProgress) => void): Promise<RelocateResult> {
    const s = this.sessions.get(volumeId);
    if (!s) throw fail(409, `volume ${volumeId} is not open on this agent`);
    return relocationStep(s, b, onProgress);
  }

  /** Stops serving without giving leases back: the VMs keep running and a restarted agent reopens their volumes. */
  async close(): Promise<void> {
    await this.nbd.close();
    for (const s of this.sessions.values()) await s.suspend().catch(() => {});
    this.sessions.clear();
    await this.pool.close();
  }
}
