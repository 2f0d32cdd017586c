/**
 * A continuous write stream on a session, as a guest would make: `workers` writers, each owning
 * the blocks ≡ its number modulo `workers` (so no two writes in flight overlap and the expected
 * content is exact), writing random ranges inside its blocks one after another. Acknowledged
 * writes go into `model` and into the map's log as `ack` events (with the blocks they touched).
 */
import type { VolumeSession } from '../../../src/storage/frontend/session.js';
import type { MemoryMap } from './memory-map.js';
import { pattern, prng } from './nodes.js';

export interface AckDetail { block: number; startedAfter: number }

export class WriteStream {
  readonly model: Buffer;
  acked = 0;
  failed: unknown[] = [];
  /** Seq of the log entry writes started after (set by the test to a log event's seq). */
  mark = 0;
  private stopping = false;
  private running: Promise<void>[] = [];
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(private readonly session: VolumeSession, private readonly map: MemoryMap, private readonly o: {
    sizeBytes: number; blockSize: number; workers?: number; seed?: number; blocks?: number; fuaEvery?: number;
  }) {
    this.model = Buffer.alloc(o.sizeBytes);
  }

  /** Starts the writers (again, after stop(): the model carries on). */
  start(): this {
    this.stopping = false;
    this.running = [];
    const workers = this.o.workers ?? 4;
    const blocks = this.o.blocks ?? Math.ceil(this.o.sizeBytes / this.o.blockSize);
    for (let w = 0; w < workers; w++) this.running.push(this.worker(w, workers, blocks));
    return this;
  }

  /** Resolves once `n` more writes were acknowledged. */
  more(n: number): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ n: this.acked + n, resolve }));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  private async worker(w: number, workers: number, blocks: number): Promise<void> {
    const rnd = prng((this.o.seed ?? 1) * 1000 + w);
    const bs = this.o.blockSize;
    const mine = Array.from({ length: blocks }, (_, i) => i).filter((b) => b % workers === w && b * bs < this.o.sizeBytes);
    let tag = w * 1_000_000;
    while (!this.stopping) {
      const block = mine[Math.floor(rnd() * mine.length)];
      const room = Math.min(bs, this.o.sizeBytes - block * bs);
      const len = 1 + Math.floor(rnd() * Math.min(room, rnd() < 0.2 ? room : 16 * 1024));
      const off = block * bs + Math.floor(rnd() * (room - len + 1));
      const data = pattern(len, ++tag);
      const fua = this.o.fuaEvery ? tag % this.o.fuaEvery === 0 : false;
      const startedAfter = this.mark;
      try {
        await this.session.write(off, data, fua);
      } catch (e) {
        this.failed.push(e);
        // A test waiting for more acknowledgements would wait forever: let it look.
        for (const x of this.waiters.splice(0)) x.resolve();
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      data.copy(this.model, off);
      this.map.event('ack', { block, startedAfter } satisfies AckDetail);
      this.acked++;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.acked >= this.waiters[i].n) this.waiters.splice(i, 1)[0].resolve();
      }
    }
  }
}
