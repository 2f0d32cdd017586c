import { relocate, type RelocateDeps } from '../../storage/controller/relocate.js';

export interface FollowReport {
  /** Per volume: the node a copy was added on in the new zone, and the far locations removed. */
  volumes: { volumeId: string; added: string[]; removed: string[]; note?: string }[];
}

/**
 * UKAI fig. 4: after a VM moved to another zone, each of its volumes gets a copy on a storage node
 * there for each far copy (built while the VM runs, through the new lease holder), and each far copy
 * goes once its near one is in sync. Without enough nodes up in the new zone, far copies stay.
 */
export async function followStorage(d: RelocateDeps, vmId: string, zoneId: string, say: (message: string) => Promise<void>): Promise<FollowReport> {
  const db = d.s.db;
  const disks = await db.k.selectFrom('vm_disks').select('volume_id').where('vm_id', '=', vmId).orderBy('slot').execute();
  const nodes = await db.k.selectFrom('storage_nodes').select(['id', 'zone_id', 'free_bytes']).where('status', '=', 'up').execute();
  const report: FollowReport = { volumes: [] };
  for (const { volume_id: volumeId } of disks) {
    const locs = await db.k.selectFrom('volume_locations').innerJoin('storage_nodes', 'storage_nodes.id', 'volume_locations.node_id')
      .select(['volume_locations.node_id', 'storage_nodes.zone_id']).where('volume_locations.volume_id', '=', volumeId).execute();
    const free = nodes.filter((n) => n.zone_id === zoneId && !locs.some((l) => l.node_id === n.id))
      .sort((x, y) => Number(y.free_bytes) - Number(x.free_bytes));
    const added: string[] = [];
    const removed: string[] = [];
    // One near copy for each far one, so the volume keeps its number of copies.
    for (const far of locs.filter((l) => l.zone_id !== zoneId)) {
      const next = free.shift();
      if (!next) break;
      await say(`copying ${volumeId} to ${next.id} in the VM's new zone`);
      await relocate(d, volumeId, { action: 'add', nodeId: next.id }, () => {});
      added.push(next.id);
      await say(`removing ${volumeId}'s far copy on ${far.node_id}`);
      await relocate(d, volumeId, { action: 'remove', nodeId: far.node_id }, () => {});
      removed.push(far.node_id);
    }
    const kept = locs.filter((l) => l.zone_id !== zoneId).length - removed.length;
    report.volumes.push({ volumeId, added, removed, ...(kept ? { note: `${kept} far cop${kept === 1 ? 'y stays' : 'ies stay'}: not enough storage nodes up in the new zone` } : {}) });
  }
  return report;
}
