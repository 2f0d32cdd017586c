/**
 * Every block-map call of a session, one at a time in call order. The map is the authority and
 * its calls depend on each other (an update must not overtake the discard of its block, a batch of
 * in-sync marks must land after the out-of-sync mark of a write that failed before it), so one
 * FIFO is the simplest order that is always right. A task computes what it sends when its turn
 * comes, from the session's state at that moment. A LeaseLost from any call fences the session.
 */
import { LeaseLost, type BlockEntry, type MapSource, type NodeAddress, type ReplicaChange } from './map.js';

/** The map calls of one lease (volume id and epoch bound), for tasks running in the queue. */
export interface LeaseMap {
  allocate(blocks: number[]): Promise<BlockEntry[]>;
  update(changes: ReplicaChange[]): Promise<void>;
  discard(blocks: number[]): Promise<void>;
  addLocation(nodeId: string): Promise<NodeAddress>;
  removeLocation(nodeId: string): Promise<void>;
}

export class MapQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly bound: LeaseMap;

  constructor(map: MapSource, volumeId: string, epoch: number, private readonly onLeaseLost: (e: LeaseLost) => void) {
    this.bound = {
      allocate: (blocks) => map.allocate(volumeId, epoch, blocks),
      update: (changes) => map.update(volumeId, epoch, changes),
      discard: (blocks) => map.discard(volumeId, epoch, blocks),
      addLocation: (nodeId) => map.addLocation(volumeId, epoch, nodeId),
      removeLocation: (nodeId) => map.removeLocation(volumeId, epoch, nodeId),
    };
  }

  /** Runs `task` after every task queued before it has settled. */
  run<T>(task: (map: LeaseMap) => Promise<T>): Promise<T> {
    const p = this.tail.then(() => task(this.bound)).catch((e: unknown) => {
      if (e instanceof LeaseLost) this.onLeaseLost(e);
      throw e;
    });
    this.tail = p.catch(() => {});
    return p;
  }

  /** Resolves once every task queued so far has settled. */
  idle(): Promise<void> {
    return this.tail.then(() => {});
  }
}
