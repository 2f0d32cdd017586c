import { Fault, KumoError, invalidState } from '../core/errors.js';
import type { Q } from '../state/db.js';
import { now } from '../state/db.js';
import { placeReplicas, type NodeCandidate } from '../storage/blockmap/index.js';

/** The volume columns placement reads. */
export interface PlacedVolume { id: string; replicas: number; zone_id: string | null }

/**
 * Copies a volume gets when its creator names none: two once two storage nodes exist (a node may
 * fail), else one (`kumo up` with its single node).
 */
export async function defaultReplicas(q: Q): Promise<number> {
  const row = await q.selectFrom('storage_nodes').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
  return Math.max(1, Math.min(2, Number(row?.n ?? 0)));
}

export async function candidates(q: Q): Promise<NodeCandidate[]> {
  const rows = await q.selectFrom('storage_nodes').select(['id', 'zone_id', 'free_bytes', 'status']).execute();
  return rows.map((n) => ({ nodeId: n.id, zone: n.zone_id, freeBytes: Number(n.free_bytes), up: n.status === 'up' }));
}

/** The zone copies should be near: the volume's own, else that of the host about to use it. */
async function preferredZone(q: Q, v: PlacedVolume, holder?: string): Promise<string | undefined> {
  if (v.zone_id) return v.zone_id;
  if (!holder?.startsWith('host-')) return undefined;
  const h = await q.selectFrom('hosts').select('zone_id').where('id', '=', holder).executeTakeFirst();
  return h?.zone_id;
}

/**
 * Chooses a volume's locations — min(replicas, nodes up) distinct nodes, the first near the volume —
 * and records them. Returns the node ids, or null when no node is up (nothing recorded).
 * The caller holds the volume's lock and has seen it has no location.
 */
export async function placeVolume(q: Q, v: PlacedVolume, holder?: string): Promise<string[] | null> {
  const nodes = await candidates(q);
  const up = nodes.filter((n) => n.up).length;
  if (up === 0) return null;
  const r = placeReplicas({ replicas: Math.min(v.replicas, up), candidates: nodes, preferredZone: await preferredZone(q, v, holder) });
  if (!r.ok) throw new KumoError(Fault.NO_CAPACITY, `cannot place ${v.id}: ${r.reason}`);
  const at = now();
  await q.insertInto('volume_locations').values(r.nodeIds.map((node_id) => ({ volume_id: v.id, node_id, added_at: at }))).execute();
  return r.nodeIds;
}

/** As placeVolume, but a volume must get somewhere: no node up is an error the operator can act on. */
export async function placeOrFail(q: Q, v: PlacedVolume, holder?: string): Promise<string[]> {
  const placed = await placeVolume(q, v, holder);
  if (!placed) throw invalidState(`no storage node is up: start \`kumo storage-node\` (or check why the registered ones stopped reporting) before using ${v.id}`);
  return placed;
}
