import { Fault, KumoError, invalidParams, invalidState, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { isInterfaceName } from '../sdn/model/names.js';
import { isUnderlayAddress } from '../sdn/model/underlay.js';
import type { Topology } from '../sdn/types.js';
import type { Db, Q } from '../state/db.js';
import { now } from '../state/db.js';
import type { Events } from './events.js';
import type { Hosts } from './hosts.js';
import { requireAdmin, type Principal } from './principal.js';
import { checkName, checkRange } from './validate.js';
import { ensureZoneVlans, lockWithGateway, networksWithPlacedMembers, releaseZoneVlans } from './zone-vlans.js';
import type { Zones } from './zones.js';

/** MAC addresses an edge's table may hold when the operator does not say: a small top-of-rack
 * switch's table, so the scheduler's budget filter bites before the hardware would. */
export const DEFAULT_MAC_BUDGET = 16384;
const MAX_MAC_BUDGET = 1 << 24;

function checkInterface(name: string, what: string): void {
  if (!isInterfaceName(name)) throw invalidParams(`${what} must be a Linux interface name: 1–15 of A-Z a-z 0-9 _ . - not starting with . or - (got ${JSON.stringify(name.slice(0, 40))})`);
}

/**
 * The SDN topology (DESIGN.md §7): zones contain edge switches, hosts hang off an edge port, each
 * zone has one SDN gateway, and one zone may be the gateway zone. Registered by administrators;
 * `topology()` hands it to the config compiler.
 */
export class SdnTopology {
  constructor(private readonly db: Db, private readonly events: Events, private readonly zones: Zones, private readonly hosts: Hosts) {}

  async createEdge(p: Principal, a: { zone: string; name: string; uplink: string; macBudget?: number }): Promise<string> {
    requireAdmin(p);
    checkName(a.name, 'edge name');
    checkInterface(a.uplink, 'uplink');
    const macBudget = a.macBudget ?? DEFAULT_MAC_BUDGET;
    checkRange(macBudget, 1, MAX_MAC_BUDGET, 'macBudget');
    const id = newId('edge');
    await this.db.k.transaction().execute(async (trx) => {
      const zone = await this.zones.resolve(trx, a.zone);
      const same = await trx.selectFrom('edges').select('id').where('zone_id', '=', zone.id).where('name', '=', a.name).executeTakeFirst();
      if (same) throw new KumoError(Fault.CONFLICT, `zone ${zone.name} already has an edge named ${a.name} (${same.id})`);
      await trx.insertInto('edges').values({ id, zone_id: zone.id, name: a.name, uplink: a.uplink, mac_budget: macBudget, created_at: now() }).execute();
      await this.events.publish(trx, null, 'edge.created', id, { zoneId: zone.id, name: a.name });
    });
    return id;
  }

  async edgeList(p: Principal) {
    requireAdmin(p);
    const [edges, zones, hosts, macs] = await Promise.all([
      this.db.k.selectFrom('edges').selectAll().orderBy('name').orderBy('id').execute(),
      this.db.k.selectFrom('zones').select(['id', 'name']).execute(),
      this.db.k.selectFrom('hosts').where('edge_id', 'is not', null).select((eb) => ['edge_id', eb.fn.countAll<number>().as('n')]).groupBy('edge_id').execute(),
      // Every placed NIC behind the edge puts its MAC in the edge's table.
      this.db.k.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id').innerJoin('hosts', 'hosts.id', 'vms.host_id')
        .where('hosts.edge_id', 'is not', null).select((eb) => ['hosts.edge_id', eb.fn.countAll<number>().as('n')]).groupBy('hosts.edge_id').execute(),
    ]);
    const zn = new Map(zones.map((z) => [z.id, z.name]));
    const hc = new Map(hosts.map((h) => [h.edge_id, Number(h.n)]));
    const mc = new Map(macs.map((m) => [m.edge_id, Number(m.n)]));
    return edges.map((e) => ({
      edgeId: e.id, name: e.name, zone: zn.get(e.zone_id) ?? '', uplink: e.uplink, macBudget: e.mac_budget, hosts: hc.get(e.id) ?? 0, macsInUse: mc.get(e.id) ?? 0,
    }));
  }

  /** Wires a host to a port of an edge of its own zone; `uplink` is the host's interface to it. */
  async setHostEdge(p: Principal, hostId: string, a: { edgeId: string; port: string; uplink?: string }): Promise<true> {
    requireAdmin(p);
    checkInterface(a.port, 'port');
    if (a.uplink !== undefined) checkInterface(a.uplink, 'uplink');
    await this.db.k.transaction().execute(async (trx) => {
      const host = await this.hosts.row(trx, hostId);
      const edge = await trx.selectFrom('edges').selectAll().where('id', '=', a.edgeId).executeTakeFirst();
      if (!edge) throw notFound('edge', a.edgeId);
      if (edge.zone_id !== host.zone_id) {
        throw invalidParams(`${hostId} is in zone ${await this.zones.name(trx, host.zone_id)} and ${a.edgeId} in zone ${await this.zones.name(trx, edge.zone_id)}: a host hangs off an edge of its own zone`);
      }
      const taken = await trx.selectFrom('hosts').select('id').where('edge_id', '=', edge.id).where('edge_port', '=', a.port).where('id', '!=', hostId).executeTakeFirst();
      if (taken) throw new KumoError(Fault.CONFLICT, `port ${a.port} of ${edge.id} already wires ${taken.id}`);
      await trx.updateTable('hosts').set({ edge_id: edge.id, edge_port: a.port, ...(a.uplink !== undefined ? { uplink: a.uplink } : {}) }).where('id', '=', hostId).execute();
      await this.events.publish(trx, null, 'host.edge', hostId, { edgeId: edge.id, port: a.port, uplink: a.uplink ?? host.uplink });
    });
    return true;
  }

  /** Registers (or moves) a zone's SDN gateway: its VXLAN underlay address and its downlink port. */
  async setZoneGateway(p: Principal, zone: string, a: { underlayIp: string; downlink: string }): Promise<true> {
    requireAdmin(p);
    if (!isUnderlayAddress(a.underlayIp)) throw invalidParams(`underlayIp must be a unicast IPv4 address (got ${JSON.stringify(a.underlayIp.slice(0, 40))})`);
    checkInterface(a.downlink, 'downlink');
    await this.db.k.transaction().execute(async (trx) => {
      const z = await this.zones.resolve(trx, zone);
      const other = await trx.selectFrom('zones').select('name').where('gateway_underlay_ip', '=', a.underlayIp).where('id', '!=', z.id).executeTakeFirst();
      if (other) throw new KumoError(Fault.CONFLICT, `${a.underlayIp} is already the underlay address of zone ${other.name}'s gateway`);
      await trx.updateTable('zones').set({ gateway_underlay_ip: a.underlayIp, gateway_downlink: a.downlink }).where('id', '=', z.id).execute();
      await this.events.publish(trx, null, 'zone.gateway', z.id, { underlayIp: a.underlayIp, downlink: a.downlink });
    });
    return true;
  }

  /**
   * Makes `zone` the one gateway zone. Every network with a placed NIC gets a VLAN there at once (the
   * gateway zone carries all of them; NO_CAPACITY, and nothing changes, when its pool cannot), and
   * the old gateway zone gives back those only it needed.
   */
  async setGatewayZone(p: Principal, zone: string): Promise<true> {
    requireAdmin(p);
    await this.db.k.transaction().execute(async (trx) => {
      const z = await this.zones.resolve(trx, zone);
      if (!z.gateway_underlay_ip) throw invalidState(`zone ${z.name} has no SDN gateway yet; setZoneGateway first`);
      // Under the VLAN locks of both zones, so no placement reads a half-moved gateway zone.
      const old = await lockWithGateway(this.db, trx, new Set(), [z.id]);
      if (old === z.id) return;
      await trx.updateTable('zones').set({ gateway_zone: 0 }).where('gateway_zone', '=', 1).execute();
      await trx.updateTable('zones').set({ gateway_zone: 1 }).where('id', '=', z.id).execute();
      await ensureZoneVlans(trx, z.id, await networksWithPlacedMembers(trx));
      if (old !== null) await releaseZoneVlans(this.db, trx, old);
      await this.events.publish(trx, null, 'zone.gateway-zone', z.id, { previous: old });
    });
    return true;
  }

  /** The topology as the compiler takes it, sorted by id. */
  async topology(q: Q = this.db.k): Promise<Topology> {
    const [zones, edges, hosts] = await Promise.all([
      q.selectFrom('zones').select(['id', 'gateway_underlay_ip', 'gateway_downlink', 'gateway_zone']).orderBy('id').execute(),
      q.selectFrom('edges').select(['id', 'zone_id', 'uplink', 'mac_budget']).orderBy('id').execute(),
      q.selectFrom('hosts').select(['id', 'zone_id', 'edge_id', 'edge_port', 'uplink']).orderBy('id').execute(),
    ]);
    return {
      zones: zones.map((z) => ({
        zoneId: z.id,
        gateway: z.gateway_underlay_ip && z.gateway_downlink ? { underlayIp: z.gateway_underlay_ip, downlink: z.gateway_downlink } : null,
        gatewayZone: z.gateway_zone === 1,
      })),
      edges: edges.map((e) => ({ edgeId: e.id, zoneId: e.zone_id, uplink: e.uplink, macBudget: e.mac_budget })),
      hosts: hosts.map((h) => ({
        hostId: h.id, zoneId: h.zone_id, edge: h.edge_id && h.edge_port ? { edgeId: h.edge_id, port: h.edge_port } : null, uplink: h.uplink,
      })),
    };
  }
}
