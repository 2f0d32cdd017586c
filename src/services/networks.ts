import { randomBytes } from 'node:crypto';
import { Fault, KumoError, invalidParams, invalidState, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { contains, formatCidr, formatIp, isHost, overlaps, parseCidr, parseIp, size, type Cidr } from '../core/ipv4.js';
import { pickVni } from '../sdn/model/vni.js';
import type { Db, Q } from '../state/db.js';
import { now } from '../state/db.js';
import type { NetworkRow } from '../state/schema.js';
import type { Events } from './events.js';
import { requireAdmin, visible, type Principal } from './principal.js';
import { checkQuota } from './quota.js';
import { checkName } from './validate.js';
import { MAX_SLOTS, type Vms } from './vms.js';

/** seed 002: every contract network is a /20 whatever the zones. */
const DEFAULT_PREFIX = 20;
/** Networks are /16 (65,534 hosts, a size pools and address scans stay fast at) to /29 (five hosts
 * beside the gateway, the least worth a VLAN); private and shared alike. */
export const PREFIX_MIN = 16;
export const PREFIX_MAX = 29;

function cidrArg(s: string): Cidr {
  const c = parseCidr(s);
  if (!c) throw invalidParams(`not an IPv4 network in CIDR form with no host bits: ${JSON.stringify(s.slice(0, 40))}`);
  return c;
}

function ipArg(s: string): number {
  const ip = parseIp(s);
  if (ip === null) throw invalidParams(`not an IPv4 address: ${JSON.stringify(s.slice(0, 40))}`);
  return ip;
}

function checkPrefix(c: Cidr, s: string): void {
  if (c.prefix < PREFIX_MIN || c.prefix > PREFIX_MAX) throw invalidParams(`a network is a /${PREFIX_MIN} to /${PREFIX_MAX}; ${s.slice(0, 40)} is a /${c.prefix}`);
}

/** An address of the network's hosts (not its network or broadcast address), else INVALID_PARAMS. */
function hostOf(n: NetworkRow, s: string): number {
  const ip = ipArg(s);
  if (!isHost(parseCidr(n.cidr)!, ip)) throw invalidParams(`${s} is not a host address of ${n.cidr} (${n.id})`);
  return ip;
}

/** Locally administered unicast MACs (first octet 0x02) with kumo's 0x6b byte and 32 random bits. */
const newMac = () => `02:6b:${[...randomBytes(4)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

export class Networks {
  constructor(private readonly db: Db, private readonly events: Events, private readonly vms: Vms) {}

  async row(q: Q, p: Principal, networkId: string): Promise<NetworkRow> {
    const n = await q.selectFrom('networks').selectAll().where('id', '=', networkId).executeTakeFirst();
    if (!n || !visible(p, n.tenant_id)) throw notFound('network', networkId);
    return n;
  }

  private async shared(q: Q, p: Principal, networkId: string, method: string): Promise<NetworkRow> {
    const n = await this.row(q, p, networkId);
    if (n.kind !== 'shared') throw invalidParams(`${method} applies to shared L3 networks; ${networkId} is a private network`);
    return n;
  }

  async list(p: Principal) {
    let q = this.db.k.selectFrom('networks').select(['id', 'name', 'kind', 'cidr']).orderBy('created_at').orderBy('id');
    if (!p.admin) q = q.where((eb) => eb.or([eb('tenant_id', '=', p.tenantId), eb('tenant_id', 'is', null)]));
    return (await q.execute()).map((n) => ({ networkId: n.id, name: n.name, kind: n.kind, cidr: n.cidr }));
  }

  async info(p: Principal, networkId: string) {
    const n = await this.row(this.db.k, p, networkId);
    let members = this.db.k.selectFrom('vm_nics').innerJoin('vms', 'vms.id', 'vm_nics.vm_id')
      .select(['vm_nics.vm_id', 'vm_nics.slot', 'vm_nics.mac']).where('vm_nics.network_id', '=', networkId).orderBy('vm_nics.vm_id').orderBy('vm_nics.slot');
    if (!p.admin) members = members.where('vms.tenant_id', '=', p.tenantId);
    const [zones, nics, addrs] = await Promise.all([
      this.db.k.selectFrom('network_zone_vlans').innerJoin('zones', 'zones.id', 'network_zone_vlans.zone_id')
        .select(['zones.name', 'network_zone_vlans.vlan']).where('network_id', '=', networkId).orderBy('zones.name').execute(),
      members.execute(),
      this.db.k.selectFrom('nic_addresses').selectAll().where('network_id', '=', networkId).execute(),
    ]);
    return {
      networkId: n.id, name: n.name, kind: n.kind, cidr: n.cidr, gateway: n.gateway, vni: n.vni ?? 0,
      zones: zones.map((z) => ({ zone: z.name, vlan: z.vlan })),
      members: nics.map((m) => ({ vmId: m.vm_id, slot: m.slot, mac: m.mac, ipAddresses: addrs.filter((a) => a.vm_id === m.vm_id && a.slot === m.slot).map((a) => a.ip) })),
    };
  }

  async allocate(p: Principal, a: { name?: string; cidr?: string }): Promise<string> {
    const id = newId('net');
    const name = a.name ?? id;
    checkName(name);
    const wanted = a.cidr === undefined ? null : cidrArg(a.cidr);
    if (wanted) checkPrefix(wanted, a.cidr!);
    await this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `tenant:${p.tenantId}`);
      await checkQuota(trx, p.tenantId, { networks: 1 });
      const mine = (await trx.selectFrom('networks').select('cidr').where('tenant_id', '=', p.tenantId).execute()).map((r) => parseCidr(r.cidr)!);
      const cidr = wanted ?? firstFreeBlock(mine);
      if (!cidr) throw new KumoError(Fault.NO_CAPACITY, 'no free /20 left in 10.0.0.0/8 for this tenant; pass cidr');
      await this.db.lock(trx, 'vni');
      const vni = await this.freeVni(trx);
      await trx.insertInto('networks').values({
        id, tenant_id: p.tenantId, name, kind: 'private', cidr: formatCidr(cidr), gateway: formatIp(cidr.base + 1), vni, created_at: now(),
      }).execute();
      await this.events.publish(trx, p.tenantId, 'network.allocated', id, { vni });
    });
    return id;
  }

  /** A VNI no network holds (the caller holds the 'vni' lock; the column is unique besides). */
  private async freeVni(q: Q): Promise<number> {
    const vni = await pickVni(async (v) => !!(await q.selectFrom('networks').select('id').where('vni', '=', v).executeTakeFirst()));
    if (vni === null) throw new KumoError(Fault.NO_CAPACITY, 'no free VNI found');
    return vni;
  }

  async createShared(p: Principal, a: { name: string; cidr: string; gateway: string }): Promise<string> {
    requireAdmin(p);
    checkName(a.name);
    const cidr = cidrArg(a.cidr);
    checkPrefix(cidr, a.cidr);
    const gw = ipArg(a.gateway);
    if (!isHost(cidr, gw)) throw invalidParams(`gateway ${a.gateway} is not a host address of ${a.cidr}`);
    const id = newId('net');
    await this.db.k.insertInto('networks').values({ id, tenant_id: null, name: a.name, kind: 'shared', cidr: formatCidr(cidr), gateway: a.gateway, vni: null, created_at: now() }).execute();
    await this.events.publish(this.db.k, null, 'network.allocated', id, { kind: 'shared' });
    return id;
  }

  async deallocate(p: Principal, networkId: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      const n = await this.row(trx, p, networkId);
      if (n.kind === 'shared') requireAdmin(p);
      const nic = await trx.selectFrom('vm_nics').select(['vm_id', 'slot']).where('network_id', '=', networkId).executeTakeFirst();
      if (nic) throw invalidState(`${networkId} is still attached to ${nic.vm_id} slot ${nic.slot}`);
      const ip = await trx.selectFrom('ip_allocations').select('ip').where('network_id', '=', networkId).executeTakeFirst();
      if (ip) throw invalidState(`${networkId} still has allocated address ${ip.ip}`);
      await trx.deleteFrom('network_zone_vlans').where('network_id', '=', networkId).execute();
      await trx.deleteFrom('comments').where('resource_id', '=', networkId).execute();
      await trx.deleteFrom('networks').where('id', '=', networkId).execute();
      await this.events.publish(trx, n.tenant_id, 'network.deallocated', networkId);
    });
    return true;
  }

  async allocateIp(p: Principal, networkId: string): Promise<string> {
    return this.db.k.transaction().execute(async (trx) => {
      const n = await this.shared(trx, p, networkId, 'allocateIpAddress');
      await this.db.lock(trx, `tenant:${p.tenantId}`);
      await checkQuota(trx, p.tenantId, { ipAddresses: 1 });
      await this.db.lock(trx, `net:${networkId}`);
      const cidr = parseCidr(n.cidr)!;
      const taken = new Set((await trx.selectFrom('ip_allocations').select('ip').where('network_id', '=', networkId).execute()).map((r) => parseIp(r.ip)));
      taken.add(parseIp(n.gateway));
      for (let ip = cidr.base; ip < cidr.base + size(cidr); ip++) {
        if (!isHost(cidr, ip) || taken.has(ip)) continue;
        await trx.insertInto('ip_allocations').values({ network_id: networkId, ip: formatIp(ip), tenant_id: p.tenantId, created_at: now() }).execute();
        return formatIp(ip);
      }
      throw new KumoError(Fault.NO_CAPACITY, `no free address left in ${n.cidr} (${networkId})`);
    });
  }

  private async allocation(q: Q, p: Principal, networkId: string, ip: string) {
    ipArg(ip);
    const a = await q.selectFrom('ip_allocations').selectAll().where('network_id', '=', networkId).where('ip', '=', ip).executeTakeFirst();
    if (!a || !visible(p, a.tenant_id)) throw notFound('address', `${ip} on ${networkId}`);
    return a;
  }

  async deallocateIp(p: Principal, networkId: string, ip: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      hostOf(await this.shared(trx, p, networkId, 'deallocateIpAddress'), ip);
      await this.allocation(trx, p, networkId, ip);
      const used = await trx.selectFrom('nic_addresses').select(['vm_id', 'slot']).where('network_id', '=', networkId).where('ip', '=', ip).executeTakeFirst();
      if (used) throw invalidState(`${ip} is assigned to ${used.vm_id} slot ${used.slot}; removeIpAddress first`);
      await trx.deleteFrom('ip_allocations').where('network_id', '=', networkId).where('ip', '=', ip).execute();
    });
    return true;
  }

  async attach(p: Principal, vmId: string, networkId: string): Promise<{ slot: number; mac: string }> {
    return this.db.k.transaction().execute(async (trx) => {
      const vm = await this.vms.row(trx, p, vmId);
      const n = await this.row(trx, p, networkId);
      if (n.tenant_id !== null && n.tenant_id !== vm.tenant_id) throw notFound('network', networkId);
      await this.vms.requireStopped(trx, vm, 'attachNetwork');
      const used = new Set((await trx.selectFrom('vm_nics').select('slot').where('vm_id', '=', vmId).execute()).map((r) => r.slot));
      const slot = [...Array(MAX_SLOTS).keys()].find((s) => !used.has(s));
      if (slot === undefined) throw invalidState(`${vmId} already has ${MAX_SLOTS} NICs, the limit`);
      for (;;) {
        const mac = newMac();
        if (await trx.selectFrom('vm_nics').select('mac').where('mac', '=', mac).executeTakeFirst()) continue;
        await trx.insertInto('vm_nics').values({ vm_id: vmId, slot, network_id: networkId, mac }).execute();
        await this.events.publish(trx, vm.tenant_id, 'vm.nic.attached', vmId, { slot, networkId, mac });
        return { slot, mac };
      }
    });
  }

  private async nic(q: Q, p: Principal, vmId: string, slot: number) {
    const vm = await this.vms.row(q, p, vmId);
    const nic = await q.selectFrom('vm_nics').selectAll().where('vm_id', '=', vmId).where('slot', '=', slot).executeTakeFirst();
    if (!nic) throw notFound('NIC', `${vmId} slot ${slot}`);
    return { vm, nic };
  }

  async detach(p: Principal, vmId: string, slot: number): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      const { vm } = await this.nic(trx, p, vmId, slot);
      await this.vms.requireStopped(trx, vm, 'detachNetwork');
      await trx.deleteFrom('nic_addresses').where('vm_id', '=', vmId).where('slot', '=', slot).execute();
      await trx.deleteFrom('vm_nics').where('vm_id', '=', vmId).where('slot', '=', slot).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.nic.detached', vmId, { slot });
    });
    return true;
  }

  /**
   * For an address a guest is to configure on a NIC (setIpAddress "ip/prefix"): the NIC must exist,
   * and the address must be a host address of its network other than the gateway, with the
   * network's prefix length. INVALID_PARAMS says what is wrong; the NIC's network is returned.
   */
  async checkNicAddress(q: Q, p: Principal, vmId: string, slot: number, ip: string, prefix: number): Promise<NetworkRow> {
    const { nic } = await this.nic(q, p, vmId, slot);
    const n = await this.row(q, p, nic.network_id);
    const addr = hostOf(n, ip);
    if (addr === parseIp(n.gateway)) throw invalidParams(`${ip} is the gateway address of ${n.cidr} (${n.id})`);
    const want = parseCidr(n.cidr)!.prefix;
    if (prefix !== want) throw invalidParams(`${n.id} is ${n.cidr}: the prefix length is /${want}, not /${prefix}`);
    return n;
  }

  async assignIp(p: Principal, vmId: string, slot: number, ip: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      const { vm, nic } = await this.nic(trx, p, vmId, slot);
      hostOf(await this.shared(trx, p, nic.network_id, 'assignIpAddress'), ip);
      const a = await this.allocation(trx, p, nic.network_id, ip);
      if (a.tenant_id !== vm.tenant_id) throw notFound('address', `${ip} on ${nic.network_id}`);
      const used = await trx.selectFrom('nic_addresses').select(['vm_id', 'slot']).where('network_id', '=', nic.network_id).where('ip', '=', ip).executeTakeFirst();
      if (used) throw invalidState(`${ip} is already assigned to ${used.vm_id} slot ${used.slot}`);
      await trx.insertInto('nic_addresses').values({ vm_id: vmId, slot, network_id: nic.network_id, ip }).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.nic.address', vmId, { slot, ip, assigned: true });
    });
    return true;
  }

  async removeIp(p: Principal, vmId: string, slot: number, ip: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      const { vm, nic } = await this.nic(trx, p, vmId, slot);
      hostOf(await this.shared(trx, p, nic.network_id, 'removeIpAddress'), ip);
      const res = await trx.deleteFrom('nic_addresses').where('vm_id', '=', vmId).where('slot', '=', slot).where('ip', '=', ip).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw notFound('address', `${ip} on ${vmId} slot ${slot}`);
      await this.events.publish(trx, vm.tenant_id, 'vm.nic.address', vmId, { slot, ip, assigned: false });
    });
    return true;
  }
}

/** The first 10.x.y.0/20 that overlaps none of the tenant's networks. */
function firstFreeBlock(taken: Cidr[]): Cidr | null {
  const step = 2 ** (32 - DEFAULT_PREFIX);
  for (let base = parseIp('10.0.0.0')!; contains(parseCidr('10.0.0.0/8')!, base); base += step) {
    const c = { base, prefix: DEFAULT_PREFIX };
    if (!taken.some((t) => overlaps(t, c))) return c;
  }
  return null;
}
