import type { BootSpec, VmSpec } from '../../compute/driver.js';
import type { Arch } from '../../scheduler/index.js';
import type { Db } from '../../state/db.js';
import type { VmRow } from '../../state/schema.js';

/** Kernel boot from the files of the image last restored onto the system volume when that
 * image has a kernel; firmware boot from the disk otherwise (imported or blank volumes). */
async function bootOf(db: Db, vmId: string): Promise<BootSpec | undefined> {
  const img = await db.k.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
    .innerJoin('images', 'images.id', 'volumes.image_id')
    .select(['images.id', 'images.boot']).where('vm_disks.vm_id', '=', vmId).where('vm_disks.slot', '=', 0).executeTakeFirst();
  if (!img || img.boot === '') return undefined;
  const b = JSON.parse(img.boot) as { kernel: string; initrd?: string; append?: string };
  return { imageId: img.id, kernel: b.kernel, ...(b.initrd ? { initrd: b.initrd } : {}), ...(b.append !== undefined ? { append: b.append } : {}) };
}

/** What an agent is asked to run (or to receive, in a live migration) for this VM. */
export async function vmSpec(db: Db, vm: VmRow): Promise<VmSpec> {
  const [disks, nics, boot] = await Promise.all([
    db.k.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
      .select(['vm_disks.slot', 'vm_disks.volume_id', 'volumes.size_gib']).where('vm_id', '=', vm.id).orderBy('slot').execute(),
    db.k.selectFrom('vm_nics').selectAll().where('vm_id', '=', vm.id).orderBy('slot').execute(),
    bootOf(db, vm.id),
  ]);
  return {
    vmId: vm.id, name: vm.name, vcpus: vm.vcpus, memoryMiB: vm.memory_mib,
    architecture: vm.architecture as Arch, resourceType: vm.resource_type as VmSpec['resourceType'],
    disks: disks.map((x) => ({ slot: x.slot, volumeId: x.volume_id, sizeGiB: x.size_gib })),
    nics: nics.map((n) => ({ slot: n.slot, networkId: n.network_id, mac: n.mac })),
    ...(boot ? { boot } : {}),
  };
}
