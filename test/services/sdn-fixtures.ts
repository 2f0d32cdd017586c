/** Helpers of the SDN service tests: placing VMs the way the power handlers do, reading VLAN rows. */
import type { Services } from '../../src/services/index.js';
import type { Principal } from '../../src/services/principal.js';

/** What the placement transaction does: the VM gets its host, and its networks their zone VLANs. */
export async function placeOn(s: Services, vmId: string, hostId: string): Promise<void> {
  await s.db.k.transaction().execute(async (trx) => {
    const h = await trx.selectFrom('hosts').select('zone_id').where('id', '=', hostId).executeTakeFirstOrThrow();
    await trx.updateTable('vms').set({ host_id: hostId, status: 'running', power: 'on' }).where('id', '=', vmId).execute();
    await s.sdn.acquireZoneVlans(trx, vmId, h.zone_id);
  });
}

/** What a stop does: the VM leaves its host, and VLANs no one needs go back. */
export async function takeOff(s: Services, vmId: string): Promise<number> {
  return s.db.k.transaction().execute(async (trx) => {
    await trx.updateTable('vms').set({ host_id: null, status: 'stopped', power: 'off' }).where('id', '=', vmId).execute();
    return s.sdn.releaseVmVlans(trx, vmId);
  });
}

/** A network's VLANs by zone name. */
export async function vlansOf(s: Services, networkId: string): Promise<Record<string, number>> {
  const rows = await s.db.k.selectFrom('network_zone_vlans').innerJoin('zones', 'zones.id', 'network_zone_vlans.zone_id')
    .select(['zones.name', 'network_zone_vlans.vlan']).where('network_id', '=', networkId).orderBy('zones.name').execute();
  return Object.fromEntries(rows.map((r) => [r.name, r.vlan]));
}

export async function zoneIdOf(s: Services, name: string): Promise<string> {
  return (await s.db.k.selectFrom('zones').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
}

/** A stopped VM with a NIC on each of `networks`, in that slot order. */
export async function vmOn(s: Services, p: Principal, ...networks: string[]): Promise<string> {
  const vm = await s.vms.allocate(p, { type: 'be.small' });
  for (const n of networks) await s.networks.attach(p, vm, n);
  return vm;
}

/** Row counts of every table a network or topology call may write. */
export async function counts(s: Services): Promise<Record<string, number>> {
  const tables = ['networks', 'vm_nics', 'nic_addresses', 'ip_allocations', 'network_zone_vlans', 'events', 'edges', 'vms'] as const;
  const out: Record<string, number> = {};
  for (const t of tables) out[t] = Number((await s.db.k.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  return out;
}

export const TENANT_QUOTA = { networks: 100, vms: 40, vcpus: 200, memoryMiB: 1 << 20, volumes: 100, volumeGiB: 100000, ipAddresses: 20 };
