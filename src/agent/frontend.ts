import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DeferredBackend } from '../storage/frontend/deferred.js';
import { HttpMapSource } from '../storage/frontend/http-map.js';
import { NodePool } from '../storage/frontend/pool.js';
import { VolumeSession } from '../storage/frontend/session.js';
import { BlockError, NbdServer } from '../storage/nbd/index.js';
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

/**
 * attached: sessions hold the leases. prepared: exported for an incoming migration, I/O held until
 * activate opens the sessions. handed-over: the leases went to a migration's destination; the
 * exports stay, failing with EIO, until detach (the source torn down) or attach (a rollback).
 */
type VmState = 'attached' | 'prepared' | 'handed-over';

/** The volumes a VM has here, and for which of the agent's hosts (the lease holder). */
interface Attachment { hostId: string; volumeIds: string[]; state: VmState }

export interface PreparedDisk { volumeId: string; sizeBytes: number }

const fail = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });
const why = (e: unknown) => (e as Error).message;

/**
 * The agent's volume frontend (DESIGN.md §6): one NBD server on a unix socket exporting each volume
 * of the VMs running here under its volume id, each export a VolumeSession holding the volume's
 * write lease for the VM's host. Attachments are written to disk, so a restarted agent opens the
 * volumes of the VMs it adopts again (QEMU reconnects to the socket) and gives back the leases of
 * those that stopped meanwhile.
 *
 * Live migration (DESIGN.md §8): every export is a DeferredBackend, so the destination exports a
 * volume before its lease arrives (prepare → activate), and the source keeps the export its QEMU is
 * connected to while the lease is elsewhere (handOver → detach, or attach again on a rollback).
 * A restarted agent drops migrations it was the destination of (the controller's next step then
 * fails and rolls back), as detach does: leases already handed here are given back, so the source
 * can open its volumes again at once.
 */
export class AgentFrontend {
  readonly socket: string;
  private readonly nbd: NbdServer;
  private readonly pool: NodePool;
  private readonly sessions = new Map<string, VolumeSession>();
  private readonly exports = new Map<string, DeferredBackend>();
  private readonly attached = new Map<string, Attachment>();
  private readonly file: string;
  /** One operation at a time: they share the attachments file. */
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
    const before = JSON.parse(await readFile(this.file, 'utf8').catch(() => '{}')) as Record<string, Omit<Attachment, 'state'> & { state?: VmState }>;
    let dropped = false;
    for (const [vmId, a] of Object.entries(before)) {
      if (a.state === 'prepared') {
        for (const v of a.volumeIds) await this.giveBack(a.hostId, v);
        this.o.log.warn({ vmId, volumes: a.volumeIds }, 'dropped an incoming migration that was under way before the restart');
        dropped = true;
        continue;
      }
      const alive = await running(a.hostId).then((s) => s.has(vmId), () => false);
      try {
        await this.attach(a.hostId, vmId, a.volumeIds);
        if (!alive) await this.detach(vmId);
        else this.o.log.info({ vmId, volumes: a.volumeIds }, 'volumes of a running VM opened again');
      } catch (e) {
        this.o.log.warn({ vmId, err: why(e) }, 'could not settle the volumes of a VM from before the restart');
      }
    }
    if (dropped) await this.serial(() => this.save());
  }

  /**
   * Opens the VM's volumes (taking their write leases for `hostId`) and exports them; idempotent.
   * After a hand-over (a rolled back migration) the sessions go into the exports QEMU still has.
   */
  attach(hostId: string, vmId: string, volumeIds: string[]): Promise<void> {
    return this.serial(async () => {
      const a = this.attached.get(vmId);
      if (a?.state === 'prepared') throw fail(409, `${vmId} is prepared for an incoming migration here`);
      const opened: string[] = [];
      try {
        for (const volumeId of volumeIds) {
          const had = this.sessions.get(volumeId);
          if (had && !had.isFenced) continue;
          if (had) {
            this.sessions.delete(volumeId);
            await had.close().catch(() => {});
          }
          await this.open(hostId, volumeId);
          opened.push(volumeId);
        }
      } catch (e) {
        for (const v of opened) await this.closeSession(v);
        throw new Error(`cannot open the volumes of ${vmId}: ${why(e)}`);
      }
      this.attached.set(vmId, { hostId, volumeIds, state: 'attached' });
      await this.save();
    });
  }

  /**
   * A live migration's destination, before the hand-over: exports the volumes without their
   * leases (the incoming QEMU connects at once; its I/O waits for activate). Idempotent. A VM
   * that left this agent before (handed over, its source not torn down yet) may come back.
   */
  prepare(hostId: string, vmId: string, disks: PreparedDisk[]): Promise<void> {
    return this.serial(async () => {
      let a = this.attached.get(vmId);
      if (a?.state === 'handed-over') {
        for (const v of a.volumeIds) await this.unexport(v, `${v} was handed over`);
        this.attached.delete(vmId);
        a = undefined;
      }
      if (a && a.state !== 'prepared') throw fail(409, `${vmId} is already ${a.state} here`);
      for (const d of disks) {
        if (!Number.isSafeInteger(d.sizeBytes) || d.sizeBytes <= 0) throw fail(400, `${d.volumeId}: bad size ${d.sizeBytes}`);
        const user = this.userOf(d.volumeId);
        if (user !== undefined && user !== vmId) throw fail(409, `volume ${d.volumeId} is in use by ${user} here`);
        const exp = this.exports.get(d.volumeId);
        if (exp && exp.size !== d.sizeBytes) throw fail(409, `volume ${d.volumeId} is exported here with ${exp.size} bytes, not ${d.sizeBytes}`);
      }
      for (const d of disks) this.exportOf(d.volumeId, d.sizeBytes);
      this.attached.set(vmId, { hostId, volumeIds: [...new Set([...(a?.volumeIds ?? []), ...disks.map((d) => d.volumeId)])], state: 'prepared' });
      await this.save();
    });
  }

  /**
   * After the hand-over: opens the prepared volumes (their leases were handed to the VM's host),
   * and the I/O held so far runs. The VM is then attached as if started here. Idempotent; after a
   * failure, called again it opens the volumes not open yet.
   */
  activate(vmId: string): Promise<void> {
    return this.serial(async () => {
      const a = this.attached.get(vmId);
      if (a?.state === 'attached') return;
      if (a?.state !== 'prepared') throw fail(409, `${vmId} is not prepared for an incoming migration here`);
      for (const volumeId of a.volumeIds) {
        if (this.sessions.has(volumeId)) continue;
        try {
          await this.open(a.hostId, volumeId);
        } catch (e) {
          throw new Error(`cannot open volume ${volumeId} of ${vmId}: ${why(e)}`);
        }
      }
      a.state = 'attached';
      await this.save();
    });
  }

  /**
   * A live migration's source at switch-over (QEMU has completed and flushed): each volume is
   * flushed and its lease handed to `toHolder`, the destination's host; the sessions are dropped
   * without giving their leases back, and the exports fail every request with EIO from then on.
   * Idempotent; after a failure, called again it hands over the volumes still here.
   */
  handOver(vmId: string, toHolder: string): Promise<void> {
    return this.serial(async () => {
      const a = this.attached.get(vmId);
      if (!a || a.state === 'handed-over') return;
      if (a.state !== 'attached') throw fail(409, `${vmId} is ${a.state} here, not running`);
      for (const volumeId of a.volumeIds) {
        const s = this.sessions.get(volumeId);
        if (!s) continue;
        await s.handOver(toHolder);
        this.sessions.delete(volumeId);
        this.exports.get(volumeId)?.fail(new BlockError('EIO', `${volumeId} was handed over to ${toHolder}`));
      }
      a.state = 'handed-over';
      await this.save();
    });
  }

  /**
   * Flushes and closes the VM's volumes and gives their leases back; a VM with none is fine. A
   * prepared VM's held I/O fails with EIO, and leases handed to it but not opened yet go back too
   * (a hand-over that failed half way, or was done but the destination is rolled back).
   */
  detach(vmId: string): Promise<void> {
    return this.serial(async () => {
      const a = this.attached.get(vmId);
      if (!a) return;
      for (const v of a.volumeIds) {
        if (this.sessions.has(v)) {
          await this.closeSession(v);
          continue;
        }
        await this.unexport(v, `${vmId} was detached`);
        if (a.state === 'prepared') await this.giveBack(a.hostId, v);
      }
      this.attached.delete(vmId);
      await this.save();
    });
  }

  private async open(hostId: string, volumeId: string): Promise<void> {
    const session = await VolumeSession.open({ map: this.map(hostId), volumeId, pool: this.pool, log: this.o.log });
    try {
      this.exportOf(volumeId, session.size).serve(session);
    } catch (e) {
      await session.close().catch(() => {});
      throw e;
    }
    this.sessions.set(volumeId, session);
  }

  private map(hostId: string): HttpMapSource {
    return new HttpMapSource({ controllerUrl: this.o.controllerUrl, holder: hostId, auth: { bearer: this.o.token() } });
  }

  private exportOf(volumeId: string, size: number): DeferredBackend {
    let exp = this.exports.get(volumeId);
    if (!exp) {
      exp = new DeferredBackend(size);
      this.nbd.addExport(volumeId, exp);
      this.exports.set(volumeId, exp);
    }
    return exp;
  }

  private userOf(volumeId: string): string | undefined {
    for (const [vmId, a] of this.attached) if (a.volumeIds.includes(volumeId)) return vmId;
    return undefined;
  }

  /** Connections get answers to what they have in flight (held I/O: an error), then are closed. */
  private async unexport(volumeId: string, reason: string): Promise<void> {
    const exp = this.exports.get(volumeId);
    if (!exp) return;
    this.exports.delete(volumeId);
    if (!exp.serving) exp.fail(new BlockError('EIO', `${volumeId}: ${reason}`));
    await this.nbd.removeExport(volumeId);
  }

  private async closeSession(volumeId: string): Promise<void> {
    const s = this.sessions.get(volumeId);
    if (!s) return;
    this.sessions.delete(volumeId);
    await this.unexport(volumeId, 'closed');
    await s.close().catch((e: Error) => this.o.log.warn({ volumeId, err: e.message }, 'closing a volume failed; its lease lapses by itself'));
  }

  /**
   * Releases a lease handed to `hostId` that no session here opened, so the source can open the
   * volume again without waiting for it to lapse. Only that one: a lapsed lease of the source
   * stays the source's.
   */
  private async giveBack(hostId: string, volumeId: string): Promise<void> {
    const map = this.map(hostId);
    try {
      const epoch = await map.heldEpoch(volumeId);
      if (epoch !== null) await map.release(volumeId, epoch);
    } catch (e) {
      this.o.log.warn({ volumeId, err: why(e) }, 'could not give back a lease handed here; it lapses by itself');
    }
  }

  private async save(): Promise<void> {
    const keep = [...this.attached].filter(([, a]) => a.state !== 'handed-over');
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify(Object.fromEntries(keep), null, 1));
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
    // Held I/O would keep its connection (and nbd.close) waiting.
    for (const [volumeId, exp] of this.exports) if (!exp.serving) exp.fail(new BlockError('EIO', `${volumeId}: the agent is stopping`));
    await this.nbd.close();
    for (const s of this.sessions.values()) await s.suspend().catch(() => {});
    this.sessions.clear();
    await this.pool.close();
  }
}
