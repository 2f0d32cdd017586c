import { sql } from 'kysely';
import type { Q } from '../state/db.js';
import { now } from '../state/db.js';
import type { ObjectReplicaRow } from '../state/schema.js';
import type { ReplicaState } from '../storage/blockmap/index.js';
import type { BlockEntry, NodeAddress } from '../storage/frontend/map.js';
import { nodeAddress } from './storage-nodes.js';

/**
 * Row-level reads and writes of the block map, shared by BlockMaps and the volume deletions.
 * Lists go to the store in chunks: SQLite and PostgreSQL bound the parameters of one statement.
 */
export const CHUNK = 500;

export function chunks<T>(xs: readonly T[], n = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

export async function locationIds(q: Q, volumeId: string): Promise<string[]> {
  const rows = await q.selectFrom('volume_locations').select('node_id').where('volume_id', '=', volumeId).orderBy('added_at').orderBy('node_id').execute();
  return rows.map((r) => r.node_id);
}

type JoinedRow = { block: number; object_id: string; node_id: string | null; state: ReplicaState | null };

function group(rows: JoinedRow[]): Map<number, BlockEntry> {
  const out = new Map<number, BlockEntry>();
  for (const r of rows) {
    const block = Number(r.block);
    let e = out.get(block);
    if (!e) out.set(block, e = { block, objectId: r.object_id, replicas: [] });
    if (r.node_id !== null && r.state !== null) e.replicas.push({ nodeId: r.node_id, state: r.state });
  }
  return out;
}

const joined = (q: Q, volumeId: string) => q.selectFrom('volume_blocks as b')
  .leftJoin('object_replicas as r', 'r.object_id', 'b.object_id')
  .select(['b.block', 'b.object_id', 'r.node_id', 'r.state']).where('b.volume_id', '=', volumeId);

/** Every allocated block of a volume with its replicas, by block. */
export async function allEntries(q: Q, volumeId: string): Promise<Map<number, BlockEntry>> {
  return group(await joined(q, volumeId).orderBy('b.block').orderBy('r.node_id').execute());
}

/** The allocated ones among `blocks`, with their replicas. */
export async function entriesOf(q: Q, volumeId: string, blocks: readonly number[]): Promise<Map<number, BlockEntry>> {
  const out = new Map<number, BlockEntry>();
  for (const part of chunks(blocks)) {
    for (const [b, e] of group(await joined(q, volumeId).where('b.block', 'in', part).orderBy('b.block').orderBy('r.node_id').execute())) out.set(b, e);
  }
  return out;
}

/** Addresses of the given nodes (unknown ids are skipped), in the order given. */
export async function addresses(q: Q, nodeIds: readonly string[]): Promise<NodeAddress[]> {
  if (nodeIds.length === 0) return [];
  const rows = await q.selectFrom('storage_nodes').innerJoin('zones', 'zones.id', 'storage_nodes.zone_id')
    .select(['storage_nodes.id', 'storage_nodes.host', 'storage_nodes.port', 'storage_nodes.node_token', 'zones.name as zone'])
    .where('storage_nodes.id', 'in', [...nodeIds]).execute();
  const by = new Map(rows.map((r) => [r.id, nodeAddress(r, r.zone)]));
  return nodeIds.flatMap((id) => by.get(id) ?? []);
}

export async function insertReplicas(q: Q, rows: ObjectReplicaRow[]): Promise<void> {
  for (const part of chunks(rows)) {
    await q.insertInto('object_replicas').values(part)
      .onConflict((oc) => oc.columns(['object_id', 'node_id']).doUpdateSet((eb) => ({ state: eb.ref('excluded.state') }))).execute();
  }
}

/** Objects a node is to delete; an object already listed stays listed once. */
export async function addGarbage(q: Q, rows: { node_id: string; object_id: string }[]): Promise<void> {
  const at = now();
  for (const part of chunks(rows)) {
    await q.insertInto('storage_garbage').values(part.map((r) => ({ ...r, created_at: at })))
      .onConflict((oc) => oc.columns(['node_id', 'object_id']).doNothing()).execute();
  }
}

/** Makes every replica of the volume's objects on `nodeId` (or on any node) garbage, then deletes those replica rows. */
export async function dropReplicas(q: Q, volumeId: string, nodeId?: string): Promise<void> {
  const objects = q.selectFrom('volume_blocks').select('object_id').where('volume_id', '=', volumeId);
  let pick = q.selectFrom('object_replicas').select(['node_id', 'object_id', sql<string>`cast(${now()} as text)`.as('created_at')])
    .where('object_id', 'in', objects);
  if (nodeId !== undefined) pick = pick.where('node_id', '=', nodeId);
  await q.insertInto('storage_garbage').columns(['node_id', 'object_id', 'created_at']).expression(pick)
    .onConflict((oc) => oc.columns(['node_id', 'object_id']).doNothing()).execute();
  let del = q.deleteFrom('object_replicas').where('object_id', 'in', objects);
  if (nodeId !== undefined) del = del.where('node_id', '=', nodeId);
  await del.execute();
}
