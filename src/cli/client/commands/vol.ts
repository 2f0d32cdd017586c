import type { Command } from 'commander';
import { int } from '../../util.js';
import { act, asyncOptions, group } from '../command.js';

export function volCommands(program: Command): void {
  const vol = group(program, 'vol', 'volumes: create, attach to VMs, and place their replicas on storage nodes');

  vol.command('list').description('list your volumes')
    .action(act(async (c) => c.print(await c.call('getVolumeList'))));
  vol.command('show').description('show a volume with its attachment and replica locations').argument('<vol>', 'volume id (vol-…)')
    .action(act(async (c, [volumeId]) => c.print(await c.call('getVolumeInfo', { volumeId }))));
  vol.command('create').description('create a volume (prints its id)')
    .requiredOption('--size <GiB>', 'size in GiB', int)
    .option('--name <name>', 'a name for the volume')
    .option('--class <class>', 'best-effort or guaranteed')
    .option('--iops <n>', 'IOPS limit', int)
    .option('--replicas <n>', 'number of copies of each block', int)
    .option('--zone <zone>', 'zone whose storage nodes hold it')
    .option('--encrypted', 'encrypt the volume\'s data at rest')
    .action(act(async (c, _, o) => c.print(await c.call('allocateVolume', {
      volume: { sizeGiB: o.size, name: o.name, class: o.class, iops: o.iops, replicas: o.replicas, zone: o.zone, encrypted: o.encrypted },
    }))));
  vol.command('delete').description('delete a detached volume').argument('<vol>', 'volume id')
    .action(act(async (c, [volumeId]) => { await c.call('deallocateVolume', { volumeId }); c.done(`${volumeId} deleted`); }));
  vol.command('attach').description('plug a volume into a stopped VM (prints the slot)').argument('<vm>', 'VM id').argument('<vol>', 'volume id')
    .action(act(async (c, [vmId, volumeId]) => c.print(await c.call('attachVolume', { vmId, volumeId }))));
  vol.command('detach').description('unplug a volume from a stopped VM (slot 0, the system volume, stays)').argument('<vm>', 'VM id').argument('<slot>', 'disk slot (see `kumo vm show`)', int)
    .action(act(async (c, [vmId, slot]) => { await c.call('detachVolume', { vmId, slot }); c.done(`${vmId} disk ${slot} detached`); }));

  vol.command('locations').description('list the storage nodes holding a volume\'s replicas, with their block sync counts').argument('<vol>', 'volume id')
    .action(act(async (c, [volumeId]) => {
      const info = await c.call('getVolumeInfo', { volumeId }) as { locations: unknown };
      c.print(c.json ? info : info.locations);
    }));
  asyncOptions(vol.command('add-location').description('add a replica on a storage node, copied while the volume stays in use').argument('<vol>', 'volume id').argument('<node>', 'storage node id (node-…)'))
    .action(act(async (c, [volumeId, nodeId]) => c.submit('addVolumeLocation', { volumeId, nodeId })));
  asyncOptions(vol.command('remove-location').description('remove a replica (refused when it holds the last in-sync copy of a block)').argument('<vol>', 'volume id').argument('<node>', 'storage node id'))
    .action(act(async (c, [volumeId, nodeId]) => c.submit('removeVolumeLocation', { volumeId, nodeId })));
  vol.command('nodes').description('list the storage nodes (admin)')
    .action(act(async (c) => c.print(await c.call('getStorageNodeList'))));
}
