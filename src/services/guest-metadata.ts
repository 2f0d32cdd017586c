/**
 * What the metadata service tells one VM, built from the state store: its identity, the tenant's
 * user-data, and its guest configuration (the fold of its init-API generations) as network_data
 * and vendor data. The agent of the VM's host serves it; every format derives from this one value.
 */
import { formatIp, parseIp } from '../core/ipv4.js';
import type { KumoGuestConfig, Network, Route, VmMetadata } from '../metadata/types.js';
import { Precompiled, type Db, type Q } from '../state/db.js';
import { guestConfig, type GuestConfig } from './guest-config.js';

const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
const sameNet = (a: number, b: number, prefix: number) => ((a ^ b) & maskOf(prefix)) === 0;

/** A host name from the VM's name when the tenant set none: DNS labels allow letters, digits and '-'. */
export function defaultHostname(name: string): string {
  const label = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return label || 'vm';
}

interface NicRow { slot: number; mac: string; cidr: string; ip: string | null }

/**
 * Static addresses per NIC: the ones the tenant set through the init API and the ones assigned on
 * the NIC's network (assignIpAddress), without repeats. The first NIC also keeps DHCP: that is how
 * the guest gets the link-local address it reaches the metadata service with.
 */
export function guestNetwork(nics: NicRow[], cfg: GuestConfig): VmMetadata['network'] {
  const slots = [...new Set(nics.map((n) => n.slot))].sort((a, b) => a - b);
  const links = slots.map((slot) => ({ id: `nic${slot}`, mac: nics.find((n) => n.slot === slot)!.mac }));
  const networks: Network[] = [];
  const gateway = cfg.gateway === undefined ? null : parseIp(cfg.gateway);
  for (const [i, slot] of slots.entries()) {
    if (i === 0) networks.push({ id: `nic${slot}-dhcp`, link: `nic${slot}`, type: 'ipv4_dhcp', routes: [] });
    const assigned = nics.filter((n) => n.slot === slot && n.ip !== null).map((n) => `${n.ip}/${n.cidr.split('/')[1]}`);
    const set = cfg.nics.find((n) => n.slot === slot)?.addresses ?? [];
    for (const [k, address] of [...new Set([...set, ...assigned])].entries()) {
      const [ip, p] = address.split('/');
      const prefix = Number(p);
      const routes: Route[] = gateway !== null && sameNet(gateway, parseIp(ip)!, prefix)
        ? [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: cfg.gateway! }] : [];
      networks.push({ id: `nic${slot}-${k}`, link: `nic${slot}`, type: 'ipv4', ipAddress: ip, netmask: formatIp(maskOf(prefix)), routes });
    }
  }
  return { links, networks, services: (cfg.dns ?? []).map((address) => ({ type: 'dns' as const, address })) };
}

/** The guest configuration in the shape the guest agent applies (metadata/types.ts KumoGuestConfig). */
export function kumoVendorData(cfg: GuestConfig): KumoGuestConfig {
  const { users, iptables, sshdConfig, files, dns, gateway, hostname } = cfg;
  return { users, files, ...(iptables === undefined ? {} : { iptables }), ...(sshdConfig === undefined ? {} : { sshdConfig }),
    ...(dns === undefined ? {} : { dns }), ...(gateway === undefined ? {} : { gateway }), ...(hostname === undefined ? {} : { hostname }) };
}

// A boot storm's cold cache asks for these once per VM: compiled once.
const VM = new Precompiled((k, vmId: string) => k.selectFrom('vms')
  .leftJoin('hosts', 'hosts.id', 'vms.host_id')
  .leftJoin('zones', (j) => j.on((eb) => eb('zones.id', '=', eb.fn.coalesce('vms.zone_id', 'hosts.zone_id'))))
  .select(['vms.id', 'vms.name', 'vms.tenant_id', 'zones.name as zone']).where('vms.id', '=', vmId));
const NICS = new Precompiled((k, vmId: string) => k.selectFrom('vm_nics').innerJoin('networks', 'networks.id', 'vm_nics.network_id')
  .leftJoin('nic_addresses', (j) => j.onRef('nic_addresses.vm_id', '=', 'vm_nics.vm_id').onRef('nic_addresses.slot', '=', 'vm_nics.slot'))
  .select(['vm_nics.slot', 'vm_nics.mac', 'networks.cidr', 'nic_addresses.ip']).where('vm_nics.vm_id', '=', vmId));
const USER_DATA = new Precompiled((k, vmId: string) => k.selectFrom('vm_user_data').select('data').where('vm_id', '=', vmId));

/**
 * The same configuration for cloud-init guests, as the `#cloud-config` vendor data cloud-init applies
 * on an instance's first boot (JSON is YAML): users with their keys, password hashes, and files,
 * sshd_config and iptables rules as files. Network and hostname reach cloud-init through
 * network_data.json and meta_data.json; null when there is nothing else to say.
 */
export function cloudConfig(cfg: GuestConfig): string | null {
  const doc: Record<string, unknown> = {};
  // Passwords all through chpasswd (cc_set_passwords runs after users-groups): a user entry's
  // hashed_passwd would merge with the image's default user, whose lock_passwd then locks it again.
  const others = cfg.users.filter((u) => u.name !== 'root');
  if (others.length) {
    doc.users = ['default', ...others.map((u) => ({ name: u.name, shell: '/bin/bash', ...(u.sshKeys.length ? { ssh_authorized_keys: u.sshKeys } : {}) }))];
  }
  const hashed = cfg.users.filter((u) => u.passwordHash);
  if (hashed.length) doc.chpasswd = { expire: false, users: hashed.map((u) => ({ name: u.name, password: u.passwordHash, type: 'hash' })) };
  const files = [
    ...cfg.files.map((f) => ({ path: f.path, content: f.content, encoding: 'b64', permissions: f.mode })),
    ...(cfg.sshdConfig === undefined ? [] : [{ path: '/etc/ssh/sshd_config', content: cfg.sshdConfig, permissions: '0644' }]),
    ...(cfg.iptables === undefined ? [] : [{ path: '/etc/iptables/rules.v4', content: cfg.iptables, permissions: '0640' }]),
  ];
  if (files.length) doc.write_files = files;
  return Object.keys(doc).length ? `#cloud-config\n${JSON.stringify(doc, null, 1)}\n` : null;
}

/** The VM's metadata, or null when it does not exist (deallocated). */
export async function vmMetadata(db: Db, vmId: string, q: Q = db.k): Promise<VmMetadata | null> {
  const vm = await VM.first(db, q, vmId);
  if (!vm) return null;
  const [cfg, nics, ud] = await Promise.all([guestConfig(db, vmId), NICS.execute(db, q, vmId), USER_DATA.first(db, q, vmId)]);
  const network = guestNetwork(nics, cfg);
  const cloud = cloudConfig(cfg);
  return {
    vmId, name: vm.name, hostname: cfg.hostname ?? defaultHostname(vm.name), zone: vm.zone ?? '', tenantId: vm.tenant_id,
    // OpenStack's public_keys go to the image's default user; kumo's keys for named users are in vendor data.
    publicKeys: cfg.users.flatMap((u) => u.sshKeys.map((key, i) => ({ name: `${u.name}-${i}`, key }))),
    meta: {},
    userData: ud ? Buffer.from(ud.data, 'base64') : null,
    vendorData: { kumo: kumoVendorData(cfg), ...(cloud === null ? {} : { 'cloud-init': cloud }) },
    network,
    generation: cfg.generation,
    localIpv4: network.networks.find((n) => n.type === 'ipv4')?.ipAddress ?? null,
  };
}

/** Whether the VM runs on one of `hostIds` or is migrating to one: only that agent may speak for it. */
export async function onHosts(db: Db, hostIds: Set<string>, vmId: string): Promise<boolean> {
  const vm = await db.k.selectFrom('vms').select(['host_id', 'migration_host_id']).where('id', '=', vmId).executeTakeFirst();
  return !!vm && [vm.host_id, vm.migration_host_id].some((h) => h != null && hostIds.has(h));
}

/** The guest confirmed `generation`: it applied everything up to it (each generation is the fold of all before). */
export async function markApplied(db: Db, vmId: string, generation: number): Promise<number> {
  const r = await db.k.updateTable('vm_config_generations').set({ status: 'applied' })
    .where('vm_id', '=', vmId).where('generation', '<=', generation).where('status', '!=', 'applied').executeTakeFirst();
  return Number(r.numUpdatedRows);
}
