/**
 * MemoryBackend: a sparse in-memory BlockBackend (64 KiB pages allocated on first write, dropped
 * by trim and by zeroing whole pages). Nothing is durable, so flush and FUA are no-ops. For tests
 * and tools; it counts the calls it gets.
 */
import type { BlockBackend } from './backend.js';

const PAGE = 64 * 1024;

export class MemoryBackend implements BlockBackend {
  readonly multiConn = true;
  private readonly pages = new Map<number, Buffer>();
  readonly calls = { read: 0, write: 0, fuaWrite: 0, flush: 0, trim: 0, writeZeroes: 0 };

  constructor(readonly size: number, readonly readOnly = false) {}

  async read(offset: number, length: number): Promise<Buffer> {
    this.calls.read++;
    const out = Buffer.alloc(length);
    this.each(offset, length, (page, at, n, pos) => this.pages.get(page)?.copy(out, pos, at, at + n));
    return out;
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    this.calls.write++;
    if (fua) this.calls.fuaWrite++;
    this.each(offset, data.length, (page, at, n, pos) => data.copy(this.page(page), at, pos, pos + n));
  }

  async flush(): Promise<void> {
    this.calls.flush++;
  }

  async trim(offset: number, length: number): Promise<void> {
    this.calls.trim++;
    this.zero(offset, length);
  }

  async writeZeroes(offset: number, length: number, _fua: boolean): Promise<void> {
    this.calls.writeZeroes++;
    this.zero(offset, length);
  }

  /** Bytes held in memory. */
  get allocated(): number {
    return this.pages.size * PAGE;
  }

  private zero(offset: number, length: number): void {
    this.each(offset, length, (page, at, n) => {
      if (n === PAGE) this.pages.delete(page);
      else this.pages.get(page)?.fill(0, at, at + n);
    });
  }

  private page(i: number): Buffer {
    let p = this.pages.get(i);
    if (!p) this.pages.set(i, (p = Buffer.alloc(PAGE)));
    return p;
  }

  /** Calls fn(page index, offset in page, byte count, position in the request) for each page touched. */
  private each(offset: number, length: number, fn: (page: number, at: number, n: number, pos: number) => void): void {
    let pos = 0;
    while (pos < length) {
      const abs = offset + pos;
      const page = Math.floor(abs / PAGE);
      const at = abs - page * PAGE;
      const n = Math.min(PAGE - at, length - pos);
      fn(page, at, n, pos);
      pos += n;
    }
  }
}
