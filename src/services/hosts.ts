import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Fault, KumoError, invalidParams, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db, Q } from '../state/db.js';
import { bool, now } from '../state/db.js';
import type { HostRow } from '../state/schema.js';
import type { Events } from './events.js';
import { requireAdmin, SYSTEM, type Principal } from './principal.js';
import { activeOn, type Requests } from './requests.js';
import { checkName, checkRange } from './validate.js';
import type { Zones } from './zones.js';

export interface HostRegistration {
  name: string; vcpus: number; memoryMiB: number; architectures: string[];
  pool?: 'shared' | 'dedicated'; dedicatedTenant?: string | null;
}
export interface AgentRegistration { zone: string; url: string; driver: string; accel: string; hosts: HostRegistration[] }

/** An agent that has not been heard from for this long is down: the scheduler skips its hosts. */
export const HOST_DOWN_AFTER_MS = 30_000;

const sameSecret = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const hostInfo = (h: HostRow, zoneName: string, vms: number) => ({
  hostId: h.id, name: h.name, zone: zoneName, vcpus: h.vcpus, memoryMiB: h.memory_mib, pool: h.pool,
  dedicatedTenant: h.dedicated_tenant ?? '', maintenance: h.maintenance === 1, status: h.status,
  driver: h.driver, accel: h.accel, architectures: h.architectures.split(','), lastSeen: h.last_seen, vms,
  // Its wiring (setHostEdge): '' while it hangs off no edge.
  edgeId: h.edge_id ?? '', edgePort: h.edge_port ?? '', uplink: h.uplink,
});

export class Hosts {
  constructor(private readonly db: Db, private readonly events: Events, private readonly zones: Zones) {}

  async list(p: Principal) {
    requireAdmin(p);
    const [hosts, zones, counts] = await Promise.all([
      this.db.k.selectFrom('hosts').selectAll().orderBy('name').execute(),
      this.db.k.selectFrom('zones').selectAll().execute(),
      this.db.k.selectFrom('vms').where('host_id', 'is not', null).select((eb) => ['host_id', eb.fn.countAll<number>().as('n')]).groupBy('host_id').execute(),
    ]);
    const zn = new Map(zones.map((z) => [z.id, z.name]));
    const vc = new Map(counts.map((c) => [c.host_id, Number(c.n)]));
    return hosts.map((h) => hostInfo(h, zn.get(h.zone_id) ?? '', vc.get(h.id) ?? 0));
  }

  async row(q: Q, hostId: string): Promise<HostRow> {
    const h = await q.selectFrom('hosts').selectAll().where('id', '=', hostId).executeTakeFirst();
    if (!h) throw notFound('host', hostId);
    return h;
  }

  async info(p: Principal, hostId: string) {
    requireAdmin(p);
    const h = await this.row(this.db.k, hostId);
    const vms = await this.db.k.selectFrom('vms').select(['id', 'resource_type', 'vcpus', 'memory_mib', 'status']).where('host_id', '=', hostId).orderBy('id').execute();
    return {
      ...hostInfo(h, await this.zones.name(this.db.k, h.zone_id), vms.length),
      vmList: vms.map((v) => ({ vmId: v.id, resourceType: v.resource_type, vcpus: v.vcpus, memoryMiB: v.memory_mib, status: v.status })),
    };
  }

  async setMaintenance(p: Principal, hostId: string, on: boolean): Promise<true> {
    requireAdmin(p);
    await this.row(this.db.k, hostId);
    await this.db.k.updateTable('hosts').set({ maintenance: bool(on) }).where('id', '=', hostId).execute();
    await this.events.publish(this.db.k, null, 'host.maintenance', hostId, { maintenance: on });
    return true;
  }

  /** A dedicated host runs only its tenant's dedicated VMs; a shared one best-effort and guaranteed VMs. */
  async setPool(p: Principal, hostId: string, a: { pool: string; tenantId?: string }): Promise<true> {
    requireAdmin(p);
    if (a.pool !== 'shared' && a.pool !== 'dedicated') throw invalidParams('pool must be shared or dedicated');
    if (a.pool === 'dedicated' && !a.tenantId) throw invalidParams('a dedicated host needs tenantId');
    if (a.pool === 'shared' && a.tenantId) throw invalidParams('a shared host has no tenantId');
    await this.db.k.transaction().execute(async (trx) => {
      await this.row(trx, hostId);
      if (a.tenantId && !(await trx.selectFrom('tenants').select('id').where('id', '=', a.tenantId).executeTakeFirst())) throw notFound('tenant', a.tenantId);
      const placed = await trx.selectFrom('vms').select('id').where('host_id', '=', hostId).executeTakeFirst();
      if (placed) throw new KumoError(Fault.INVALID_STATE, `${hostId} still runs ${placed.id}; drain it before changing its pool`);
      await trx.updateTable('hosts').set({ pool: a.pool as HostRow['pool'], dedicated_tenant: a.tenantId ?? null }).where('id', '=', hostId).execute();
    });
    return true;
  }

  /**
   * drainHost: the host goes into maintenance at once (no new placements), then a request live-
   * migrates its VMs away (requests/handlers/drain.ts) and lists those that cannot move.
   */
  async drain(p: Principal, hostId: string, requests: Requests): Promise<string> {
    requireAdmin(p);
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `host:${hostId}`);
      await this.row(trx, hostId);
      const active = await activeOn(trx, hostId);
      if (active.length) throw new KumoError(Fault.CONFLICT, `${hostId} has ${active[0].method} ${active[0].id} ${active[0].status}`);
      await trx.updateTable('hosts').set({ maintenance: 1 }).where('id', '=', hostId).execute();
      await this.events.publish(trx, null, 'host.maintenance', hostId, { maintenance: true });
      return requests.submit(trx, SYSTEM.tenantId, 'drainHost', hostId, {});
    });
  }

  /** The join token lets a new agent register; it lives in the store so every controller agrees. */
  async joinToken(): Promise<string> {
    const row = await this.db.k.selectFrom('settings').select('value').where('key', '=', 'join_token').executeTakeFirst();
    if (row) return row.value;
    const token = randomBytes(24).toString('base64url');
    await this.db.k.insertInto('settings').values({ key: 'join_token', value: token }).onConflict((oc) => oc.column('key').doNothing()).execute();
    return this.joinToken();
  }

  /** Registers (or re-registers, idempotently by zone and name) an agent's hosts and issues the
   * per-node token both sides present from then on. */
  async register(joinToken: string, r: AgentRegistration): Promise<{ nodeToken: string; hosts: { name: string; hostId: string }[] }> {
    if (!sameSecret(joinToken, await this.joinToken())) throw new KumoError(Fault.AUTHORIZATION, 'wrong join token');
    if (!/^https?:\/\/[^\s]+$/.test(r.url)) throw invalidParams('url must be the agent\'s http(s) URL');
    if (r.hosts.length === 0) throw invalidParams('an agent registers at least one host');
    for (const h of r.hosts) {
      checkName(h.name, 'host name');
      checkRange(h.vcpus, 1, 4096, 'vcpus');
      checkRange(h.memoryMiB, 64, 1 << 30, 'memoryMiB');
      if (h.architectures.some((a) => a !== 'x86_64' && a !== 'i686')) throw invalidParams('architectures are x86_64 and i686');
    }
    const nodeToken = randomBytes(24).toString('base64url');
    const at = now();
    const hosts = await this.db.k.transaction().execute(async (trx) => {
      const zone = await this.zones.ensure(trx, r.zone);
      const out: { name: string; hostId: string }[] = [];
      for (const h of r.hosts) {
        const existing = await trx.selectFrom('hosts').select('id').where('zone_id', '=', zone.id).where('name', '=', h.name).executeTakeFirst();
        const fields = {
          vcpus: h.vcpus, memory_mib: h.memoryMiB, architectures: h.architectures.join(','), driver: r.driver, accel: r.accel,
          agent_url: r.url, node_token: nodeToken, status: 'up' as const, last_seen: at,
        };
        if (existing) {
          await trx.updateTable('hosts').set(fields).where('id', '=', existing.id).execute();
          out.push({ name: h.name, hostId: existing.id });
        } else {
          const id = newId('host');
          await trx.insertInto('hosts').values({
            id, zone_id: zone.id, name: h.name, pool: h.pool ?? 'shared', dedicated_tenant: h.dedicatedTenant ?? null,
            maintenance: 0, created_at: at, ...fields,
          }).execute();
          out.push({ name: h.name, hostId: id });
        }
      }
      return out;
    });
    await this.events.publish(this.db.k, null, 'agent.registered', hosts[0].hostId, { zone: r.zone, hosts: hosts.length, driver: r.driver });
    return { nodeToken, hosts };
  }

  /** The hosts a node token speaks for; empty when the token is unknown. */
  async byToken(nodeToken: string): Promise<HostRow[]> {
    return this.db.k.selectFrom('hosts').selectAll().where('node_token', '=', nodeToken).execute();
  }

  async heartbeat(hostIds: string[]): Promise<void> {
    if (hostIds.length) await this.db.k.updateTable('hosts').set({ status: 'up', last_seen: now() }).where('id', 'in', hostIds).execute();
  }

  /** Marks hosts whose agent went quiet as down; returns them so callers can log it. */
  async markSilentHostsDown(): Promise<string[]> {
    const cutoff = new Date(Date.now() - HOST_DOWN_AFTER_MS).toISOString();
    const silent = await this.db.k.selectFrom('hosts').select('id').where('status', '=', 'up').where('last_seen', '<', cutoff).execute();
    if (silent.length) await this.db.k.updateTable('hosts').set({ status: 'down' }).where('id', 'in', silent.map((h) => h.id)).execute();
    return silent.map((h) => h.id);
  }
}
