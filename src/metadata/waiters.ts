/**
 * Wake-ups for the guest agent's long-poll. A waiter is registered *before* the caller reads the
 * VM's generation, so a notify() landing between that read and the wait is not lost: the waiter is
 * already marked woken and the caller reads again instead of sleeping.
 */

export interface Waiter {
  readonly woken: boolean;
  /** Resolves on notify(), close(), `ms` passing or `signal` aborting, whichever comes first. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  dispose(): void;
}

export class Waiters {
  private readonly byVm = new Map<string, Set<{ wake(): void }>>();
  private closed = false;

  get isClosed(): boolean {
    return this.closed;
  }

  register(vmId: string): Waiter {
    let woken = this.closed;
    let resolve: (() => void) | null = null;
    const entry = { wake: () => { woken = true; resolve?.(); } };
    const set = this.byVm.get(vmId) ?? new Set();
    set.add(entry);
    this.byVm.set(vmId, set);
    return {
      get woken() { return woken; },
      sleep: (ms, signal) => new Promise<void>((done) => {
        if (woken || signal.aborted) return done();
        const timer = setTimeout(finish, ms);
        signal.addEventListener('abort', finish, { once: true });
        resolve = finish;
        function finish(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', finish);
          resolve = null;
          done();
        }
      }),
      dispose: () => {
        set.delete(entry);
        if (set.size === 0 && this.byVm.get(vmId) === set) this.byVm.delete(vmId);
      },
    };
  }

  notify(vmId: string): void {
    for (const w of this.byVm.get(vmId) ?? []) w.wake();
  }

  /** Ends every pending wait now (agent shutdown) so open long-polls do not hold the server open. */
  close(): void {
    this.closed = true;
    for (const set of this.byVm.values()) for (const w of set) w.wake();
  }

  /** How many long-polls are pending, for tests and the agent's metrics. */
  get size(): number {
    let n = 0;
    for (const set of this.byVm.values()) n += set.size;
    return n;
  }
}
