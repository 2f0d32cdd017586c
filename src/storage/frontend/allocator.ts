/**
 * First writes to unallocated blocks: the blocks wanted while no allocation is waiting for its
 * turn in the map queue go out in one map.allocate (a guest writing a new file touches many blocks
 * at once). allocate resolves after the map committed the entries, so the write that waited for it
 * may be acknowledged once its data is on the replicas.
 */
import type { BlockEntry } from './map.js';
import type { MapQueue } from './map-queue.js';

export class Allocator {
  private wanted: number[] = [];
  private queued: Promise<void> | null = null;

  /** `install` records the entries in the session (before any waiting write resumes). */
  constructor(private readonly queue: MapQueue, private readonly install: (entries: BlockEntry[]) => void) {}

  allocate(block: number): Promise<void> {
    this.wanted.push(block);
    if (this.queued) return this.queued;
    const p: Promise<void> = this.queue.run(async (map) => {
      if (this.queued === p) this.queued = null;
      const blocks = [...new Set(this.wanted)].sort((a, b) => a - b);
      this.wanted = [];
      this.install(await map.allocate(blocks));
    });
    this.queued = p;
    return p;
  }
}
