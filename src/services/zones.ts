import { invalidParams, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db, Q } from '../state/db.js';
import { now } from '../state/db.js';
import type { ZoneRow } from '../state/schema.js';
import { requireAdmin, type Principal } from './principal.js';
import { checkName } from './validate.js';

export class Zones {
  constructor(private readonly db: Db) {}

  /** Accepts a zone's id or its name, as users type either. */
  async resolve(q: Q, zone: string): Promise<ZoneRow> {
    const z = await q.selectFrom('zones').selectAll().where((eb) => eb.or([eb('id', '=', zone), eb('name', '=', zone)])).executeTakeFirst();
    if (!z) throw invalidParams(`unknown zone ${JSON.stringify(zone.slice(0, 64))}; getZoneList lists them`);
    return z;
  }

  /** Zones come into being when the first agent or storage node of that name registers. */
  async ensure(q: Q, name: string): Promise<ZoneRow> {
    checkName(name, 'zone');
    const z = await q.selectFrom('zones').selectAll().where('name', '=', name).executeTakeFirst();
    if (z) return z;
    const row = { id: newId('zone'), name, created_at: now() };
    await q.insertInto('zones').values(row).onConflict((oc) => oc.column('name').doNothing()).execute();
    return q.selectFrom('zones').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
  }

  async list(p: Principal) {
    const count = (table: 'hosts' | 'edges' | 'network_zone_vlans') =>
      this.db.k.selectFrom(table).select((eb) => ['zone_id', eb.fn.countAll<number>().as('n')]).groupBy('zone_id').execute()
        .then((rows) => new Map(rows.map((r) => [r.zone_id, Number(r.n)])));
    const [zones, admin] = await Promise.all([
      this.db.k.selectFrom('zones').selectAll().orderBy('name').execute(),
      p.admin ? Promise.all([count('hosts'), count('edges'), count('network_zone_vlans')]) : null,
    ]);
    return zones.map((z) => ({
      zoneId: z.id, name: z.name, gatewayZone: z.gateway_zone === 1,
      // The underlay and VLAN usage are the operator's business (VLAN IDs in use vs the 4,093 a zone has).
      ...(admin ? {
        hosts: admin[0].get(z.id) ?? 0, edges: admin[1].get(z.id) ?? 0, vlansInUse: admin[2].get(z.id) ?? 0,
        gatewayUnderlayIp: z.gateway_underlay_ip ?? '', gatewayDownlink: z.gateway_downlink ?? '',
      } : {}),
    }));
  }

  async create(p: Principal, name: string) {
    requireAdmin(p);
    return (await this.ensure(this.db.k, name)).id;
  }

  async name(q: Q, zoneId: string | null): Promise<string> {
    if (!zoneId) return '';
    const z = await q.selectFrom('zones').select('name').where('id', '=', zoneId).executeTakeFirst();
    if (!z) throw notFound('zone', zoneId);
    return z.name;
  }
}
