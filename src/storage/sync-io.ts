/**
 * When small file reads and writes run synchronously on the event loop (FileBackend, ObjectStore).
 *
 * `auto` (default): requests up to 256 KiB are done in place, where a page-cache hit costs a few
 * microseconds, while a trip through libuv's thread pool costs two thread wake-ups (measured:
 * ~25-40% less CPU per 4 KiB request, see bench/nbd) — and on a loaded host each wake-up also
 * waits for a CPU. Synchronous calls slower than 0.5 ms in a burst (two within about 20 calls:
 * dirty-page throttling, a disk that is touched), or one slower than 5 ms, send I/O to the thread
 * pool for 1 s, doubling up to 30 s while slow calls keep coming, so the event loop is never held
 * long. A lone slow call is the process being preempted on a busy host, not the disk: switching
 * for it would cost the thread pool's wake-ups on exactly such a host. Larger requests always use
 * the thread pool.
 * `async` never blocks the loop; `sync` always does (for measurements).
 */
export type FileIoMode = 'auto' | 'async' | 'sync';

const SYNC_MAX_BYTES = 256 * 1024;
const SLOW_SYNC_MS = 0.5;
const VERY_SLOW_SYNC_MS = 5;
/** Recent slow calls (each decaying by 1/32 per call) that make a burst: two within ~20 calls. */
const SLOW_BURST = 1.5;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export class SyncIoPolicy {
  /** Requests done on the event loop / in the thread pool, and synchronous calls found slow. */
  readonly stats = { syncOps: 0, poolOps: 0, slowSyncOps: 0 };
  private asyncUntil = -Infinity; // 'auto': the thread pool until then (performance.now() ms)
  private backoffMs = BACKOFF_MIN_MS;
  /** Recent slow calls, decaying by 1/32 per call. */
  private slowScore = 0;

  constructor(readonly mode: FileIoMode = 'auto') {}

  /** Whether a request of `length` bytes may run synchronously now. */
  allowed(length: number): boolean {
    return this.mode === 'auto' ? length <= SYNC_MAX_BYTES && performance.now() >= this.asyncUntil : this.mode === 'sync';
  }

  /** Counts a request done synchronously or in the thread pool. */
  count(sync: boolean): void {
    if (sync) this.stats.syncOps++;
    else this.stats.poolOps++;
  }

  /** How long a synchronous call took: slow ones send I/O to the thread pool for a while. */
  observe(ms: number): void {
    if (this.mode !== 'auto') return;
    this.slowScore -= this.slowScore / 32;
    if (ms < SLOW_SYNC_MS) return;
    this.stats.slowSyncOps++;
    this.slowScore += 1;
    if (ms < VERY_SLOW_SYNC_MS && this.slowScore < SLOW_BURST) return;
    this.slowScore = 0;
    const now = performance.now();
    // Slow again soon after the last pause: pause longer. Otherwise start over.
    this.backoffMs = now - this.asyncUntil < 10_000 ? Math.min(this.backoffMs * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    this.asyncUntil = now + this.backoffMs;
  }
}
