/**
 * An in-memory MapSource for the frontend tests: the block map of one volume with its lease, as
 * the contract (src/storage/frontend/map.ts) describes it. Every call is recorded in `log` in the
 * order it was committed, and a test can write its own events (acknowledgements) into the same
 * log, so it can prove that a replica was marked out-of-sync before a write was acknowledged.
 * `fail` injects errors (an unreachable controller), `takeOver()` plays another holder.
 */
import { newObjectId, removesLastInSyncCopy, type Replica } from '../../../src/storage/blockmap/index.js';
import { invalidState } from '../../../src/core/errors.js';
import {
  LeaseLost, type BlockEntry, type MapSource, type NodeAddress, type ReplicaChange, type VolumeMap,
} from '../../../src/storage/frontend/map.js';

export type MapOp = 'open' | 'renew' | 'allocate' | 'update' | 'discard' | 'addLocation' | 'removeLocation' | 'release' | 'handover';

export type LogEntry =
  | { seq: number; op: 'allocate' | 'discard'; blocks: number[] }
  | { seq: number; op: 'update'; changes: ReplicaChange[] }
  | { seq: number; op: 'open' | 'renew' | 'release' | 'handover'; epoch: number }
  | { seq: number; op: 'addLocation' | 'removeLocation'; nodeId: string }
  | { seq: number; op: 'refused'; call: MapOp; error: string }
  | { seq: number; op: 'event'; name: string; detail?: unknown };

export interface MemoryMapOptions {
  volumeId?: string;
  sizeBytes: number;
  blockSize: number;
  leaseMs?: number;
  /** Every node the volume may use (locations and later ones). */
  nodes: NodeAddress[];
  locations: string[];
}

interface Block { objectId: string; replicas: Replica[] }

export class MemoryMap implements MapSource {
  readonly volumeId: string;
  readonly log: LogEntry[] = [];
  readonly blocks = new Map<number, Block>();
  locations: string[];
  epoch = 0;
  held = false;
  /** Return an error to make that call fail (before it changes anything). */
  fail: ((op: MapOp) => Error | undefined) | null = null;
  /** Milliseconds each allocate takes (to see concurrent allocations coalesce). */
  allocateDelayMs = 0;
  private seq = 0;
  private readonly nodes: Map<string, NodeAddress>;

  constructor(private readonly o: MemoryMapOptions) {
    this.volumeId = o.volumeId ?? 'vol-test';
    this.nodes = new Map(o.nodes.map((n) => [n.nodeId, n]));
    this.locations = [...o.locations];
  }

  /** Records a test's own event in the call log. */
  event(name: string, detail?: unknown): number {
    this.log.push({ seq: ++this.seq, op: 'event', name, detail });
    return this.seq;
  }

  /** Another holder takes the lease: the current session's next call fails with LeaseLost. */
  takeOver(): void {
    this.epoch++;
  }

  /** Replaces a node's address (a node restarted on another port). */
  setNode(addr: NodeAddress): void {
    this.nodes.set(addr.nodeId, addr);
  }

  calls(op: LogEntry['op']): LogEntry[] {
    return this.log.filter((e) => e.op === op);
  }

  replicaState(block: number, nodeId: string): string | undefined {
    return this.blocks.get(block)?.replicas.find((r) => r.nodeId === nodeId)?.state;
  }

  /** Per node: blocks in each replica state. */
  counts(nodeId: string): { inSync: number; syncing: number; outOfSync: number; total: number } {
    const c = { inSync: 0, syncing: 0, outOfSync: 0, total: 0 };
    for (const b of this.blocks.values()) {
      const r = b.replicas.find((x) => x.nodeId === nodeId);
      if (!r) continue;
      c.total++;
      if (r.state === 'in-sync') c.inSync++;
      else if (r.state === 'syncing') c.syncing++;
      else c.outOfSync++;
    }
    return c;
  }

  // --- MapSource ------------------------------------------------------------------------------

  async open(volumeId: string): Promise<VolumeMap> {
    await this.enter('open', volumeId);
    this.epoch++;
    this.held = true;
    this.log.push({ seq: ++this.seq, op: 'open', epoch: this.epoch });
    const used = new Set([...this.locations, ...[...this.blocks.values()].flatMap((b) => b.replicas.map((r) => r.nodeId))]);
    return {
      volumeId: this.volumeId, sizeBytes: this.o.sizeBytes, blockSize: this.o.blockSize, epoch: this.epoch, leaseMs: this.o.leaseMs ?? 30_000,
      locations: [...this.locations], nodes: [...used].map((id) => ({ ...this.node(id) })),
      blocks: [...this.blocks].map(([block, b]) => this.entry(block, b)),
    };
  }

  async renew(volumeId: string, epoch: number): Promise<void> {
    await this.enter('renew', volumeId, epoch);
    this.log.push({ seq: ++this.seq, op: 'renew', epoch });
  }

  async allocate(volumeId: string, epoch: number, blocks: number[]): Promise<BlockEntry[]> {
    await this.enter('allocate', volumeId, epoch);
    if (this.allocateDelayMs) await new Promise((r) => setTimeout(r, this.allocateDelayMs));
    this.check('allocate', epoch);
    const out: BlockEntry[] = [];
    for (const block of blocks) {
      if (!Number.isSafeInteger(block) || block < 0 || block * this.o.blockSize >= this.o.sizeBytes) throw new Error(`block ${block} is out of range`);
      let b = this.blocks.get(block);
      if (!b) this.blocks.set(block, (b = { objectId: newObjectId(), replicas: this.locations.map((nodeId) => ({ nodeId, state: 'in-sync' as const })) }));
      out.push(this.entry(block, b));
    }
    this.log.push({ seq: ++this.seq, op: 'allocate', blocks: [...blocks] });
    return out;
  }

  async update(volumeId: string, epoch: number, changes: ReplicaChange[]): Promise<void> {
    await this.enter('update', volumeId, epoch);
    for (const c of changes) if (!this.blocks.has(c.block)) throw invalidState(`block ${c.block} is not allocated`);
    for (const c of changes) {
      const b = this.blocks.get(c.block)!;
      const i = b.replicas.findIndex((r) => r.nodeId === c.nodeId);
      if (c.state === null) { if (i >= 0) b.replicas.splice(i, 1); } else if (i >= 0) b.replicas[i] = { nodeId: c.nodeId, state: c.state };
      else b.replicas.push({ nodeId: c.nodeId, state: c.state });
    }
    this.log.push({ seq: ++this.seq, op: 'update', changes: changes.map((c) => ({ ...c })) });
  }

  async discard(volumeId: string, epoch: number, blocks: number[]): Promise<void> {
    await this.enter('discard', volumeId, epoch);
    for (const b of blocks) this.blocks.delete(b);
    this.log.push({ seq: ++this.seq, op: 'discard', blocks: [...blocks] });
  }

  async addLocation(volumeId: string, epoch: number, nodeId: string): Promise<NodeAddress> {
    await this.enter('addLocation', volumeId, epoch);
    if (this.locations.includes(nodeId)) throw invalidState(`${nodeId} is already a location of ${volumeId}`);
    const addr = this.node(nodeId);
    this.locations.push(nodeId);
    for (const b of this.blocks.values()) if (!b.replicas.some((r) => r.nodeId === nodeId)) b.replicas.push({ nodeId, state: 'out-of-sync' });
    this.log.push({ seq: ++this.seq, op: 'addLocation', nodeId });
    return { ...addr };
  }

  async removeLocation(volumeId: string, epoch: number, nodeId: string): Promise<void> {
    await this.enter('removeLocation', volumeId, epoch);
    if (!this.locations.includes(nodeId)) throw invalidState(`${nodeId} is not a location of ${volumeId}`);
    const objects = [...this.blocks.values()].map((b) => ({ objectId: b.objectId, replicas: b.replicas }));
    if (removesLastInSyncCopy(objects, [nodeId])) {
      const e = invalidState(`${nodeId} holds the last in-sync copy of some blocks of ${volumeId}`);
      this.log.push({ seq: ++this.seq, op: 'refused', call: 'removeLocation', error: e.message });
      throw e;
    }
    this.locations = this.locations.filter((n) => n !== nodeId);
    for (const b of this.blocks.values()) b.replicas = b.replicas.filter((r) => r.nodeId !== nodeId);
    this.log.push({ seq: ++this.seq, op: 'removeLocation', nodeId });
  }

  async release(volumeId: string, epoch: number): Promise<void> {
    await this.enter('release', volumeId, epoch);
    this.held = false;
    this.log.push({ seq: ++this.seq, op: 'release', epoch });
  }

  /** The next holder is not modelled: the lease moves on (the next epoch), as with takeOver(). */
  async handover(volumeId: string, epoch: number): Promise<void> {
    await this.enter('handover', volumeId, epoch);
    this.epoch++;
    this.log.push({ seq: ++this.seq, op: 'handover', epoch });
  }

  // --- internals ------------------------------------------------------------------------------

  /** Every call is asynchronous, as over HTTP: a turn of the event loop passes. */
  private async enter(op: MapOp, volumeId: string, epoch?: number): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (volumeId !== this.volumeId) throw new Error(`no volume ${volumeId}`);
    const injected = this.fail?.(op);
    if (injected) {
      this.log.push({ seq: ++this.seq, op: 'refused', call: op, error: injected.message });
      throw injected;
    }
    if (epoch !== undefined) this.check(op, epoch);
  }

  private check(op: MapOp, epoch: number): void {
    if (epoch !== this.epoch) {
      this.log.push({ seq: ++this.seq, op: 'refused', call: op, error: 'lease lost' });
      throw new LeaseLost(this.volumeId, epoch);
    }
  }

  private node(id: string): NodeAddress {
    const n = this.nodes.get(id);
    if (!n) throw invalidState(`no storage node ${id}`);
    return n;
  }

  private entry(block: number, b: Block): BlockEntry {
    return { block, objectId: b.objectId, replicas: b.replicas.map((r) => ({ ...r })) };
  }
}
