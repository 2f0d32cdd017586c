/**
 * FileBackend: a raw (usually sparse) file as a BlockBackend.
 *
 * - read/write: pread/pwrite on the file's descriptor. Buffered I/O: the page cache is the
 *   write-back cache, as with `qemu-nbd --cache=writeback`. Small requests are done synchronously
 *   on the event loop while that is fast (`io`, see ../sync-io.ts).
 * - FUA write: the write, then fdatasync. flush: fdatasync. Concurrent syncs are batched: a sync
 *   requested while one runs waits for the next one (which starts after the running one ends), so
 *   N queued FUA writes cost about two fdatasyncs, not N.
 * - trim: a no-op. TRIM is advisory (proto.md: the server MAY discard) and node's fs has no
 *   fallocate(PUNCH_HOLE); zeroing instead would turn a cheap hint into full writes.
 * - writeZeroes: writes zeroes (from one shared zero buffer), so the range reads back as zero and
 *   stays allocated (NBD_CMD_FLAG_NO_HOLE is honoured trivially).
 * The file is opened once; every connection shares the descriptor and the page cache, so flush
 * covers writes from all connections: the backend declares multiConn.
 */
import fs from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { SyncIoPolicy, type FileIoMode } from '../sync-io.js';
import type { BlockBackend } from './backend.js';

export type { FileIoMode } from '../sync-io.js';

export interface FileBackendOptions {
  readOnly?: boolean;
  /** How reads and writes are issued (see the file comment). Default 'auto'. */
  io?: FileIoMode;
  /** Export size; defaults to the file's size. A larger size grows the file (sparsely). */
  size?: number;
  /** Create the file if missing (needs `size`). */
  create?: boolean;
}

const ZERO_CHUNK = 1024 * 1024;
let zeroes: Buffer | null = null;

/** Runs `fn` for sync requests, coalescing: see the file comment. */
export class SyncBatcher {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly fn: () => Promise<void>) {}

  sync(): Promise<void> {
    if (!this.running) return this.start();
    // The running sync may have started before the caller's write completed: wait for the next.
    return (this.queued ??= this.running.then(
      () => this.next(),
      () => this.next(),
    ));
  }

  private next(): Promise<void> {
    this.queued = null;
    return this.start();
  }

  private start(): Promise<void> {
    const p = this.fn().finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    return p;
  }
}

function pread(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function pwrite(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

export class FileBackend implements BlockBackend {
  readonly multiConn = true;
  private readonly fd: number;
  private readonly syncer: SyncBatcher;
  private closed = false;
  private readonly policy: SyncIoPolicy;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
    readonly readOnly: boolean,
    readonly io: FileIoMode,
  ) {
    this.fd = fh.fd;
    this.policy = new SyncIoPolicy(io);
    this.syncer = new SyncBatcher(() => this.fh.datasync());
  }

  static async open(path: string, opts: FileBackendOptions = {}): Promise<FileBackend> {
    const readOnly = opts.readOnly ?? false;
    if (opts.create && opts.size === undefined) throw new Error('FileBackend.open: create needs a size');
    const fh = await open(path, readOnly ? 'r' : opts.create ? fs.constants.O_RDWR | fs.constants.O_CREAT : 'r+');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new Error(`${path} is not a regular file`);
      let size = st.size;
      if (opts.size !== undefined) {
        if (!Number.isSafeInteger(opts.size) || opts.size < 0) throw new Error(`bad size ${opts.size}`);
        if (opts.size > st.size) {
          if (readOnly) throw new Error(`${path} is ${st.size} bytes, smaller than ${opts.size}`);
          await fh.truncate(opts.size);
        }
        size = opts.size;
      }
      return new FileBackend(path, fh, size, readOnly, opts.io ?? 'auto');
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, buf: Buffer): Promise<void> {
    if (this.syncAllowed(buf.length)) {
      const t0 = performance.now();
      try {
        this.readSyncAll(buf, offset);
      } finally {
        this.observe(performance.now() - t0);
      }
      return;
    }
    let done = 0;
    while (done < buf.length) {
      const n = await pread(this.fd, buf, done, buf.length - done, offset + done);
      if (n === 0) {
        buf.fill(0, done); // the file is shorter than the export (shrunk under us): zeroes
        break;
      }
      done += n;
    }
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    if (this.syncAllowed(data.length)) {
      const t0 = performance.now();
      try {
        for (let done = 0; done < data.length; ) done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
      } finally {
        this.observe(performance.now() - t0);
      }
    } else {
      await this.writeAll(data, offset);
    }
    if (fua) await this.syncer.sync();
  }

  flush(): Promise<void> {
    return this.syncer.sync();
  }

  async trim(_offset: number, _length: number): Promise<void> {
    // Advisory; see the file comment.
  }

  async writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    zeroes ??= Buffer.alloc(ZERO_CHUNK);
    const z = zeroes;
    const pieces: Promise<void>[] = [];
    for (let at = 0; at < length; at += ZERO_CHUNK) {
      pieces.push(this.writeAll(z.subarray(0, Math.min(ZERO_CHUNK, length - at)), offset + at));
      if (pieces.length === 4) await Promise.all(pieces.splice(0));
    }
    await Promise.all(pieces);
    if (fua) await this.syncer.sync();
  }

  /** Closes the file. Remove the export first: requests still in flight would fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  /** Requests done on the event loop / in the thread pool, and synchronous calls found slow. */
  get stats(): SyncIoPolicy['stats'] { return this.policy.stats; }

  private syncAllowed(length: number): boolean {
    const sync = this.policy.allowed(length);
    this.policy.count(sync);
    return sync;
  }

  private observe(ms: number): void { this.policy.observe(ms); }

  private readSyncAll(buf: Buffer, offset: number): void {
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, offset + done);
      if (n === 0) {
        buf.fill(0, done);
        return;
      }
      done += n;
    }
  }

  private async writeAll(data: Buffer, offset: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      done += await pwrite(this.fd, data, done, data.length - done, offset + done);
    }
  }
}
