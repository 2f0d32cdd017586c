/**
 * An NBD export whose backend can come later and change: live migration exports a volume at the
 * destination before its write lease is there (the incoming QEMU connects when it starts and does
 * no I/O until it is resumed, after the hand-over), and a connection keeps the backend it found
 * when it entered transmission, so the export itself must stay while what serves it changes.
 *
 * Until serve() every request is held; serve() runs them on the backend, as every later one.
 * fail() makes the held requests and every later one fail (a prepared VM detached, a session
 * handed over). serve() may follow fail() (a migration rolled back at the source).
 */
import type { BlockBackend } from '../nbd/backend.js';

interface Held { resolve(b: BlockBackend): void; reject(e: Error): void }

export class DeferredBackend implements BlockBackend {
  readonly multiConn = true;
  private backend: BlockBackend | null = null;
  private failure: Error | null = null;
  private held: Held[] = [];

  constructor(readonly size: number) {}

  get serving(): boolean {
    return this.backend !== null;
  }

  /** Requests held so far and from now on go to `backend`, which must have this export's size. */
  serve(backend: BlockBackend): void {
    if (backend.size !== this.size) throw new Error(`the backend has ${backend.size} bytes, the export ${this.size}`);
    this.backend = backend;
    this.failure = null;
    for (const h of this.take()) h.resolve(backend);
  }

  /** Requests held so far and from now on fail with `e`. */
  fail(e: Error): void {
    this.backend = null;
    this.failure = e;
    for (const h of this.take()) h.reject(e);
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.backend ? this.backend.read(offset, length) : this.later().then((b) => b.read(offset, length));
  }

  readInto(offset: number, target: Buffer): Promise<void> {
    const b = this.backend;
    return b ? intoFrom(b, offset, target) : this.later().then((x) => intoFrom(x, offset, target));
  }

  write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    return this.backend ? this.backend.write(offset, data, fua) : this.later().then((b) => b.write(offset, data, fua));
  }

  flush(): Promise<void> {
    return this.backend ? this.backend.flush() : this.later().then((b) => b.flush());
  }

  trim(offset: number, length: number): Promise<void> {
    return this.backend ? this.backend.trim(offset, length) : this.later().then((b) => b.trim(offset, length));
  }

  writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    return this.backend ? this.backend.writeZeroes(offset, length, fua) : this.later().then((b) => b.writeZeroes(offset, length, fua));
  }

  private later(): Promise<BlockBackend> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.held.push({ resolve, reject }));
  }

  private take(): Held[] {
    const all = this.held;
    this.held = [];
    return all;
  }
}

async function intoFrom(b: BlockBackend, offset: number, target: Buffer): Promise<void> {
  if (b.readInto) return b.readInto(offset, target);
  (await b.read(offset, target.length)).copy(target);
}
