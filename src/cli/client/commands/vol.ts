import type { Command } from 'commander';
import { int } from '../../util.js';
import { act, asyncOptions, group } from '../command.js';
import { exportCommand } from './vol-export.js';

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

  vol.command('locations').description('list the storage nodes holding a volume\'s replicas, with how many blocks each has in-sync / syncing / out-of-sync').argument('<vol>', 'volume id')
    .action(act(async (c, [volumeId]) => {
      const info = await c.call('getVolumeInfo', { volumeId }) as { locations: Location[] };
      if (c.json) return c.print(info);
      c.print(info.locations.map((l) => ({ node: l.nodeId, zone: l.zone, 'in-sync': l.inSync, syncing: l.syncing, 'out-of-sync': l.outOfSync })));
    }));
  asyncOptions(vol.command('add-location').description('add a replica on a storage node, copied while the volume stays in use').argument('<vol>', 'volume id').argument('<node>', 'storage node id (node-…)'))
    .action(act(async (c, [volumeId, nodeId]) => c.submit('addVolumeLocation', { volumeId, nodeId })));
  asyncOptions(vol.command('remove-location').description('remove a replica (refused when it holds the last in-sync copy of a block)').argument('<vol>', 'volume id').argument('<node>', 'storage node id'))
    .action(act(async (c, [volumeId, nodeId]) => c.submit('removeVolumeLocation', { volumeId, nodeId })));
  vol.command('nodes').description('list the storage nodes with their address, status and free space (admin)')
    .action(act(async (c) => {
      const nodes = await c.call('getStorageNodeList') as StorageNode[];
      if (c.json) return c.print(nodes);
      c.print(nodes.map((n) => ({
        node: n.nodeId, name: n.name, zone: n.zone, address: n.address, status: n.status, free: gib(n.freeBytes), size: gib(n.totalBytes), 'last seen': n.lastSeen,
      })), ['node', 'name', 'zone', 'address', 'status', 'free', 'size', 'last seen']);
    }));
  exportCommand(vol);
}

interface Location { nodeId: string; zone: string; inSync: number; syncing: number; outOfSync: number }
/** getStorageNodeList: address (host:port) and space as the node last reported them. */
interface StorageNode { nodeId: string; name: string; zone: string; status: string; address?: string; freeBytes?: number; totalBytes?: number; lastSeen?: string }

const gib = (bytes: number | undefined) => (bytes === undefined ? undefined : `${(bytes / 2 ** 30).toFixed(1)} GiB`);
