/**
 * The end of a connection, told once: as a promise, and to listeners — at once (async) to a
 * listener that arrives after the end. Shared by the protocol clients (QMP, storage node).
 */
export class Ending<T> {
  info: T | undefined;
  readonly promise: Promise<T>;
  private resolve!: (info: T) => void;
  private readonly listeners = new Set<(info: T) => void>();

  constructor(private readonly onListenerError: (err: unknown) => void) {
    this.promise = new Promise((r) => { this.resolve = r; });
  }

  on(listener: (info: T) => void): () => void {
    if (this.info !== undefined) {
      const info = this.info;
      queueMicrotask(() => listener(info));
      return () => {};
    }
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  end(info: T): void {
    if (this.info !== undefined) return;
    this.info = info;
    this.resolve(info);
    for (const l of [...this.listeners]) {
      try { l(info); } catch (err) { this.onListenerError(err); }
    }
    this.listeners.clear();
  }
}
