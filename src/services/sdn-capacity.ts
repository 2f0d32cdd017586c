import type { EdgeCapacity, NetworkDemand, VlanPool } from '../scheduler/index.js';
import { VLAN_COUNT } from '../sdn/model/vlans.js';
import type { Q } from '../state/db.js';
import { gatewayZoneId } from './zone-vlans.js';

/**
 * The SDN part of the scheduler's snapshot (src/scheduler/types.ts), read from the store, for
 * capacitySnapshot to merge: each edge's MAC entries (every placed NIC behind it) against its
 * budget and the VLANs its trunks carry, each zone's free VLAN IDs, the gateway zone, and which
 * edge each host hangs off. Zones are named by id, as HostCapacity.zone is.
 */
export async function sdnSnapshot(q: Q): Promise<{ edges: EdgeCapacity[]; vlanPools: VlanPool[]; gatewayZone: string | null; hostEdges: Map<string, string | null> }> {
  const [edges, hosts, macs, carried, zones, used, gatewayZone] = await Promise.all([
    q.selectFrom('edges').select(['id', 'zone_id', 'mac_budget']).orderBy('id').execute(),
    q.selectFrom('hosts').select(['id', 'edge_id']).execute(),
    q.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').innerJoin('hosts', 'hosts.id', 'vms.host_id')
      .where('hosts.edge_id', 'is not', null).select((eb) => ['hosts.edge_id', eb.fn.countAll<number>().as('n')]).groupBy('hosts.edge_id').execute(),
    // An edge trunks the VLAN (in its zone) of every network with a placed NIC on one of its hosts.
    q.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').innerJoin('hosts', 'hosts.id', 'vms.host_id')
      .innerJoin('network_zone_vlans', (j) => j.onRef('network_zone_vlans.network_id', '=', 'vm_nics.network_id').onRef('network_zone_vlans.zone_id', '=', 'hosts.zone_id'))
      .where('hosts.edge_id', 'is not', null).select(['hosts.edge_id', 'network_zone_vlans.vlan']).distinct().execute(),
    q.selectFrom('zones').select('id').execute(),
    q.selectFrom('network_zone_vlans').select((eb) => ['zone_id', eb.fn.countAll<number>().as('n')]).groupBy('zone_id').execute(),
    gatewayZoneId(q),
  ]);
  const macsOf = new Map(macs.map((m) => [m.edge_id, Number(m.n)]));
  const vlansOf = new Map<string, number[]>();
  for (const c of carried) vlansOf.set(c.edge_id!, [...(vlansOf.get(c.edge_id!) ?? []), c.vlan]);
  const usedIn = new Map(used.map((u) => [u.zone_id, Number(u.n)]));
  return {
    edges: edges.map((e) => ({ edgeId: e.id, zone: e.zone_id, macBudget: e.mac_budget, macs: macsOf.get(e.id) ?? 0, vlans: (vlansOf.get(e.id) ?? []).sort((a, b) => a - b) })),
    vlanPools: zones.map((z) => ({ zone: z.id, free: VLAN_COUNT - (usedIn.get(z.id) ?? 0) })),
    gatewayZone,
    hostEdges: new Map(hosts.map((h) => [h.id, h.edge_id])),
  };
}

/** A VM's demand on the SDN: its private networks (each once, with the VLANs they hold now) and its NIC count. */
export async function vmNetworkDemand(q: Q, vmId: string): Promise<{ networks: NetworkDemand[]; nics: number }> {
  const nics = await q.selectFrom('vm_nics').innerJoin('networks', 'networks.id', 'vm_nics.network_id')
    .select(['vm_nics.network_id', 'networks.kind']).where('vm_nics.vm_id', '=', vmId).execute();
  const ids = [...new Set(nics.filter((n) => n.kind === 'private').map((n) => n.network_id))].sort();
  const vlans = ids.length ? await q.selectFrom('network_zone_vlans').select(['network_id', 'zone_id', 'vlan']).where('network_id', 'in', ids).execute() : [];
  return {
    networks: ids.map((networkId) => ({ networkId, zoneVlans: Object.fromEntries(vlans.filter((v) => v.network_id === networkId).map((v) => [v.zone_id, v.vlan])) })),
    nics: nics.length,
  };
}
