import type { Q } from '../state/db.js';
import type { Arch, HostCapacity, Snapshot } from '../scheduler/index.js';

/** The scheduler's view of the hosts: physical capacity and what placed VMs hold, in two queries. */
export async function capacitySnapshot(q: Q): Promise<Snapshot> {
  const [hosts, placed, arriving] = await Promise.all([
    q.selectFrom('hosts').selectAll().execute(),
    q.selectFrom('vms').where('host_id', 'is not', null)
      .select((eb) => ['host_id', 'resource_type', eb.fn.sum<number>('vcpus').as('c'), eb.fn.sum<number>('memory_mib').as('m')])
      .groupBy(['host_id', 'resource_type']).execute(),
    // A VM being live-migrated runs on both hosts until the switch-over.
    q.selectFrom('vms').where('migration_host_id', 'is not', null)
      .select((eb) => [eb.ref('migration_host_id').as('host_id'), 'resource_type', eb.fn.sum<number>('vcpus').as('c'), eb.fn.sum<number>('memory_mib').as('m')])
      .groupBy(['migration_host_id', 'resource_type']).execute(),
  ]);
  const used = [...placed, ...arriving];
  const byHost = new Map<string, HostCapacity>();
  for (const h of hosts) {
    byHost.set(h.id, {
      hostId: h.id, zone: h.zone_id, vcpus: h.vcpus, memoryMiB: h.memory_mib,
      pool: h.pool, dedicatedTenant: h.dedicated_tenant, maintenance: h.maintenance === 1, up: h.status === 'up',
      architectures: h.architectures.split(',') as Arch[],
      used: { guaranteed: { vcpus: 0, memoryMiB: 0 }, bestEffort: { vcpus: 0, memoryMiB: 0 } },
    });
  }
  for (const u of used) {
    const h = byHost.get(u.host_id!);
    if (!h) continue;
    const bucket = u.resource_type === 'best-effort' ? h.used.bestEffort : h.used.guaranteed;
    bucket.vcpus += Number(u.c); bucket.memoryMiB += Number(u.m);
  }
  return { hosts: [...byHost.values()] };
}
