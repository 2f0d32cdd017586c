/**
 * Byte plumbing shared by the server and the client: a queue of received chunks that hands out
 * exact-length pieces (zero-copy when a piece lies within one chunk), and an async reader over a
 * socket for the handshake, which is small and sequential.
 */
import type { Socket } from 'node:net';

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // index of the first live chunk
  private offset = 0; // bytes already consumed from chunks[head]
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The next `n` bytes (n <= length): a view when they lie in one chunk, else a copy. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue.take(${n}) with ${this.length} queued`);
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head];
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head];
      const k = Math.min(c.length - this.offset, n - filled);
      c.copy(out, filled, this.offset, this.offset + k);
      filled += k;
      this.consume(k);
    }
    return out;
  }

  /** Drops the next `n` bytes (n <= length). */
  skip(n: number): void {
    while (n > 0) {
      const k = Math.min(this.chunks[this.head].length - this.offset, n);
      this.consume(k);
      n -= k;
    }
  }

  /** Everything still queued, as one buffer. */
  drain(): Buffer {
    return this.take(this.length);
  }

  /** Moves the cursor by k bytes, all within chunks[head]. */
  private consume(k: number): void {
    this.offset += k;
    this.length -= k;
    if (this.offset === this.chunks[this.head].length) {
      this.head++;
      this.offset = 0;
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      } else if (this.head >= 64) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
    }
  }
}

/** The peer closed the connection (or it failed) while a read was waiting. */
export class ConnectionClosed extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ConnectionClosed';
  }
}

/**
 * Sequential exact-length reads from a socket. The socket is paused while more than `highWater`
 * bytes wait unread, so a peer cannot make the handshake buffer grow without bound.
 */
export class SocketReader {
  readonly queue = new ByteQueue();
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private closed: Error | null = null;

  constructor(private readonly socket: Socket, private readonly highWater = 256 * 1024) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('SocketReader: concurrent reads'));
    if (this.queue.length >= n) {
      const b = this.queue.take(n);
      this.maybeResume();
      return Promise.resolve(b);
    }
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      if (this.socket.isPaused()) this.socket.resume();
    });
  }

  /** Stops listening and hands over whatever was received but not read. */
  detach(): ByteQueue {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    if (this.waiter) {
      this.waiter.reject(new ConnectionClosed('reader detached'));
      this.waiter = null;
    }
    return this.queue;
  }

  private readonly onData = (chunk: Buffer) => {
    this.queue.push(chunk);
    const w = this.waiter;
    if (w && this.queue.length >= w.n) {
      this.waiter = null;
      w.resolve(this.queue.take(w.n));
    }
    if (!this.waiter && this.queue.length > this.highWater) this.socket.pause();
  };

  private readonly onEnd = () => this.fail(new ConnectionClosed());

  private readonly onError = (err: Error) => this.fail(new ConnectionClosed(`connection failed: ${err.message}`));

  private fail(err: Error): void {
    this.closed ??= err;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.reject(this.closed);
    }
  }

  private maybeResume(): void {
    if (this.socket.isPaused() && this.queue.length <= this.highWater) this.socket.resume();
  }
}
