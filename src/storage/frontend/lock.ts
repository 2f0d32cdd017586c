/**
 * A block's lock: writes and trims hold it shared, a copy (resync) or a discard exclusive. Fair:
 * once an exclusive request waits, later shared ones queue behind it, so a busy block cannot
 * starve its copy. The uncontended shared path allocates nothing (`tryShared`).
 */
interface Waiter { exclusive: boolean; grant: () => void }

export class BlockLock {
  private shared = 0;
  private held = false;
  private waiters: Waiter[] | null = null;

  /** Takes the lock shared if that needs no waiting. */
  tryShared(): boolean {
    if (this.held || this.waiters !== null) return false;
    this.shared++;
    return true;
  }

  acquireShared(): Promise<void> {
    if (this.tryShared()) return Promise.resolve();
    return this.wait(false);
  }

  releaseShared(): void {
    this.shared--;
    if (this.shared === 0) this.wake();
  }

  acquireExclusive(): Promise<void> {
    if (!this.held && this.shared === 0 && this.waiters === null) {
      this.held = true;
      return Promise.resolve();
    }
    return this.wait(true);
  }

  releaseExclusive(): void {
    this.held = false;
    this.wake();
  }

  /** Nobody holds or waits for it. */
  get idle(): boolean {
    return !this.held && this.shared === 0 && this.waiters === null;
  }

  private wait(exclusive: boolean): Promise<void> {
    return new Promise((grant) => (this.waiters ??= []).push({ exclusive, grant }));
  }

  private wake(): void {
    const q = this.waiters;
    if (!q || this.held) return;
    if (q[0].exclusive) {
      if (this.shared > 0) return;
      this.held = true;
      q.shift()!.grant();
    } else {
      while (q.length > 0 && !q[0].exclusive) {
        this.shared++;
        q.shift()!.grant();
      }
    }
    if (q.length === 0) this.waiters = null;
  }
}
