/**
 * The storage node's block objects on its local filesystem. Each object is a sparse file
 * `<dir>/objects/<ab>/<objectId>` (`ab` = the id's first two hex digits, 256 directories): a write
 * at an offset leaves a hole before it, unwritten ranges read as zeros and use no space, and a
 * missing object reads as all zeros. A file is only as long as its last written byte; an object is
 * at most `maxObjectBytes` (the block size, with room to spare).
 *
 * Ordering: every operation on one object runs after the ones on that object called before it
 * (a FIFO per object), so a pipelined WRITE then READ of one object sees the write, and a COPY
 * holds the writes sent after it until the copy is in place. Operations on different objects run
 * in parallel.
 *
 * Fast path: a small read, or a small write without FUA, of an object that has nothing queued and
 * an open descriptor is done at once, synchronously (a page-cache hit costs microseconds; the
 * FIFO's promises and libuv's thread pool cost more than the copy) — the order is kept, since it
 * completes before anything called after it. Slow synchronous calls send I/O back to the thread
 * pool for a while (`io`, ../sync-io.ts). readNow()/writeNow() offer the fast path alone, so the
 * in-process client (in-process.ts) can tell a request already done from one it must wait for.
 *
 * Durability: write() returns once the data is in the page cache. `fua` and flush() fdatasync the
 * object's file, and fsync the directory entries created or removed since (a new object's name
 * must survive a crash as much as its data). Dirty objects are tracked by id, not by descriptor:
 * on Linux an fdatasync on any descriptor of a file writes all its dirty pages, so a descriptor can
 * be closed by the bounded cache of open files (LRU) without syncing and reopened by a later flush.
 */
import { randomBytes } from 'node:crypto';
import { constants, readSync, writeSync, type Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isObjectId } from '../blockmap/ids.js';
import { NodeOpError } from './errors.js';
import { canPunchHoles, punchHole } from './holes.js';
import { silentLogger, type NodeLogger } from './log.js';
import { isZero } from '../../core/zeros.js';
import { SyncIoPolicy, type FileIoMode } from '../sync-io.js';

export const DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_OPEN_FILES = 256;
const COPY_CHUNK = 1024 * 1024;
const ZERO_CHUNK = Buffer.alloc(COPY_CHUNK);

export interface ObjectStoreOptions {
  /** Largest offset+length an object accepts. Default 64 MiB. */
  maxObjectBytes?: number;
  /** Open descriptors kept (LRU). Default 256. */
  maxOpenFiles?: number;
  /** `auto` probes `fallocate`; `zeros` never punches (overwrites trimmed ranges with zeros). */
  holes?: 'auto' | 'zeros';
  /** When small reads and writes run synchronously (see the file comment). Default 'auto'. */
  io?: FileIoMode;
  log?: NodeLogger;
}

export interface ObjectStat {
  objectId: string;
  exists: boolean;
  /** File length: the end of the last written byte (bytes beyond read as zeros). */
  size: number;
  /** Space the file really uses (st_blocks × 512). */
  allocatedBytes: number;
}

/** Where copyFrom reads an object from (another node, a test buffer…). */
export interface SourceReader {
  /** Bytes to copy; the object's length on the source. */
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export interface StoreCounters {
  /** fdatasync calls on object files (FUA, FLUSH, copies). */
  syncs: number;
  /** fsync calls on directories. */
  dirSyncs: number;
  /** Ranges deallocated with a hole punch. */
  punches: number;
  opens: number;
  evictions: number;
}

interface Handle { fh: FileHandle; refs: number }

export class ObjectStore {
  readonly counters: StoreCounters = { syncs: 0, dirSyncs: 0, punches: 0, opens: 0, evictions: 0 };
  readonly maxObjectBytes: number;
  /** Small reads and writes done at once, synchronously; those through the FIFO and thread pool. */
  readonly io: SyncIoPolicy;
  private readonly maxOpenFiles: number;
  private readonly log: NodeLogger;
  private readonly objectsDir: string;
  private readonly tmpDir: string;
  /** Insertion order is recency: a used handle is moved to the end. */
  private readonly handles = new Map<string, Handle>();
  /** The tail of each object's FIFO; absent when the object is idle. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Objects with writes not yet fdatasync'ed. */
  private readonly dirty = new Set<string>();
  /** Directories with entries not yet fsync'ed, with a change counter (a sync clears only what it saw). */
  private readonly dirtyDirs = new Map<string, number>();
  private readonly knownDirs = new Set<string>();
  private punching = false;
  private opened = false;

  constructor(readonly dir: string, private readonly opts: ObjectStoreOptions = {}) {
    this.maxObjectBytes = opts.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES;
    this.maxOpenFiles = Math.max(1, opts.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES);
    this.log = opts.log ?? silentLogger;
    this.io = new SyncIoPolicy(opts.io ?? 'auto');
    this.objectsDir = join(dir, 'objects');
    this.tmpDir = join(dir, 'tmp');
  }

  /** Creates the layout, clears copies left by a crash, and finds out whether holes can be punched. */
  async open(): Promise<void> {
    if (this.opened) return;
    await mkdir(this.objectsDir, { recursive: true });
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    this.punching = this.opts.holes !== 'zeros' && await canPunchHoles(this.tmpDir);
    if (!this.punching) this.log.warn({ dir: this.dir }, 'cannot punch holes here: trimmed ranges inside an object are overwritten with zeros');
    this.opened = true;
  }

  /** Whether a TRIM inside an object frees its space (else it writes zeros there). */
  get punchesHoles(): boolean { return this.punching; }

  /** Objects with unsynced writes. */
  get dirtyObjects(): number { return this.dirty.size; }

  path(objectId: string): string {
    return join(this.objectsDir, objectId.slice(0, 2), objectId);
  }

  /** `length` bytes at `offset`; holes, a missing object and bytes past the file's end read as zeros. */
  read(objectId: string, offset: number, length: number): Promise<Buffer> {
    this.check(objectId, offset, length);
    const h = this.idleHandle(objectId, length);
    if (!h) return this.readLater(objectId, offset, length);
    try {
      return Promise.resolve(this.readAt(h, offset, Buffer.allocUnsafe(length)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The read done at once (see the file comment: an idle, open object, and small I/O synchronous
   * now), or null: then readQueued() queues it. Throws what read() would reject with.
   */
  readNow(objectId: string, offset: number, length: number): Buffer | null {
    this.check(objectId, offset, length);
    const h = this.idleHandle(objectId, length);
    return h ? this.readAt(h, offset, Buffer.allocUnsafe(length)) : null;
  }

  /** readNow() into the caller's buffer (`target.length` bytes): true if it was done. */
  readNowInto(objectId: string, offset: number, target: Buffer): boolean {
    this.check(objectId, offset, target.length);
    const h = this.idleHandle(objectId, target.length);
    if (!h) return false;
    this.readAt(h, offset, target);
    return true;
  }

  /** read() through the object's FIFO, for a caller that just tried readNow(). */
  readQueued(objectId: string, offset: number, length: number): Promise<Buffer> {
    this.check(objectId, offset, length);
    return this.readLater(objectId, offset, length);
  }

  /** Writes `data` at `offset`, creating the object; with `fua` it is on stable storage on return. */
  write(objectId: string, offset: number, data: Uint8Array, fua = false): Promise<void> {
    this.check(objectId, offset, data.length);
    const h = fua ? null : this.idleHandle(objectId, data.length);
    if (!h) return this.writeLater(objectId, offset, data, fua);
    try {
      this.writeAt(objectId, h, offset, data);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The write (without FUA) done at once, as readNow(): true if it was, false if writeQueued()
   * must queue it. Throws what write() would reject with.
   */
  writeNow(objectId: string, offset: number, data: Uint8Array): boolean {
    this.check(objectId, offset, data.length);
    const h = this.idleHandle(objectId, data.length);
    if (!h) return false;
    this.writeAt(objectId, h, offset, data);
    return true;
  }

  /** write() through the object's FIFO, for a caller that just tried writeNow(). */
  writeQueued(objectId: string, offset: number, data: Uint8Array, fua = false): Promise<void> {
    this.check(objectId, offset, data.length);
    return this.writeLater(objectId, offset, data, fua);
  }

  /**
   * Puts the given objects (all dirty ones when omitted, and every pending directory change) on
   * stable storage, after the operations on them called before. Resolves with the fdatasyncs done.
   */
  async flush(objectIds?: Iterable<string>): Promise<number> {
    const ids = objectIds === undefined ? [...this.dirty] : [...new Set(objectIds)];
    for (const id of ids) this.check(id, 0, 0);
    const before = this.counters.syncs;
    await Promise.all(ids.map((id) => this.serial(id, () => this.syncLocked(id))));
    if (objectIds === undefined) await Promise.all([...this.dirtyDirs.keys()].map((d) => this.syncDir(d)));
    return this.counters.syncs - before;
  }

  /**
   * Deallocates [offset, offset+length); the range then reads as zeros. The whole object →
   * the file is removed; a tail → the file is shortened; a middle range → a hole is punched (or
   * zeros written where that is impossible). With `fua` the change is on stable storage on return.
   */
  trim(objectId: string, offset: number, length: number, fua = false): Promise<void> {
    this.check(objectId, offset, length);
    return this.serial(objectId, async () => {
      if (length === 0) return;
      const h = await this.acquire(objectId, false);
      if (!h) return;
      let removeAll = false;
      try {
        const size = (await h.fh.stat()).size;
        const end = offset + length;
        if (offset >= size) return;
        if (offset === 0 && end >= size) removeAll = true;
        else if (end >= size) await h.fh.truncate(offset);
        else if (this.punching) {
          await punchHole(this.path(objectId), offset, length);
          this.counters.punches++;
        } else {
          for (let at = offset; at < end; at += COPY_CHUNK) await h.fh.write(ZERO_CHUNK, 0, Math.min(COPY_CHUNK, end - at), at);
        }
        if (!removeAll) {
          this.dirty.add(objectId);
          if (fua) await this.syncLocked(objectId, h);
        }
      } finally { this.release(h); }
      if (removeAll) await this.removeLocked(objectId, fua);
    });
  }

  /** Removes the object (a missing one is fine); with `fua` the removal is on stable storage on return. */
  delete(objectId: string, fua = false): Promise<void> {
    this.check(objectId, 0, 0);
    return this.serial(objectId, () => this.removeLocked(objectId, fua));
  }

  /**
   * Replaces the object with `source`'s content: read in 1 MiB chunks (4 at a time) into a
   * temporary file — all-zero chunks stay holes — synced, then renamed over the object. A failed
   * copy leaves the old object whole. `source` may be a function opening the reader: it runs in the
   * object's turn, so the copy takes its place in the FIFO at the call even when opening the
   * source takes time; operations on this object called after copyFrom wait for it, so writes sent
   * after a COPY land on the copy. Resolves with the size copied and the bytes written (non-zero data).
   */
  copyFrom(objectId: string, source: SourceReader | (() => Promise<SourceReader>), opts: { chunkBytes?: number; parallel?: number } = {}): Promise<{ size: number; bytesWritten: number }> {
    this.check(objectId, 0, 0);
    const chunk = Math.max(4096, opts.chunkBytes ?? COPY_CHUNK);
    const parallel = Math.max(1, opts.parallel ?? 4);
    return this.serial(objectId, async () => {
      const src = typeof source === 'function' ? await source() : source;
      this.check(objectId, 0, src.size);
      if (src.size === 0) {
        await this.removeLocked(objectId, true);
        return { size: 0, bytesWritten: 0 };
      }
      const tmp = join(this.tmpDir, `${objectId}.${randomBytes(4).toString('hex')}`);
      let written = 0;
      try {
        const fh = await open(tmp, 'wx');
        try {
          let next = 0;
          let failed = false;
          const worker = async () => {
            while (next < src.size && !failed) {
              const at = next;
              const n = Math.min(chunk, src.size - at);
              next += n;
              const data = await src.read(at, n);
              if (data.length !== n) throw new NodeOpError('EIO', `copy source returned ${data.length} bytes at ${at}, expected ${n}`);
              if (isZero(data)) continue;
              let done = 0;
              while (done < n) done += (await fh.write(data, done, n - done, at + done)).bytesWritten;
              written += n;
            }
          };
          // Every worker stops before the file is closed, even when one fails.
          const results = await Promise.allSettled(Array.from({ length: parallel }, () => worker().catch((e) => { failed = true; throw e; })));
          const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failure) throw failure.reason;
          await fh.truncate(src.size);
          await fh.datasync();
          this.counters.syncs++;
        } finally { await fh.close(); }
        await this.dropHandle(objectId);
        await this.ensureDir(objectId);
        await rename(tmp, this.path(objectId));
        this.dirty.delete(objectId);
        this.markDir(this.dirOf(objectId));
        await this.syncDirsOf(objectId);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
      return { size: src.size, bytesWritten: written };
    });
  }

  /** Size and space used; a missing object is `exists: false` with zeros. */
  stat(objectId: string): Promise<ObjectStat> {
    this.check(objectId, 0, 0);
    return this.serial(objectId, async () => {
      let st: Stats;
      try { st = await stat(this.path(objectId)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { objectId, exists: false, size: 0, allocatedBytes: 0 };
        throw e;
      }
      return { objectId, exists: true, size: st.size, allocatedBytes: st.blocks * 512 };
    });
  }

  /** The data filesystem's size and free space (what placement spreads by). */
  async space(): Promise<{ totalBytes: number; freeBytes: number }> {
    const s = await statfs(this.dir);
    return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  }

  /** Ids of the objects stored here, sorted (walks the directories: for resync and audits, not hot paths). */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const d of await readdir(this.objectsDir)) {
      const names = await readdir(join(this.objectsDir, d)).catch(() => [] as string[]);
      out.push(...names.filter((n) => isObjectId(n) && n.startsWith(d)));
    }
    return out.sort();
  }

  /** Waits for the operations under way and closes every descriptor; unsynced data stays in the page cache. */
  async close(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
    await Promise.all([...this.handles.keys()].map((id) => this.dropHandle(id)));
  }

  // --- internals --------------------------------------------------------------------------------

  private check(objectId: string, offset: number, length: number): void {
    if (!this.opened) throw new NodeOpError('ESHUTDOWN', 'the object store is not open');
    if (!isObjectId(objectId)) throw new NodeOpError('EINVAL', `not an object id: ${JSON.stringify(String(objectId).slice(0, 40))}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > this.maxObjectBytes) {
      throw new NodeOpError('EINVAL', `range ${offset}+${length} is outside an object of at most ${this.maxObjectBytes} bytes`);
    }
  }

  /** The object's open descriptor when a request of `length` bytes may be done at once (see the file comment). */
  private idleHandle(objectId: string, length: number): Handle | null {
    if (this.tails.has(objectId)) return null;
    const h = this.handles.get(objectId);
    if (!h || !this.io.allowed(length)) return null;
    this.handles.delete(objectId); // most recently used
    this.handles.set(objectId, h);
    return h;
  }

  /** A synchronous read on the event loop (the fast path), filling `buf`. */
  private readAt(h: Handle, offset: number, buf: Buffer): Buffer {
    const length = buf.length;
    let done = 0;
    const t0 = performance.now();
    try {
      while (done < length) {
        const n = readSync(h.fh.fd, buf, done, length - done, offset + done);
        if (n === 0) break; // end of file: zeros below
        done += n;
      }
    } finally {
      this.io.observe(performance.now() - t0);
    }
    this.io.count(true);
    return done < length ? buf.fill(0, done) : buf;
  }

  /** A synchronous write on the event loop (the fast path). */
  private writeAt(objectId: string, h: Handle, offset: number, data: Uint8Array): void {
    const t0 = performance.now();
    try {
      for (let done = 0; done < data.length;) done += writeSync(h.fh.fd, data, done, data.length - done, offset + done);
    } finally {
      this.io.observe(performance.now() - t0);
    }
    this.io.count(true);
    this.dirty.add(objectId);
  }

  private readLater(objectId: string, offset: number, length: number): Promise<Buffer> {
    return this.serial(objectId, async () => {
      this.io.count(false);
      const h = await this.acquire(objectId, false);
      if (!h) return Buffer.alloc(length);
      // Not zeroed up front: the kernel fills what the file holds (holes as zeros), the rest is zeroed below.
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      try {
        while (done < length) {
          const { bytesRead } = await h.fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) break; // end of file
          done += bytesRead;
        }
      } finally { this.release(h); }
      return done < length ? buf.fill(0, done) : buf;
    });
  }

  private writeLater(objectId: string, offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    return this.serial(objectId, async () => {
      this.io.count(false);
      const h = (await this.acquire(objectId, true))!;
      try {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await h.fh.write(data, done, data.length - done, offset + done);
          done += bytesWritten;
        }
        this.dirty.add(objectId);
        if (fua) await this.syncLocked(objectId, h);
      } finally { this.release(h); }
    });
  }

  /** Runs `fn` after every earlier operation on the object; enqueues synchronously (call order = run order). */
  private serial<T>(objectId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(objectId) ?? Promise.resolve();
    const run = prev.then(fn);
    // Forgotten as soon as it ends (before its caller resumes): an idle object takes the fast path.
    const end = () => { if (this.tails.get(objectId) === tail) this.tails.delete(objectId); };
    const tail: Promise<void> = run.then(end, end);
    this.tails.set(objectId, tail);
    return run;
  }

  private dirOf(objectId: string): string { return join(this.objectsDir, objectId.slice(0, 2)); }

  private async ensureDir(objectId: string): Promise<void> {
    const d = this.dirOf(objectId);
    if (this.knownDirs.has(d)) return;
    const made = await mkdir(d, { recursive: true });
    if (made !== undefined) this.markDir(this.objectsDir);
    this.knownDirs.add(d);
  }

  /** The object's cached descriptor, opened (and with `create`, the file created) if needed; null if absent. */
  private async acquire(objectId: string, create: boolean): Promise<Handle | null> {
    let h = this.handles.get(objectId);
    if (h) {
      this.handles.delete(objectId);
      this.handles.set(objectId, h);
    } else {
      const path = this.path(objectId);
      let fh: FileHandle;
      try {
        fh = await open(path, constants.O_RDWR);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        if (!create) return null;
        await this.ensureDir(objectId);
        fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
        this.markDir(this.dirOf(objectId));
      }
      this.counters.opens++;
      h = { fh, refs: 1 };
      this.handles.set(objectId, h);
      this.evict();
      return h;
    }
    h.refs++;
    return h;
  }

  private release(h: Handle): void {
    h.refs--;
    if (this.handles.size > this.maxOpenFiles) this.evict();
  }

  /** Closes least recently used idle descriptors beyond the bound (dirty ones too: see the header). */
  private evict(): void {
    for (const [id, h] of this.handles) {
      if (this.handles.size <= this.maxOpenFiles) return;
      if (h.refs > 0) continue;
      this.handles.delete(id);
      this.counters.evictions++;
      h.fh.close().catch((e: Error) => this.log.warn({ objectId: id, err: e.message }, 'closing an object file failed'));
    }
  }

  private async dropHandle(objectId: string): Promise<void> {
    const h = this.handles.get(objectId);
    if (!h) return;
    this.handles.delete(objectId);
    await h.fh.close();
  }

  /** fdatasync of a dirty object, then its pending directory entries. Runs inside the object's FIFO. */
  private async syncLocked(objectId: string, held?: Handle): Promise<void> {
    if (this.dirty.has(objectId)) {
      const h = held ?? await this.acquire(objectId, false);
      if (h) {
        try {
          await h.fh.datasync();
          this.counters.syncs++;
        } finally { if (!held) this.release(h); }
      }
      this.dirty.delete(objectId);
    }
    await this.syncDirsOf(objectId);
  }

  private async removeLocked(objectId: string, fua: boolean): Promise<void> {
    await this.dropHandle(objectId);
    try {
      await rm(this.path(objectId));
      this.markDir(this.dirOf(objectId));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.dirty.delete(objectId);
    if (fua) await this.syncDirsOf(objectId);
  }

  private markDir(dir: string): void {
    this.dirtyDirs.set(dir, (this.dirtyDirs.get(dir) ?? 0) + 1);
  }

  private async syncDirsOf(objectId: string): Promise<void> {
    await this.syncDir(this.dirOf(objectId));
    await this.syncDir(this.objectsDir);
  }

  private async syncDir(dir: string): Promise<void> {
    const seen = this.dirtyDirs.get(dir);
    if (seen === undefined) return;
    const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try { await fh.sync(); } finally { await fh.close(); }
    this.counters.dirSyncs++;
    if (this.dirtyDirs.get(dir) === seen) this.dirtyDirs.delete(dir);
  }
}
