/**
 * A volume served as a BlockBackend over its replicated storage nodes (DESIGN.md §6): the UKAI
 * frontend. The session holds the volume's write lease from open() to close() and caches its block
 * map; the map stays the authority, and every change a reply depends on is committed first.
 *
 *  - Reads go to the nearest in-sync replica (local first, then RTT), the next one on failure;
 *    unallocated blocks read as zeros without any I/O.
 *  - Writes allocate their blocks first (coalesced map.allocate), then go to every write target
 *    (in-sync and syncing replicas) in parallel and are acknowledged when all answered. A replica
 *    that failed is out-of-sync in memory at once and in the map before the acknowledgement; with
 *    no in-sync replica holding the write, the guest gets EIO.
 *  - flush() and FUA reach fdatasync on every replica written since its last flush.
 *  - Relocation and resync (addLocation, sync, removeLocation) copy blocks while writes go on.
 *  - handOver() passes the lease to another holder (live migration) and fences this session.
 */
import { BlockError, type BlockBackend } from '../nbd/backend.js';
import { checkBlockSize, splitRange } from '../blockmap/blocks.js';
import { silentLogger, type NodeLogger, type NodeClient } from '../node/index.js';
import { invalidState } from '../../core/errors.js';
import { Allocator } from './allocator.js';
import { BlockState, isWriteTarget, type LiveReplica } from './block-state.js';
import { LeaseKeeper } from './lease.js';
import { LeaseLost, type MapSource, type VolumeMap } from './map.js';
import { MapQueue } from './map-queue.js';
import { NodeSlot } from './node-slot.js';
import type { NodePool } from './pool.js';
import { ReplicaChanges } from './replica-changes.js';
import { syncNode, type SyncHost, type SyncProgress, type SyncResult } from './sync.js';

export interface VolumeSessionOptions {
  map: MapSource;
  volumeId: string;
  pool: NodePool;
  log?: NodeLogger;
  /** Default: leaseMs / 3. */
  renewEveryMs?: number;
  /** Blocks sync() copies at once. Default 4. */
  syncParallel?: number;
  /** One block copy may take this long. Default 120 s. */
  copyTimeoutMs?: number;
  /** sync() commits its in-sync marks at least this often… Default 500 ms. */
  syncCommitMs?: number;
  /** …and whenever this many are pending. Default 64. */
  syncCommitBlocks?: number;
}

export type { SyncProgress, SyncResult } from './sync.js';
export interface LocationCounts { nodeId: string; inSync: number; syncing: number; outOfSync: number }

const FUA = { fua: true };
const PLAIN = {};
const WRITE = 0;
const TRIM = 1;
type Op = typeof WRITE | typeof TRIM;

const eio = (message: string) => new BlockError('EIO', message);
const why = (e: unknown) => (e as Error | undefined)?.message ?? String(e);

export class VolumeSession implements BlockBackend {
  readonly multiConn = true;
  readonly size: number;
  readonly blockSize: number;
  readonly volumeId: string;
  readonly epoch: number;
  private readonly blocks = new Map<number, BlockState>();
  private readonly locs: string[];
  private readonly slots = new Map<string, NodeSlot>();
  private readonly pool: NodePool;
  private readonly log: NodeLogger;
  private readonly queue: MapQueue;
  private readonly changes: ReplicaChanges;
  private readonly allocator: Allocator;
  private readonly lease: LeaseKeeper;
  private readonly syncs = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  /** Nodes whose removal is under way; each resolves once the map took or refused it. */
  private readonly removing = new Map<string, Promise<void>>();
  /** Why I/O fails now (fenced, lease lapsed, closed); null while it works. Checked first by every request. */
  private down: BlockError | null = null;
  private fenced = false;
  /** Live migration's switch-over: the holder the lease goes (or went) to. */
  private handingTo: string | null = null;
  private handedOver = false;
  private expired = false;
  private closed = false;
  private flushing: Promise<void> | null = null;
  private readonly syncHost: SyncHost;

  private constructor(private readonly o: VolumeSessionOptions, m: VolumeMap) {
    this.pool = o.pool;
    this.log = o.log ?? silentLogger;
    this.volumeId = m.volumeId;
    this.epoch = m.epoch;
    this.size = m.sizeBytes;
    this.blockSize = m.blockSize;
    this.locs = [...m.locations];
    for (const n of m.nodes) this.pool.setAddress(n);
    for (const e of m.blocks) {
      const st = BlockState.of(e);
      // A copy left half done by an earlier frontend: stale until a sync of this session copies it.
      for (const r of st.replicas) if (r.state === 'syncing') r.state = 'out-of-sync';
      this.blocks.set(e.block, st);
    }
    this.queue = new MapQueue(o.map, this.volumeId, this.epoch, (e) => this.fence(e));
    this.changes = new ReplicaChanges(this.queue);
    this.allocator = new Allocator(this.queue, (entries) => {
      for (const e of entries) {
        if (this.blocks.has(e.block)) continue;
        const st = BlockState.of(e);
        this.blocks.set(e.block, st);
        // Placed on a location being removed: no write may land there after the map dropped it.
        for (const r of st.replicas) if (this.removing.has(r.nodeId)) r.detached = true;
        for (const r of e.replicas) if (!this.pool.address(r.nodeId)) this.log.warn({ volumeId: this.volumeId, node: r.nodeId }, 'block placed on a storage node whose address is unknown here');
      }
    });
    this.syncHost = {
      volumeId: this.volumeId, pool: this.pool, changes: this.changes, log: this.log,
      allBlocks: () => this.blocks.values(), stopped: () => this.down, markFailed: (st, r, e) => this.markFailed(st, r, e),
    };
    this.lease = new LeaseKeeper(o.map, this.volumeId, this.epoch, m.leaseMs, o.renewEveryMs ?? Math.max(1, Math.floor(m.leaseMs / 3)), this.log, {
      expired: (yes) => { this.expired = yes; this.refreshDown(); },
      lost: (e) => this.fence(e),
    });
  }

  /** Takes the volume's write lease and its map. */
  static async open(o: VolumeSessionOptions): Promise<VolumeSession> {
    const takenAt = Date.now();
    const m = await o.map.open(o.volumeId);
    let s: VolumeSession;
    try {
      checkBlockSize(m.blockSize);
      s = new VolumeSession(o, m);
    } catch (e) {
      await o.map.release(o.volumeId, m.epoch).catch(() => {});
      throw e;
    }
    s.lease.start(takenAt);
    s.log.info({ volumeId: m.volumeId, epoch: m.epoch, blocks: m.blocks.length, locations: m.locations }, 'volume opened');
    return s;
  }

  get locationIds(): readonly string[] {
    return this.locs;
  }

  // --- reads ----------------------------------------------------------------------------------

  async read(offset: number, length: number): Promise<Buffer> {
    if (this.down) throw this.down;
    const bs = this.blockSize;
    const block = Math.floor(offset / bs);
    const inBlock = offset - block * bs;
    if (inBlock + length <= bs) {
      const st = this.blocks.get(block);
      return st ? this.readBlock(st, inBlock, length) : Buffer.alloc(length);
    }
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Buffer): Promise<void> {
    if (this.down) throw this.down;
    const bs = this.blockSize;
    const block = Math.floor(offset / bs);
    const inBlock = offset - block * bs;
    if (inBlock + target.length <= bs) return this.readSegment(block, inBlock, target);
    await Promise.all(splitRange(offset, target.length, bs).map((s) =>
      this.readSegment(s.block, s.offset, target.subarray(s.rangeOffset, s.rangeOffset + s.length))));
  }

  private async readSegment(block: number, off: number, target: Buffer): Promise<void> {
    const st = this.blocks.get(block);
    if (!st) {
      target.fill(0);
      return;
    }
    const got = await this.readBlock(st, off, target.length, target);
    if (got !== target) got.copy(target);
  }

  /**
   * From the nearest in-sync replica; on failure from the next ones. With `target`, straight into
   * it when the client can (an in-process node: no copy); the result says where the bytes are.
   */
  private async readBlock(st: BlockState, off: number, length: number, target?: Buffer): Promise<Buffer> {
    const reps = st.replicas;
    let best: LiveReplica | undefined;
    if (reps.length === 1) {
      if (reps[0].state === 'in-sync' && !reps[0].detached) best = reps[0];
    } else {
      let bestScore = Infinity;
      for (const r of reps) {
        if (r.state !== 'in-sync' || r.detached) continue;
        const s = this.pool.score(r.nodeId);
        if (s < bestScore) { best = r; bestScore = s; }
      }
    }
    if (!best) throw eio(`block ${st.block} of ${this.volumeId} has no in-sync replica`);
    try {
      const c = this.pool.client(best.nodeId) ?? (await this.pool.get(best.nodeId));
      if (!target || !c.readInto) return await c.read(st.objectId, off, length);
      await c.readInto(st.objectId, off, target);
      return target;
    } catch (e) {
      return this.readElsewhere(st, off, length, best.nodeId, e);
    }
  }

  private async readElsewhere(st: BlockState, off: number, length: number, failed: string, err: unknown): Promise<Buffer> {
    const tried = [failed];
    for (const nodeId of this.pool.nearest(st.readable().map((r) => r.nodeId).filter((id) => id !== failed))) {
      try {
        const c = this.pool.client(nodeId) ?? (await this.pool.get(nodeId));
        return await c.read(st.objectId, off, length);
      } catch (e) {
        tried.push(nodeId);
        err = e;
      }
    }
    throw eio(`cannot read block ${st.block} of ${this.volumeId} from any in-sync replica (${tried.join(', ')}): ${why(err)}`);
  }

  // --- writes ---------------------------------------------------------------------------------

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    if (this.down) throw this.down;
    const bs = this.blockSize;
    const block = Math.floor(offset / bs);
    const inBlock = offset - block * bs;
    if (inBlock + data.length <= bs) return this.writeBlock(block, WRITE, inBlock, data, data.length, fua);
    await Promise.all(splitRange(offset, data.length, bs).map((s) =>
      this.writeBlock(s.block, WRITE, s.offset, data.subarray(s.rangeOffset, s.rangeOffset + s.length), s.length, fua)));
  }

  /** A write (or partial trim) of one block: allocates it first unless this is a trim. */
  private async writeBlock(block: number, op: Op, off: number, data: Buffer | null, length: number, fua: boolean): Promise<void> {
    for (;;) {
      let st = this.blocks.get(block);
      if (!st) {
        if (op === TRIM) return; // nothing there: already zeros
        try {
          await this.allocator.allocate(block);
        } catch (e) {
          throw eio(`cannot allocate block ${block} of ${this.volumeId}: ${why(e)}`);
        }
        st = this.blocks.get(block);
        if (!st) throw eio(`block ${block} of ${this.volumeId} was not allocated`);
      }
      if (!st.lock.tryShared()) await st.lock.acquireShared();
      try {
        if (st.gone) continue; // discarded while this write waited: allocate again
        if (this.down) throw this.down;
        return await this.modify(st, op, off, data, length, fua);
      } finally {
        st.lock.releaseShared();
      }
    }
  }

  /** Sends the change to every write target of the block in parallel; see the file comment for the rules. */
  private async modify(st: BlockState, op: Op, off: number, data: Buffer | null, length: number, fua: boolean): Promise<void> {
    const reps = st.replicas;
    if (reps.length === 1) {
      const r = reps[0];
      if (r.state !== 'in-sync' || r.detached) throw eio(`block ${st.block} of ${this.volumeId} has no in-sync replica`);
      const err = await this.send(op, r.nodeId, st, off, data, length, fua);
      // The only copy: never marked out-of-sync, the guest sees the error.
      if (err !== null) throw eio(`block ${st.block} of ${this.volumeId}: its only replica (${r.nodeId}) failed: ${why(err)}`);
      if (st.mapAhead) await this.commitFor(st);
      return;
    }
    const targets: LiveReplica[] = [];
    const sent: Promise<unknown>[] = [];
    let removal: string | null = null;
    for (const r of reps) {
      if (!isWriteTarget(r)) {
        if (r.detached && r.state !== 'out-of-sync') { r.missed = true; removal = r.nodeId; }
        continue;
      }
      targets.push(r);
      sent.push(this.send(op, r.nodeId, st, off, data, length, fua));
    }
    if (targets.length === 0) throw eio(`block ${st.block} of ${this.volumeId} has no in-sync replica`);
    const errs = await Promise.all(sent);
    let ok = 0;
    let failed = 0;
    for (let i = 0; i < errs.length; i++) {
      if (errs[i] !== null) failed++;
      else if (targets[i].state === 'in-sync') ok++;
    }
    if (failed > 0) {
      if (ok === 0) {
        const e = errs.find((x) => x !== null);
        throw eio(`block ${st.block} of ${this.volumeId}: no in-sync replica took the write (${targets.map((r) => r.nodeId).join(', ')}): ${why(e)}`);
      }
      for (let i = 0; i < errs.length; i++) if (errs[i] !== null) this.markFailed(st, targets[i], errs[i]);
    }
    // A replica being removed missed this write: if the map refuses the removal, the replica is
    // stale, and must be recorded so before this write is acknowledged.
    if (removal !== null) await this.removing.get(removal);
    if (st.mapAhead) await this.commitFor(st);
  }

  /** Resolves with null on success, else with the error (never rejects). */
  private async send(op: Op, nodeId: string, st: BlockState, off: number, data: Buffer | null, length: number, fua: boolean): Promise<unknown> {
    const slot = this.slot(nodeId);
    slot.inflight++;
    try {
      const c = this.pool.client(nodeId) ?? (await this.pool.get(nodeId));
      if (!fua) slot.markDirty(c, st);
      if (op === WRITE) await c.write(st.objectId, off, data!, fua ? FUA : PLAIN);
      else await c.trim(st.objectId, off, length, fua ? FUA : PLAIN);
      return null;
    } catch (e) {
      return e ?? new Error('failed');
    } finally {
      slot.end();
    }
  }

  /** A replica missed a change: out-of-sync in memory now (later writes skip it), in the map at the next commit. */
  private markFailed(st: BlockState, r: LiveReplica, err: unknown): void {
    if (r.state === 'out-of-sync') return;
    r.state = 'out-of-sync';
    this.changes.add(st, r.nodeId);
    const slot = this.slot(r.nodeId);
    const now = Date.now();
    if (now - slot.warnedAt > 5000) {
      slot.warnedAt = now;
      this.log.warn({ volumeId: this.volumeId, node: r.nodeId, block: st.block, err: why(err) }, 'storage node missed a write: its replicas become out-of-sync');
    }
  }

  /** The map must not claim a stale replica in-sync when the write is acknowledged. */
  private async commitFor(st: BlockState): Promise<void> {
    try {
      await this.changes.commit();
    } catch (e) {
      throw eio(`cannot record the replicas of block ${st.block} of ${this.volumeId} that missed a write: ${why(e)}`);
    }
    if (st.mapAhead) throw eio(`block ${st.block} of ${this.volumeId}: replica states not committed`);
  }

  private slot(nodeId: string): NodeSlot {
    let s = this.slots.get(nodeId);
    if (!s) this.slots.set(nodeId, (s = new NodeSlot(nodeId)));
    return s;
  }

  // --- flush ----------------------------------------------------------------------------------

  /** Covers every write completed before the call, also those a concurrent flush is still syncing. */
  flush(): Promise<void> {
    if (this.down) return Promise.reject(this.down);
    return this.flushAll();
  }

  private flushAll(): Promise<void> {
    const prev = this.flushing;
    const own = this.flushDirty();
    const all = prev ? Promise.all([prev, own]).then(() => {}) : own;
    this.flushing = all;
    void all.catch(() => {}).then(() => { if (this.flushing === all) this.flushing = null; });
    return all;
  }

  private async flushDirty(): Promise<void> {
    const jobs: { nodeId: string; client: NodeClient; blocks: Set<BlockState> }[] = [];
    for (const slot of this.slots.values()) {
      if (slot.dirty.size === 0) continue;
      for (const [client, blocks] of slot.takeDirty()) jobs.push({ nodeId: slot.nodeId, client, blocks });
    }
    if (jobs.length === 0) return;
    const errs = await Promise.all(jobs.map((j) => j.client.flush().then(() => null, (e: unknown) => e ?? new Error('failed'))));
    let bad: Map<BlockState, Set<string>> | null = null;
    let firstErr: unknown;
    for (let i = 0; i < jobs.length; i++) {
      if (errs[i] === null) continue;
      firstErr ??= errs[i];
      bad ??= new Map();
      for (const st of jobs[i].blocks) {
        let nodes = bad.get(st);
        if (!nodes) bad.set(st, (nodes = new Set()));
        nodes.add(jobs[i].nodeId);
      }
    }
    if (!bad) return;
    let lost = 0;
    let marked = false;
    for (const [st, nodes] of bad) {
      if (st.gone) continue;
      if (!st.replicas.some((r) => r.state === 'in-sync' && !r.detached && !nodes.has(r.nodeId))) {
        lost++;
        continue;
      }
      for (const nodeId of nodes) {
        const r = st.replica(nodeId);
        if (r && r.state !== 'out-of-sync') { this.markFailed(st, r, firstErr); marked = true; }
      }
    }
    if (marked) {
      try { await this.changes.commit(); } catch (e) { throw eio(`cannot record the replicas of ${this.volumeId} whose flush failed: ${why(e)}`); }
    }
    if (lost > 0) throw eio(`${lost} blocks of ${this.volumeId} have no in-sync replica that flushed: ${why(firstErr)}`);
  }

  // --- trim / write zeroes --------------------------------------------------------------------

  /** Trimmed ranges read as zeros afterwards (kumo's trim is exact, so it can serve writeZeroes). */
  trim(offset: number, length: number): Promise<void> {
    return this.zero(offset, length, false);
  }

  writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    return this.zero(offset, length, fua);
  }

  /** Whole allocated blocks are unallocated in the map; parts of blocks are trimmed on every write target. */
  private async zero(offset: number, length: number, fua: boolean): Promise<void> {
    if (this.down) throw this.down;
    const bs = this.blockSize;
    const whole: number[] = [];
    const parts: Promise<void>[] = [];
    const end = offset + length;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    // A trim of a whole large disk (mkfs, a restore) visits the allocated blocks, not every block.
    const blocks = last - first + 1 > this.blocks.size
      ? [...this.blocks.keys()].filter((b) => b >= first && b <= last).sort((a, b) => a - b)
      : Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i).filter((b) => this.blocks.has(b));
    for (const b of blocks) {
      const from = Math.max(offset, b * bs);
      const to = Math.min(end, (b + 1) * bs, this.size);
      if (from === b * bs && (to === (b + 1) * bs || to === this.size)) whole.push(b);
      else parts.push(this.writeBlock(b, TRIM, from - b * bs, null, to - from, fua));
    }
    if (whole.length > 0) parts.push(this.discard(whole));
    await Promise.all(parts);
  }

  /** Waits for the writes in flight on the blocks (exclusive locks), then unallocates them in the map. */
  private async discard(blocks: number[]): Promise<void> {
    const held: BlockState[] = [];
    try {
      for (const b of blocks) {
        const st = this.blocks.get(b);
        if (!st) continue;
        await st.lock.acquireExclusive();
        if (st.gone) { st.lock.releaseExclusive(); continue; }
        held.push(st);
      }
      if (held.length === 0) return;
      if (this.down) throw this.down;
      try {
        await this.queue.run((m) => m.discard(held.map((st) => st.block)));
      } catch (e) {
        throw eio(`cannot discard ${held.length} blocks of ${this.volumeId}: ${why(e)}`);
      }
      for (const st of held) {
        st.gone = true;
        this.blocks.delete(st.block);
      }
    } finally {
      for (const st of held) st.lock.releaseExclusive();
    }
  }

  // --- locations ------------------------------------------------------------------------------

  /** Per node of the volume: how many of its blocks' replicas there are in each state (from the cached map). */
  locations(): LocationCounts[] {
    const by = new Map<string, LocationCounts>();
    const get = (nodeId: string) => {
      let c = by.get(nodeId);
      if (!c) by.set(nodeId, (c = { nodeId, inSync: 0, syncing: 0, outOfSync: 0 }));
      return c;
    };
    for (const id of this.locs) get(id);
    for (const st of this.blocks.values()) {
      for (const r of st.replicas) {
        const c = get(r.nodeId);
        if (r.state === 'in-sync') c.inSync++;
        else if (r.state === 'syncing') c.syncing++;
        else c.outOfSync++;
      }
    }
    return [...by.values()];
  }

  /** UKAI add_location: the node becomes a location (new blocks are placed there too), then its copies are made. */
  async addLocation(nodeId: string, onProgress?: (p: SyncProgress) => void, signal?: AbortSignal): Promise<SyncResult> {
    if (this.down) throw this.down;
    await this.queue.run(async (m) => {
      const addr = await m.addLocation(nodeId);
      this.pool.setAddress(addr);
      if (!this.locs.includes(nodeId)) this.locs.push(nodeId);
      // As the map did: every block allocated so far gets an out-of-sync replica there.
      for (const st of this.blocks.values()) {
        if (!st.replica(nodeId)) st.replicas.push({ nodeId, state: 'out-of-sync', durable: 'out-of-sync', detached: false, missed: false });
      }
    });
    this.log.info({ volumeId: this.volumeId, node: nodeId }, 'location added; copying its blocks');
    return this.sync(nodeId, onProgress, signal);
  }

  /**
   * Brings the node's replicas in-sync by copying only the blocks whose replica there is not
   * in-sync, from the nearest in-sync copy, while writes go on. Cancellable.
   */
  async sync(nodeId: string, onProgress?: (p: SyncProgress) => void, signal?: AbortSignal): Promise<SyncResult> {
    if (this.down) throw this.down;
    if (this.syncs.has(nodeId)) throw invalidState(`a copy to ${nodeId} is already running on ${this.volumeId}`);
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = syncNode(this.syncHost, nodeId, {
      signal: abort.signal, onProgress, parallel: this.o.syncParallel ?? 4, copyTimeoutMs: this.o.copyTimeoutMs ?? 120_000,
      commitMs: this.o.syncCommitMs ?? 500, commitBlocks: this.o.syncCommitBlocks ?? 64,
    });
    this.syncs.set(nodeId, { abort, done });
    try {
      return await done;
    } finally {
      this.syncs.delete(nodeId);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * UKAI remove_location: writes stop going there (in memory), the writes in flight to it end, then
   * the map drops the location — which it refuses while the node holds the last in-sync copy of
   * any block. Refused: the node takes writes again, and its replicas that missed one while
   * detached are out-of-sync (a sync brings them back).
   */
  async removeLocation(nodeId: string): Promise<void> {
    if (this.down) throw this.down;
    if (this.removing.has(nodeId)) throw invalidState(`${nodeId} is already being removed from ${this.volumeId}`);
    const running = this.syncs.get(nodeId);
    if (running) {
      running.abort.abort(new Error(`location ${nodeId} is being removed`));
      await running.done.catch(() => {});
    }
    await this.changes.commit();
    let last = 0;
    for (const st of this.blocks.values()) {
      const rs = st.readable();
      if (rs.length > 0 && rs.every((r) => r.nodeId === nodeId)) last++;
    }
    if (last > 0) throw invalidState(`${nodeId} holds the last in-sync copy of ${last} blocks of ${this.volumeId}; sync another location first`);
    let settle!: () => void;
    this.removing.set(nodeId, new Promise<void>((r) => (settle = r)));
    for (const st of this.blocks.values()) {
      const r = st.replica(nodeId);
      if (r) { r.detached = true; r.missed = false; }
    }
    try {
      await this.slot(nodeId).idle();
      await this.queue.run(async (m) => {
        await m.removeLocation(nodeId);
        for (const st of this.blocks.values()) {
          const i = st.replicas.findIndex((r) => r.nodeId === nodeId);
          if (i >= 0) st.replicas.splice(i, 1);
        }
        const at = this.locs.indexOf(nodeId);
        if (at >= 0) this.locs.splice(at, 1);
      });
    } catch (e) {
      let missed = 0;
      for (const st of this.blocks.values()) {
        const r = st.replica(nodeId);
        if (!r) continue;
        if (r.missed && r.state !== 'out-of-sync') {
          r.state = 'out-of-sync';
          this.changes.add(st, nodeId);
          missed++;
        }
        r.detached = r.missed = false;
      }
      // The writes waiting on this commit it themselves if this fails (and fail with EIO then).
      if (missed > 0) await this.changes.commit().catch(() => {});
      this.log.warn({ volumeId: this.volumeId, node: nodeId, missed, err: why(e) }, 'location not removed; it takes writes again');
      throw e;
    } finally {
      this.removing.delete(nodeId);
      settle();
    }
    // Its objects are garbage now: nothing there needs flushing.
    this.slots.get(nodeId)?.takeDirty();
    this.log.info({ volumeId: this.volumeId, node: nodeId }, 'location removed');
  }

  // --- lifecycle ------------------------------------------------------------------------------

  /** Flushes, stops renewing and gives the lease back. A fenced session only stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.refreshDown();
    await this.stopSyncs();
    if (this.fenced) {
      this.lease.stop();
      return;
    }
    let failure: unknown = null;
    try { await this.flushAll(); } catch (e) { failure = e; }
    try { await this.changes.commit(); } catch (e) { failure ??= e; }
    this.lease.stop();
    await this.queue.idle();
    if (!this.fenced) {
      try { await this.o.map.release(this.volumeId, this.epoch); } catch (e) { failure ??= e; }
    }
    this.log.info({ volumeId: this.volumeId, epoch: this.epoch, err: failure ? why(failure) : undefined }, 'volume closed');
    if (failure !== null) throw failure;
  }

  /**
   * Live migration's switch-over: I/O stops (new requests fail with EIO), the requests in flight
   * end, everything written is flushed and committed, then the lease goes to `toHolder` and this
   * session is fenced for good. Storage nodes do not check epochs, so no write of this session may
   * still be on its way when the new holder starts writing.
   *
   * If the hand-over fails, a renew tells whether the map still names this session (the answer may
   * have been lost after the map took it): then I/O works again (the VM stays here), else the
   * session is fenced; when even that cannot be told, I/O stays stopped and handOver may be called
   * again. Called again once done, for the same holder: nothing to do.
   */
  async handOver(toHolder: string): Promise<void> {
    if (this.handedOver && this.handingTo === toHolder) return;
    if (this.down && this.handingTo !== toHolder) throw this.down;
    this.handingTo = toHolder;
    this.refreshDown();
    try {
      await this.stopSyncs();
      await Promise.all([...this.slots.values()].map((slot) => slot.idle()));
      await this.flushAll();
      await this.changes.commit();
      await this.queue.idle();
      await this.o.map.handover(this.volumeId, this.epoch, toHolder);
    } catch (e) {
      const lost: LeaseLost | false | null = e instanceof LeaseLost ? e
        : await this.o.map.renew(this.volumeId, this.epoch).then((): false => false, (r: unknown) => (r instanceof LeaseLost ? r : null));
      if (lost !== null) {
        this.handingTo = null;
        if (lost) this.fence(lost);
        this.refreshDown();
      }
      throw e;
    }
    this.handedOver = this.fenced = true;
    this.lease.stop();
    this.refreshDown();
    this.log.info({ volumeId: this.volumeId, epoch: this.epoch, to: toHolder }, 'write lease handed over; this session no longer serves');
  }

  /** Fenced for good: the lease went to another holder (taken over or handed over). */
  get isFenced(): boolean {
    return this.fenced;
  }

  /** Stops serving but keeps the lease (it lapses unless a restarted frontend opens the volume again). */
  async suspend(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.refreshDown();
    await this.stopSyncs();
    this.lease.stop();
    await this.changes.commit().catch(() => {});
    await this.queue.idle();
  }

  private async stopSyncs(): Promise<void> {
    const all = [...this.syncs.values()];
    for (const s of all) s.abort.abort(new Error('the volume is closing'));
    await Promise.all(all.map((s) => s.done.catch(() => {})));
  }

  private fence(e: LeaseLost): void {
    if (this.fenced) return;
    this.fenced = true;
    this.lease.stop();
    this.refreshDown();
    this.log.warn({ volumeId: this.volumeId, epoch: this.epoch, err: e.message }, 'write lease lost to another holder: this session is fenced, all its I/O fails with EIO');
  }

  private refreshDown(): void {
    this.down = this.handedOver ? eio(`${this.volumeId}: the write lease was handed over to ${this.handingTo}; this session no longer serves`)
      : this.fenced ? eio(`${this.volumeId}: the write lease (epoch ${this.epoch}) was taken over; this session is fenced`)
        : this.handingTo ? eio(`${this.volumeId}: the write lease is being handed over to ${this.handingTo}`)
          : this.closed ? new BlockError('ESHUTDOWN', `${this.volumeId}: the volume session is closed`)
            : this.expired ? eio(`${this.volumeId}: the write lease lapsed (the controller cannot be reached)`)
              : null;
  }
}
