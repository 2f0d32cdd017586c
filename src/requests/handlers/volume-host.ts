import { Fault, KumoError } from '../../core/errors.js';
import { place, type Arch, type SchedulerPolicy, type Snapshot } from '../../scheduler/index.js';
import type { Q } from '../../state/db.js';
import type { VmRow } from '../../state/schema.js';

/**
 * Interim local volumes, until kumo storage nodes serve volumes over the network: a volume's file
 * lives on the host that first used it (`volumes.local_host`), so a VM can run only where its
 * volumes are. These helpers pick that host for restoreImage and powerOnVm.
 */

const demand = (vm: VmRow) => ({
  vmId: vm.id, tenantId: vm.tenant_id, vcpus: vm.vcpus, memoryMiB: vm.memory_mib,
  resourceType: vm.resource_type as never, architecture: vm.architecture as Arch, zone: vm.zone_id,
});

/** The host holding the VM's volume files, or null when none has one yet. */
export async function pinnedHost(q: Q, vmId: string): Promise<{ hostId: string; volumeId: string } | null> {
  const vols = await q.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
    .select(['volumes.id', 'volumes.local_host', 'vm_disks.slot']).where('vm_disks.vm_id', '=', vmId).orderBy('vm_disks.slot').execute();
  const pinned = vols.filter((v) => v.local_host !== null);
  if (pinned.length === 0) return null;
  const other = pinned.find((v) => v.local_host !== pinned[0].local_host);
  if (other) {
    throw new KumoError(Fault.NO_CAPACITY, `${vmId}'s volumes are kept on different hosts (${pinned[0].id} on ${pinned[0].local_host}, ${other.id} on ${other.local_host}); until storage nodes serve volumes, a VM runs only where all its volumes are`);
  }
  return { hostId: pinned[0].local_host!, volumeId: pinned[0].id };
}

/**
 * A host for the VM: the one holding its volumes when there is one (NO_CAPACITY naming it when it
 * is down or full), else the scheduler's choice. Reserves nothing.
 */
export async function chooseHost(q: Q, snapshot: Snapshot, vm: VmRow, policy: SchedulerPolicy): Promise<string> {
  const pin = await pinnedHost(q, vm.id);
  if (!pin) {
    const r = place(snapshot, demand(vm), policy);
    if (!r.ok) throw new KumoError(Fault.NO_CAPACITY, r.reason);
    return r.hostId;
  }
  const h = await q.selectFrom('hosts').select(['id', 'name', 'status']).where('id', '=', pin.hostId).executeTakeFirst();
  const where = h ? `host ${h.name} (${h.id})` : `host ${pin.hostId}, which is no longer registered`;
  if (!h) throw new KumoError(Fault.NO_CAPACITY, `${vm.id}'s volume ${pin.volumeId} is kept on ${where}`);
  if (h.status !== 'up') throw new KumoError(Fault.NO_CAPACITY, `${vm.id}'s volume ${pin.volumeId} is kept on ${where}, which is down`);
  const r = place({ hosts: snapshot.hosts.filter((x) => x.hostId === h.id) }, demand(vm), policy);
  if (!r.ok) throw new KumoError(Fault.NO_CAPACITY, `${vm.id}'s volume ${pin.volumeId} is kept on ${where}, which cannot take it: ${r.reason}`);
  return r.hostId;
}

/** Records `hostId` as the home of the VM's volumes that have none yet; returns those volumes. */
export async function claimVolumes(q: Q, vmId: string, hostId: string): Promise<string[]> {
  const ids = (await q.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id').select('volumes.id')
    .where('vm_disks.vm_id', '=', vmId).where('volumes.local_host', 'is', null).execute()).map((d) => d.id);
  if (ids.length) await q.updateTable('volumes').set({ local_host: hostId }).where('id', 'in', ids).where('local_host', 'is', null).execute();
  return ids;
}

/** Undoes claimVolumes after a start that failed: those volumes hold nothing yet. */
export async function releaseVolumes(q: Q, volumeIds: string[], hostId: string): Promise<void> {
  if (volumeIds.length) await q.updateTable('volumes').set({ local_host: null }).where('id', 'in', volumeIds).where('local_host', '=', hostId).execute();
}
