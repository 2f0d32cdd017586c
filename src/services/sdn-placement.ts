import { parseCidr } from '../core/ipv4.js';
import type { PlacedNetwork, PlacedNic, Placement } from '../sdn/types.js';
import type { Q } from '../state/db.js';

/**
 * Placement (src/sdn/types.ts) read from the state store: the input of the SDN config compiler.
 *
 * Only private networks are in it. Shared L3 networks have no VNI and no zone VLAN; they are routed,
 * not switched, and stay out of the L2 datapath for now, together with the NICs attached to them.
 * NICs are those of VMs with a host (vms.host_id set: starting, running, stopping, migrating);
 * networks are those with a zone VLAN or a placed NIC. Arrays are sorted (networks by id, NICs by
 * VM and slot, addresses by text) so equal stores give equal placements.
 */

const CHUNK = 500;
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The whole placement. */
export async function placement(q: Q): Promise<Placement> {
  return build(q, null);
}

/**
 * What one host's config needs: the NICs placed on it and their networks (each with its VLANs in
 * every zone, which the gateway side of a diff also reads).
 */
export async function placementForHost(q: Q, hostId: string): Promise<Placement> {
  return build(q, hostId);
}

async function build(q: Q, hostId: string | null): Promise<Placement> {
  let nicQuery = q.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').innerJoin('networks', 'networks.id', 'vm_nics.network_id')
    .select(['vm_nics.vm_id', 'vm_nics.slot', 'vms.host_id', 'vm_nics.network_id', 'vm_nics.mac'])
    .where('vms.host_id', 'is not', null).where('networks.kind', '=', 'private');
  let ipQuery = q.selectFrom('nic_addresses').innerJoin('vms', 'vms.id', 'nic_addresses.vm_id').innerJoin('networks', 'networks.id', 'nic_addresses.network_id')
    .select(['nic_addresses.vm_id', 'nic_addresses.slot', 'nic_addresses.ip'])
    .where('vms.host_id', 'is not', null).where('networks.kind', '=', 'private');
  if (hostId !== null) {
    nicQuery = nicQuery.where('vms.host_id', '=', hostId);
    ipQuery = ipQuery.where('vms.host_id', '=', hostId);
  }
  const [nicRows, ipRows] = await Promise.all([nicQuery.execute(), ipQuery.execute()]);

  const ips = new Map<string, string[]>();
  for (const r of ipRows) {
    const k = `${r.vm_id}/${r.slot}`;
    ips.set(k, [...(ips.get(k) ?? []), r.ip]);
  }
  const nics: PlacedNic[] = nicRows.map((r) => ({
    vmId: r.vm_id, slot: r.slot, hostId: r.host_id!, networkId: r.network_id, mac: r.mac, ips: (ips.get(`${r.vm_id}/${r.slot}`) ?? []).sort(byText),
  })).sort((a, b) => byText(a.vmId, b.vmId) || a.slot - b.slot);

  return { networks: await networksOf(q, hostId === null ? null : [...new Set(nics.map((n) => n.networkId))]), nics };
}

/** Networks with their zone VLANs: every one in use (`ids` null), or just `ids`. */
async function networksOf(q: Q, ids: string[] | null): Promise<PlacedNetwork[]> {
  type NetRow = { id: string; vni: number | null; cidr: string; gateway: string };
  type VlanRow = { network_id: string; zone_id: string; vlan: number };
  const nets: NetRow[] = [];
  const vlans: VlanRow[] = [];
  if (ids === null) {
    nets.push(...await q.selectFrom('networks').select(['id', 'vni', 'cidr', 'gateway']).where('kind', '=', 'private')
      .where((eb) => eb.or([
        eb.exists(eb.selectFrom('network_zone_vlans').select('vlan').whereRef('network_zone_vlans.network_id', '=', 'networks.id')),
        eb.exists(eb.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').select('vm_nics.slot')
          .whereRef('vm_nics.network_id', '=', 'networks.id').where('vms.host_id', 'is not', null)),
      ])).execute());
    vlans.push(...await q.selectFrom('network_zone_vlans').innerJoin('networks', 'networks.id', 'network_zone_vlans.network_id')
      .select(['network_zone_vlans.network_id', 'network_zone_vlans.zone_id', 'network_zone_vlans.vlan']).where('networks.kind', '=', 'private').execute());
  } else {
    for (let i = 0; i < ids.length; i += CHUNK) {
      const c = ids.slice(i, i + CHUNK);
      nets.push(...await q.selectFrom('networks').select(['id', 'vni', 'cidr', 'gateway']).where('id', 'in', c).execute());
      vlans.push(...await q.selectFrom('network_zone_vlans').select(['network_id', 'zone_id', 'vlan']).where('network_id', 'in', c).execute());
    }
  }
  const zoneVlans = new Map<string, [string, number][]>();
  for (const v of vlans) zoneVlans.set(v.network_id, [...(zoneVlans.get(v.network_id) ?? []), [v.zone_id, v.vlan]]);
  return nets.map((n) => ({
    networkId: n.id, vni: n.vni!,
    zoneVlans: Object.fromEntries((zoneVlans.get(n.id) ?? []).sort((a, b) => byText(a[0], b[0]))),
    gateway: n.gateway, prefix: parseCidr(n.cidr)!.prefix,
  })).sort((a, b) => byText(a.networkId, b.networkId));
}
