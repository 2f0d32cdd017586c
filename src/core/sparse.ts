import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Zero blocks of this size (aligned in the file) are left as holes. */
const BLOCK = 64 * 1024;
const BUFFER = 16 * BLOCK;
const ZERO = Buffer.alloc(BLOCK);

export interface Written { size: number; sha256: string }

/**
 * Writes a byte stream into a new file, leaving aligned all-zero blocks unwritten so the file stays
 * sparse (disk images are mostly zeros), and hashes every byte on the way.
 */
export class SparseWriter {
  private readonly buf = Buffer.allocUnsafe(BUFFER);
  private fill = 0;
  private pos = 0;
  private readonly hash: Hash = createHash('sha256');

  private constructor(private readonly fh: FileHandle, private readonly limit: number) {}

  /** Creates (or truncates) `path`; more than `limit` bytes is an error. */
  static async create(path: string, limit = Number.MAX_SAFE_INTEGER): Promise<SparseWriter> {
    return new SparseWriter(await open(path, 'w', 0o644), limit);
  }

  get bytes(): number { return this.pos + this.fill; }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.bytes + chunk.length > this.limit) throw new Error(`more than ${this.limit} bytes`);
    this.hash.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(chunk.length - off, BUFFER - this.fill);
      this.buf.set(chunk.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === BUFFER) await this.flush();
    }
  }

  /** Writes the buffered bytes, skipping zero blocks; runs of data go out in one write each. */
  private async flush(): Promise<void> {
    let start = -1;
    for (let b = 0; b < this.fill; b += BLOCK) {
      const len = Math.min(BLOCK, this.fill - b);
      const zero = this.buf.subarray(b, b + len).equals(ZERO.subarray(0, len));
      if (!zero && start < 0) start = b;
      if (zero && start >= 0) { await this.fh.write(this.buf, start, b - start, this.pos + start); start = -1; }
    }
    if (start >= 0) await this.fh.write(this.buf, start, this.fill - start, this.pos + start);
    this.pos += this.fill;
    this.fill = 0;
  }

  /** Flushes, sets the file's length (trailing holes), syncs and closes. */
  async finish(): Promise<Written> {
    try {
      await this.flush();
      await this.fh.truncate(this.pos);
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
    return { size: this.pos, sha256: this.hash.digest('hex') };
  }

  async abort(): Promise<void> { await this.fh.close().catch(() => {}); }
}

/** Writes everything `source` yields into `path` with SparseWriter. */
export async function writeSparse(source: AsyncIterable<Uint8Array>, path: string,
  o: { limit?: number; onBytes?: (bytes: number) => void } = {}): Promise<Written> {
  const w = await SparseWriter.create(path, o.limit);
  try {
    for await (const chunk of source) {
      await w.write(chunk);
      o.onBytes?.(w.bytes);
    }
  } catch (e) {
    await w.abort();
    throw e;
  }
  return w.finish();
}

/** A sparse copy of a file, with the sha256 of its bytes. */
export const copySparse = (from: string, to: string): Promise<Written> =>
  writeSparse(createReadStream(from, { highWaterMark: 1 << 20 }), to);
