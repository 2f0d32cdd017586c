/**
 * When small file reads and writes run synchronously on the event loop (FileBackend, ObjectStore).
 *
 * `auto` (default): requests up to 256 KiB are done in place, where a page-cache hit costs a few
 * microseconds, while a trip through libuv's thread pool costs two thread wake-ups (measured:
 * ~25-40% less CPU per 4 KiB request, see bench/nbd) — and on a loaded host each wake-up also
 * waits for a CPU. Any synchronous call slower than 0.5 ms (the disk was touched, or dirty-page
 * throttling) sends I/O to the thread pool for 1 s, doubling up to 30 s while slow calls keep
 * coming, so the event loop is never held long. Larger requests always use the thread pool.
 * `async` never blocks the loop; `sync` always does (for measurements).
 */
export type FileIoMode = 'auto' | 'async' | 'sync';

const SYNC_MAX_BYTES = 256 * 1024;
const SLOW_SYNC_MS = 0.5;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export class SyncIoPolicy {
  /** Requests done on the event loop / in the thread pool, and synchronous calls found slow. */
  readonly stats = { syncOps: 0, poolOps: 0, slowSyncOps: 0 };
  private asyncUntil = -Infinity; // 'auto': the thread pool until then (performance.now() ms)
  private backoffMs = BACKOFF_MIN_MS;

  constructor(readonly mode: FileIoMode = 'auto') {}

  /** Whether a request of `length` bytes runs synchronously now (counted either way). */
  allowed(length: number): boolean {
    const sync = this.mode === 'auto' ? length <= SYNC_MAX_BYTES && performance.now() >= this.asyncUntil : this.mode === 'sync';
    if (sync) this.stats.syncOps++;
    else this.stats.poolOps++;
    return sync;
  }

  /** How long a synchronous call took: a slow one sends I/O to the thread pool for a while. */
  observe(ms: number): void {
    if (ms < SLOW_SYNC_MS || this.mode !== 'auto') return;
    this.stats.slowSyncOps++;
    const now = performance.now();
    // Slow again soon after the last pause: pause longer. Otherwise start over.
    this.backoffMs = now - this.asyncUntil < 10_000 ? Math.min(this.backoffMs * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    this.asyncUntil = now + this.backoffMs;
  }
}
