import { Fault, KumoError } from '../core/errors.js';
import { allocateVlan, VLAN_COUNT, type ZonePool } from '../sdn/model/vlans.js';
import { neededVlans, unneededRows, type ZoneMember } from '../sdn/model/vlan-needs.js';
import type { Db, Q, Tx } from '../state/db.js';

/**
 * Zone VLANs follow a network's placed members (DESIGN.md §5): acquired in the transaction that
 * places a VM in a zone, given back when the last NIC of the network leaves the zone. "Placed" means
 * the VM has a host (vms.host_id: starting, running, stopping, migrating); the host gives the zone.
 *
 * Every change to a zone's VLAN rows holds the zone's lock (`vlans:<zoneId>`) until commit, so an
 * acquire and a release in one zone never interleave: the release sees the newly placed member, or
 * the acquire sees the row gone and allocates again. Locks are taken in zone-id order.
 */

/** `in (…)` lists stay well under both stores' parameter limits. */
const CHUNK = 500;
const chunked = <T>(xs: T[]): T[][] => Array.from({ length: Math.ceil(xs.length / CHUNK) }, (_, i) => xs.slice(i * CHUNK, (i + 1) * CHUNK));

export const vlanLock = (zoneId: string) => `vlans:${zoneId}`;

export async function gatewayZoneId(q: Q): Promise<string | null> {
  return (await q.selectFrom('zones').select('id').where('gateway_zone', '=', 1).executeTakeFirst())?.id ?? null;
}

/** Locks the zones of `zoneIds` not yet in `held`, in sorted order, and records them there. */
async function lockZones(db: Db, trx: Tx, held: Set<string>, zoneIds: Iterable<string>): Promise<void> {
  for (const z of [...new Set(zoneIds)].filter((z) => !held.has(z)).sort()) {
    await db.lock(trx, vlanLock(z));
    held.add(z);
  }
}

/**
 * Locks `zoneIds` and the gateway zone, and returns the gateway zone. The gateway zone is read again
 * once its lock is held: setGatewayZone moves it under the locks of the old and new gateway zones.
 */
export async function lockWithGateway(db: Db, trx: Tx, held: Set<string>, zoneIds: string[]): Promise<string | null> {
  let gw = await gatewayZoneId(trx);
  for (;;) {
    await lockZones(db, trx, held, gw === null ? zoneIds : [...zoneIds, gw]);
    const now = await gatewayZoneId(trx);
    if (now === gw) return gw;
    gw = now;
  }
}

/** The private networks of a VM's NICs (shared L3 networks have no VLANs). */
async function privateNetworksOf(q: Q, vmId: string): Promise<string[]> {
  const rows = await q.selectFrom('vm_nics').innerJoin('networks', 'networks.id', 'vm_nics.network_id')
    .select('vm_nics.network_id').distinct().where('vm_nics.vm_id', '=', vmId).where('networks.kind', '=', 'private').execute();
  return rows.map((r) => r.network_id).sort();
}

/** Zones where each of `networkIds` has a placed NIC. */
async function placedMembers(q: Q, networkIds: string[]): Promise<ZoneMember[]> {
  const out: ZoneMember[] = [];
  for (const ids of chunked(networkIds)) {
    const rows = await q.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').innerJoin('hosts', 'hosts.id', 'vms.host_id')
      .select(['vm_nics.network_id', 'hosts.zone_id']).distinct().where('vm_nics.network_id', 'in', ids).execute();
    for (const r of rows) out.push({ networkId: r.network_id, zoneId: r.zone_id });
  }
  return out;
}

/**
 * Gives each of `networkIds` a VLAN in the zone, lowest free first; networks that have one keep it.
 * The caller holds the zone's lock. A zone with no VLAN ID left fails the whole transaction with
 * NO_CAPACITY, so nothing of the placement stays.
 */
export async function ensureZoneVlans(trx: Tx, zoneId: string, networkIds: string[]): Promise<void> {
  if (networkIds.length === 0) return;
  const rows = await trx.selectFrom('network_zone_vlans').select(['network_id', 'vlan']).where('zone_id', '=', zoneId).execute();
  let pool: ZonePool = Object.fromEntries(rows.map((r) => [r.network_id, r.vlan]));
  for (const networkId of networkIds) {
    if (pool[networkId] !== undefined) continue;
    const got = allocateVlan(pool, networkId);
    if (!got) {
      const z = await trx.selectFrom('zones').select('name').where('id', '=', zoneId).executeTakeFirst();
      throw new KumoError(Fault.NO_CAPACITY, `zone ${z?.name ?? zoneId} (${zoneId}) has no free VLAN ID for ${networkId}: all ${VLAN_COUNT} are in use`);
    }
    pool = got.pool;
    await trx.insertInto('network_zone_vlans').values({ network_id: networkId, zone_id: zoneId, vlan: got.vlan }).execute();
  }
}

/**
 * Call in the transaction that places `vmId` on a host of `zoneId` (power-on, migration target):
 * each private network of its NICs gets a VLAN in that zone and, when there is a gateway zone, in
 * the gateway zone too. Throws NO_CAPACITY naming the zone whose pool is empty.
 */
export async function acquireZoneVlans(db: Db, trx: Tx, vmId: string, zoneId: string): Promise<void> {
  const networks = await privateNetworksOf(trx, vmId);
  if (networks.length === 0) return;
  const gw = await lockWithGateway(db, trx, new Set(), [zoneId]);
  for (const z of [...new Set(gw === null ? [zoneId] : [zoneId, gw])].sort()) await ensureZoneVlans(trx, z, networks);
}

/**
 * Gives back the VLANs of `networkIds` that no placed member needs any more, in every zone
 * (the gateway zone's while the network has a placed NIC anywhere). Returns how many went.
 */
export async function releaseNetworkVlans(db: Db, trx: Tx, networkIds: string[]): Promise<number> {
  const ids = [...new Set(networkIds)].sort();
  if (ids.length === 0) return 0;
  const zonesOf = async () => {
    const zones = new Set<string>();
    for (const c of chunked(ids)) {
      for (const r of await trx.selectFrom('network_zone_vlans').select('zone_id').distinct().where('network_id', 'in', c).execute()) zones.add(r.zone_id);
    }
    return zones;
  };
  const held = new Set<string>();
  const gw = await lockWithGateway(db, trx, held, [...await zonesOf()]);
  // Read again under the locks: only rows of locked zones may go.
  const rows: ZoneMember[] = [];
  for (const c of chunked(ids)) {
    for (const r of await trx.selectFrom('network_zone_vlans').select(['network_id', 'zone_id']).where('network_id', 'in', c).execute()) {
      if (held.has(r.zone_id)) rows.push({ networkId: r.network_id, zoneId: r.zone_id });
    }
  }
  const drop = unneededRows(rows, neededVlans(await placedMembers(trx, ids), gw));
  const byZone = new Map<string, string[]>();
  for (const r of drop) byZone.set(r.zoneId, [...(byZone.get(r.zoneId) ?? []), r.networkId]);
  for (const [zoneId, nets] of byZone) {
    for (const c of chunked(nets)) await trx.deleteFrom('network_zone_vlans').where('zone_id', '=', zoneId).where('network_id', 'in', c).execute();
  }
  return drop.length;
}

/**
 * Call in the transaction that takes `vmId` off its host (stop, crash, migration source) once
 * vms.host_id no longer names that host: networks of its NICs with no placed NIC left in a zone give
 * that zone's VLAN back. Returns how many VLANs went.
 */
export async function releaseVmVlans(db: Db, trx: Tx, vmId: string): Promise<number> {
  return releaseNetworkVlans(db, trx, await privateNetworksOf(trx, vmId));
}

/** Sweeps one zone: every network holding a VLAN there that no placed member needs gives it back
 * (also in the gateway zone when the network has no placed NIC anywhere). */
export async function releaseZoneVlans(db: Db, trx: Tx, zoneId: string): Promise<number> {
  const nets = await trx.selectFrom('network_zone_vlans').select('network_id').where('zone_id', '=', zoneId).execute();
  return releaseNetworkVlans(db, trx, nets.map((r) => r.network_id));
}

/** Private networks with a placed NIC anywhere: those the gateway zone carries. */
export async function networksWithPlacedMembers(q: Q): Promise<string[]> {
  const rows = await q.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').innerJoin('networks', 'networks.id', 'vm_nics.network_id')
    .select('vm_nics.network_id').distinct().where('vms.host_id', 'is not', null).where('networks.kind', '=', 'private').execute();
  return rows.map((r) => r.network_id).sort();
}
