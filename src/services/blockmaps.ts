import { sql } from 'kysely';
import { invalidParams, invalidState, notFound } from '../core/errors.js';
import type { Db, Q, Tx } from '../state/db.js';
import { now } from '../state/db.js';
import type { ObjectReplicaRow, VolumeLeaseRow } from '../state/schema.js';
import { REPLICA_STATES, blockCount, lastInSyncCopies, newObjectId } from '../storage/blockmap/index.js';
import { LeaseHeld, LeaseLost, type BlockEntry, type NodeAddress, type ReplicaChange, type VolumeMap } from '../storage/frontend/map.js';
import { addGarbage, addresses, allEntries, chunks, dropReplicas, entriesOf, insertReplicas, locationIds } from './blockmap-rows.js';
import { placeOrFail, placeVolume } from './volume-placement.js';

/** A write lease lapses this long after its last open or renew (VolumeMap.leaseMs). */
export const LEASE_MS = 30_000;
/** The most blocks or changes one call may carry. */
export const MAX_BATCH = 65536;

const GiB = 1024 ** 3;

export interface BlockMapsOptions {
  leaseMs?: number;
  /** The clock leases are measured by (ms since the epoch); tests move it instead of sleeping. */
  now?: () => number;
}

export interface LeaseInfo { holder: string; epoch: number; expiresAt: string }
export interface LocationCounts { nodeId: string; zone: string; inSync: number; syncing: number; outOfSync: number }

type VolumeFacts = { id: string; tenant_id: string; size_gib: number; block_size: number; replicas: number; zone_id: string | null };

function checkHolder(holder: unknown): asserts holder is string {
  if (typeof holder !== 'string' || holder.length === 0 || holder.length > 200) throw invalidParams('holder must be a non-empty string of at most 200 characters');
}

function checkBlocks(blocks: unknown, what = 'blocks'): asserts blocks is number[] {
  if (!Array.isArray(blocks) || blocks.length > MAX_BATCH) throw invalidParams(`${what} must be an array of at most ${MAX_BATCH} block indexes`);
  for (const b of blocks) if (!Number.isSafeInteger(b) || b < 0) throw invalidParams(`${what}: ${String(b).slice(0, 20)} is not a block index`);
}

/**
 * The controller's side of MapSource (storage/frontend/map.ts): every call names its holder — a host
 * id for an agent's frontend, `export:<id>` for `kumo vol export`, `controller:<name>` for the
 * controller's own sessions. Each call is one transaction under the volume's lock, so a change is
 * committed when the call returns (frontends acknowledge writes on that).
 *
 * The lease: one holder at a time; open() by the same holder or after expiry takes it with the
 * next epoch, fencing every older session; handover() passes it to a named holder the same way
 * (live migration); all other calls must name the current holder and epoch —
 * even after expiry, as long as nobody took the lease over — or fail with LeaseLost. A released
 * lease keeps its row (holder '') so epochs never start over.
 */
export class BlockMaps {
  readonly leaseMs: number;
  private readonly clock: () => number;

  constructor(private readonly db: Db, o: BlockMapsOptions = {}) {
    this.leaseMs = o.leaseMs ?? LEASE_MS;
    this.clock = o.now ?? Date.now;
  }

  private tx<T>(volumeId: string, fn: (trx: Tx) => Promise<T>): Promise<T> {
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vol:${volumeId}`);
      return fn(trx);
    });
  }

  private async volume(q: Q, volumeId: string): Promise<VolumeFacts> {
    const v = await q.selectFrom('volumes').select(['id', 'tenant_id', 'size_gib', 'block_size', 'replicas', 'zone_id']).where('id', '=', volumeId).executeTakeFirst();
    if (!v) throw notFound('volume', volumeId);
    return v;
  }

  private lease(q: Q, volumeId: string): Promise<VolumeLeaseRow | undefined> {
    return q.selectFrom('volume_leases').selectAll().where('volume_id', '=', volumeId).executeTakeFirst();
  }

  private live(l: VolumeLeaseRow | undefined): l is VolumeLeaseRow {
    return !!l && l.holder !== '' && Date.parse(l.expires_at) > this.clock();
  }

  /** The lease check of every call but open. */
  private async held(trx: Tx, volumeId: string, holder: string, epoch: unknown): Promise<void> {
    checkHolder(holder);
    if (!Number.isSafeInteger(epoch)) throw invalidParams('epoch must be an integer');
    const l = await this.lease(trx, volumeId);
    if (!l || l.holder !== holder || Number(l.epoch) !== epoch) throw new LeaseLost(volumeId, epoch as number);
  }

  private expiry(): string { return new Date(this.clock() + this.leaseMs).toISOString(); }

  private checkRange(v: VolumeFacts, blocks: number[]): void {
    const n = blockCount(v.size_gib * GiB, v.block_size);
    const bad = blocks.find((b) => b >= n);
    if (bad !== undefined) throw invalidParams(`block ${bad} is beyond the end of ${v.id} (${n} blocks of ${v.block_size} bytes)`);
  }

  async open(volumeId: string, holder: string): Promise<VolumeMap> {
    checkHolder(holder);
    return this.tx(volumeId, async (trx) => {
      const v = await this.volume(trx, volumeId);
      const l = await this.lease(trx, volumeId);
      if (this.live(l) && l.holder !== holder) throw new LeaseHeld(volumeId, l.holder);
      let locations = await locationIds(trx, volumeId);
      if (locations.length === 0) locations = await placeOrFail(trx, v, holder);
      const epoch = Number(l?.epoch ?? 0) + 1;
      const row = { holder, epoch, expires_at: this.expiry() };
      if (l) await trx.updateTable('volume_leases').set(row).where('volume_id', '=', volumeId).execute();
      else await trx.insertInto('volume_leases').values({ volume_id: volumeId, ...row }).execute();
      const blocks = [...(await allEntries(trx, volumeId)).values()];
      const nodeIds = new Set(locations);
      for (const b of blocks) for (const r of b.replicas) nodeIds.add(r.nodeId);
      return {
        volumeId, sizeBytes: v.size_gib * GiB, blockSize: v.block_size, epoch, leaseMs: this.leaseMs,
        locations, nodes: await addresses(trx, [...nodeIds]), blocks,
      };
    });
  }

  async renew(volumeId: string, holder: string, epoch: number): Promise<void> {
    await this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      await trx.updateTable('volume_leases').set({ expires_at: this.expiry() }).where('volume_id', '=', volumeId).execute();
    });
  }

  async release(volumeId: string, holder: string, epoch: number): Promise<void> {
    await this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      await trx.updateTable('volume_leases').set({ holder: '', expires_at: new Date(this.clock()).toISOString() }).where('volume_id', '=', volumeId).execute();
    });
  }

  /**
   * Live migration's switch-over: the lease goes to `toHolder` with the next epoch and a fresh
   * expiry, so every call of this epoch fails with LeaseLost and no third holder can open before
   * `toHolder` does. Sent again after it committed (its answer lost), it succeeds without a change.
   */
  async handover(volumeId: string, holder: string, epoch: number, toHolder: string): Promise<void> {
    checkHolder(holder);
    checkHolder(toHolder);
    if (toHolder === holder) throw invalidParams('the lease is handed over to another holder');
    await this.tx(volumeId, async (trx) => {
      const l = await this.lease(trx, volumeId);
      if (l && l.holder === toHolder && Number(l.epoch) === epoch + 1) return;
      await this.held(trx, volumeId, holder, epoch);
      await trx.updateTable('volume_leases').set({ holder: toHolder, epoch: epoch + 1, expires_at: this.expiry() }).where('volume_id', '=', volumeId).execute();
    });
  }

  /** New blocks get a fresh object, in-sync on every location; allocated ones come back as they are. */
  async allocate(volumeId: string, holder: string, epoch: number, blocks: number[]): Promise<BlockEntry[]> {
    checkBlocks(blocks);
    return this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      const v = await this.volume(trx, volumeId);
      this.checkRange(v, blocks);
      const want = [...new Set(blocks)];
      const have = await entriesOf(trx, volumeId, want);
      const missing = want.filter((b) => !have.has(b));
      if (missing.length) {
        let locations = await locationIds(trx, volumeId);
        if (locations.length === 0) locations = await placeOrFail(trx, v, holder);
        const rows = missing.map((block) => ({ volume_id: volumeId, block, object_id: newObjectId() }));
        for (const part of chunks(rows)) await trx.insertInto('volume_blocks').values(part).execute();
        await insertReplicas(trx, rows.flatMap((r) => locations.map((node_id) => ({ object_id: r.object_id, node_id, state: 'in-sync' as const }))));
        for (const r of rows) have.set(r.block, { block: r.block, objectId: r.object_id, replicas: locations.map((nodeId) => ({ nodeId, state: 'in-sync' as const })) });
      }
      return want.map((b) => have.get(b)!);
    });
  }

  /** Replica states of allocated blocks on the volume's locations; the last change of a (block, node) wins. */
  async update(volumeId: string, holder: string, epoch: number, changes: ReplicaChange[]): Promise<void> {
    if (!Array.isArray(changes) || changes.length > MAX_BATCH) throw invalidParams(`changes must be an array of at most ${MAX_BATCH}`);
    for (const c of changes) {
      if (typeof c !== 'object' || c === null || !Number.isSafeInteger(c.block) || c.block < 0 || typeof c.nodeId !== 'string'
        || (c.state !== null && !REPLICA_STATES.includes(c.state))) throw invalidParams(`not a replica change: ${JSON.stringify(c).slice(0, 100)}`);
    }
    await this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      const entries = await entriesOf(trx, volumeId, [...new Set(changes.map((c) => c.block))]);
      const locations = new Set(await locationIds(trx, volumeId));
      const last = new Map<string, ObjectReplicaRow | { object_id: string; node_id: string; state: null }>();
      for (const c of changes) {
        const e = entries.get(c.block);
        if (!e) throw invalidParams(`block ${c.block} of ${volumeId} is not allocated`);
        if (!locations.has(c.nodeId)) throw invalidParams(`${c.nodeId} is not a location of ${volumeId}`);
        last.set(`${e.objectId} ${c.nodeId}`, { object_id: e.objectId, node_id: c.nodeId, state: c.state });
      }
      const set = [...last.values()].filter((r): r is ObjectReplicaRow => r.state !== null);
      await insertReplicas(trx, set);
      const gone = [...last.values()].filter((r) => r.state === null);
      for (const nodeId of new Set(gone.map((r) => r.node_id))) {
        for (const part of chunks(gone.filter((r) => r.node_id === nodeId).map((r) => r.object_id))) {
          await trx.deleteFrom('object_replicas').where('node_id', '=', nodeId).where('object_id', 'in', part).execute();
        }
      }
    });
  }

  /** Unallocates blocks: their objects become garbage on every node that had a copy. */
  async discard(volumeId: string, holder: string, epoch: number, blocks: number[]): Promise<void> {
    checkBlocks(blocks);
    await this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      this.checkRange(await this.volume(trx, volumeId), blocks);
      const entries = [...(await entriesOf(trx, volumeId, [...new Set(blocks)])).values()];
      await addGarbage(trx, entries.flatMap((e) => e.replicas.map((r) => ({ node_id: r.nodeId, object_id: e.objectId }))));
      for (const part of chunks(entries)) {
        await trx.deleteFrom('object_replicas').where('object_id', 'in', part.map((e) => e.objectId)).execute();
        await trx.deleteFrom('volume_blocks').where('volume_id', '=', volumeId).where('block', 'in', part.map((e) => e.block)).execute();
      }
    });
  }

  async addLocation(volumeId: string, holder: string, epoch: number, nodeId: string): Promise<NodeAddress> {
    return this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      await this.checkAddable(trx, volumeId, nodeId);
      await trx.insertInto('volume_locations').values({ volume_id: volumeId, node_id: nodeId, added_at: now() }).execute();
      const objects = trx.selectFrom('volume_blocks').select('object_id').where('volume_id', '=', volumeId);
      await trx.insertInto('object_replicas').columns(['object_id', 'node_id', 'state'])
        .expression(objects.select([sql<string>`cast(${nodeId} as text)`.as('node_id'), sql<string>`cast('out-of-sync' as text)`.as('state')]))
        .onConflict((oc) => oc.columns(['object_id', 'node_id']).doUpdateSet({ state: 'out-of-sync' })).execute();
      return (await addresses(trx, [nodeId]))[0];
    });
  }

  async removeLocation(volumeId: string, holder: string, epoch: number, nodeId: string): Promise<void> {
    await this.tx(volumeId, async (trx) => {
      await this.held(trx, volumeId, holder, epoch);
      await this.checkRemovable(trx, volumeId, nodeId);
      await dropReplicas(trx, volumeId, nodeId);
      await trx.deleteFrom('volume_locations').where('volume_id', '=', volumeId).where('node_id', '=', nodeId).execute();
    });
  }

  /** addLocation's refusals, also checked before an addVolumeLocation request is queued. */
  async checkAddable(q: Q, volumeId: string, nodeId: string): Promise<void> {
    if (typeof nodeId !== 'string') throw invalidParams('nodeId must be a string');
    const n = await q.selectFrom('storage_nodes').select('id').where('id', '=', nodeId).executeTakeFirst();
    if (!n) throw notFound('storage node', nodeId);
    if ((await locationIds(q, volumeId)).includes(nodeId)) throw invalidState(`${nodeId} is already a location of ${volumeId}`);
    // Objects of this volume the node is yet to delete (it was a location before) would be deleted
    // under a new copy made with the same object ids: wait until the garbage collector is done.
    const stale = await q.selectFrom('storage_garbage').select((eb) => eb.fn.countAll<number>().as('n')).where('node_id', '=', nodeId)
      .where('object_id', 'in', q.selectFrom('volume_blocks').select('object_id').where('volume_id', '=', volumeId)).executeTakeFirst();
    if (Number(stale?.n ?? 0) > 0) {
      throw invalidState(`${nodeId} has not yet deleted ${Number(stale!.n)} objects of ${volumeId} from when it was a location; try again once it has (it must be up)`);
    }
  }

  /** removeLocation's refusals, also checked before a removeVolumeLocation request is queued. */
  async checkRemovable(q: Q, volumeId: string, nodeId: string): Promise<void> {
    if (typeof nodeId !== 'string') throw invalidParams('nodeId must be a string');
    const n = await q.selectFrom('storage_nodes').select('id').where('id', '=', nodeId).executeTakeFirst();
    if (!n) throw notFound('storage node', nodeId);
    const locations = await locationIds(q, volumeId);
    if (!locations.includes(nodeId)) throw invalidState(`${nodeId} is not a location of ${volumeId}`);
    if (locations.length === 1) throw invalidState(`${nodeId} is the only location of ${volumeId}; add another location first`);
    const entries = [...(await allEntries(q, volumeId)).values()].map((e) => ({ objectId: e.objectId, replicas: e.replicas }));
    const last = lastInSyncCopies(entries, [nodeId]);
    if (last.length) {
      throw invalidState(`${nodeId} holds the only in-sync copy of ${last.length} block${last.length === 1 ? '' : 's'} of ${volumeId}; wait until the other locations are in sync`);
    }
  }

  /** The epoch of the lease `holder` has (live, or lapsed with nobody after it); null when it has none. */
  async heldEpoch(volumeId: string, holder: string): Promise<number | null> {
    checkHolder(holder);
    const l = await this.lease(this.db.k, volumeId);
    return l && l.holder === holder ? Number(l.epoch) : null;
  }

  /** The volume's lease, live or lapsed; null when never taken or released. */
  async leaseOf(volumeId: string, q: Q = this.db.k): Promise<LeaseInfo | null> {
    const l = await this.lease(q, volumeId);
    return l && l.holder !== '' ? { holder: l.holder, epoch: Number(l.epoch), expiresAt: l.expires_at } : null;
  }

  /** Per location: how many of the volume's allocated blocks its copy has in each state. */
  async locations(volumeId: string, q: Q = this.db.k): Promise<LocationCounts[]> {
    const [locs, counts] = await Promise.all([
      q.selectFrom('volume_locations').innerJoin('storage_nodes', 'storage_nodes.id', 'volume_locations.node_id')
        .innerJoin('zones', 'zones.id', 'storage_nodes.zone_id').select(['volume_locations.node_id', 'zones.name as zone'])
        .where('volume_locations.volume_id', '=', volumeId).orderBy('volume_locations.added_at').orderBy('volume_locations.node_id').execute(),
      q.selectFrom('volume_blocks as b').innerJoin('object_replicas as r', 'r.object_id', 'b.object_id')
        .select((eb) => ['r.node_id', 'r.state', eb.fn.countAll<number>().as('n')]).where('b.volume_id', '=', volumeId)
        .groupBy(['r.node_id', 'r.state']).execute(),
    ]);
    return locs.map((l) => {
      const n = (state: string) => Number(counts.find((c) => c.node_id === l.node_id && c.state === state)?.n ?? 0);
      return { nodeId: l.node_id, zone: l.zone, inSync: n('in-sync'), syncing: n('syncing'), outOfSync: n('out-of-sync') };
    });
  }

  /** (volume, node) pairs with copies not in sync on a node that is up: work for the resync reconciler. */
  async needsResync(): Promise<{ volumeId: string; nodeId: string; tenantId: string }[]> {
    const rows = await this.db.k.selectFrom('object_replicas as r')
      .innerJoin('storage_nodes as n', 'n.id', 'r.node_id')
      .innerJoin('volume_blocks as b', 'b.object_id', 'r.object_id')
      .innerJoin('volumes as v', 'v.id', 'b.volume_id')
      .select(['b.volume_id', 'r.node_id', 'v.tenant_id']).distinct()
      .where('r.state', '<>', 'in-sync').where('n.status', '=', 'up')
      .orderBy('b.volume_id').orderBy('r.node_id').execute();
    return rows.map((r) => ({ volumeId: r.volume_id, nodeId: r.node_id, tenantId: r.tenant_id }));
  }

  /** Objects the node is to delete, oldest first; none of them has a replica row on it any more. */
  async garbage(nodeId: string, limit = 1000): Promise<string[]> {
    const rows = await this.db.k.selectFrom('storage_garbage').select('object_id').where('node_id', '=', nodeId)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('object_replicas').select('object_id')
        .whereRef('object_replicas.object_id', '=', 'storage_garbage.object_id').where('object_replicas.node_id', '=', nodeId))))
      .orderBy('created_at').orderBy('object_id').limit(Math.max(1, Math.min(limit, 10000))).execute();
    return rows.map((r) => r.object_id);
  }

  /** The node deleted these objects. */
  async garbageDone(nodeId: string, objectIds: string[]): Promise<void> {
    for (const part of chunks(objectIds)) await this.db.k.deleteFrom('storage_garbage').where('node_id', '=', nodeId).where('object_id', 'in', part).execute();
  }

  /** Places a new volume's locations when storage nodes are up (else its first open does). */
  async placeNew(q: Q, volumeId: string): Promise<void> {
    const v = await this.volume(q, volumeId);
    if ((await locationIds(q, volumeId)).length === 0) await placeVolume(q, v);
  }

  /**
   * The block map part of deleting a volume, inside the caller's transaction: every copy becomes
   * garbage. Refused while a frontend holds the volume's live lease.
   */
  async dropVolume(trx: Tx, volumeId: string): Promise<void> {
    await this.db.lock(trx, `vol:${volumeId}`);
    const l = await this.lease(trx, volumeId);
    if (this.live(l)) throw invalidState(`${volumeId} is in use by ${l.holder} (its write lease runs until ${l.expires_at}); stop it first`);
    await dropReplicas(trx, volumeId);
    await trx.deleteFrom('volume_blocks').where('volume_id', '=', volumeId).execute();
    await trx.deleteFrom('volume_locations').where('volume_id', '=', volumeId).execute();
    await trx.deleteFrom('volume_leases').where('volume_id', '=', volumeId).execute();
  }
}
