import type { BlockEntry, MapSource, NodeAddress, ReplicaChange, VolumeMap } from '../storage/frontend/map.js';
import type { BlockMaps } from './blockmaps.js';

/**
 * MapSource for frontends inside the controller process (restores, relocations of stopped
 * volumes, `kumo up`): BlockMaps called directly, as one fixed holder — `controller:<name>` — so
 * the lease rules are the same as for agents and exports.
 */
export class LocalMapSource implements MapSource {
  constructor(private readonly maps: BlockMaps, readonly holder: string) {}

  /** The holder for a controller named `name` (the request engine's owner name). */
  static forController(maps: BlockMaps, name: string): LocalMapSource {
    return new LocalMapSource(maps, `controller:${name}`);
  }

  open(volumeId: string): Promise<VolumeMap> { return this.maps.open(volumeId, this.holder); }
  renew(volumeId: string, epoch: number): Promise<void> { return this.maps.renew(volumeId, this.holder, epoch); }
  allocate(volumeId: string, epoch: number, blocks: number[]): Promise<BlockEntry[]> { return this.maps.allocate(volumeId, this.holder, epoch, blocks); }
  update(volumeId: string, epoch: number, changes: ReplicaChange[]): Promise<void> { return this.maps.update(volumeId, this.holder, epoch, changes); }
  discard(volumeId: string, epoch: number, blocks: number[]): Promise<void> { return this.maps.discard(volumeId, this.holder, epoch, blocks); }
  addLocation(volumeId: string, epoch: number, nodeId: string): Promise<NodeAddress> { return this.maps.addLocation(volumeId, this.holder, epoch, nodeId); }
  removeLocation(volumeId: string, epoch: number, nodeId: string): Promise<void> { return this.maps.removeLocation(volumeId, this.holder, epoch, nodeId); }
  release(volumeId: string, epoch: number): Promise<void> { return this.maps.release(volumeId, this.holder, epoch); }
  handover(volumeId: string, epoch: number, toHolder: string): Promise<void> { return this.maps.handover(volumeId, this.holder, epoch, toHolder); }
}
