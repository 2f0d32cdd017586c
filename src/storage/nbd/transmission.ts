/**
 * Transmission phase of one connection (proto.md "Transmission"): parses requests as bytes arrive,
 * runs them concurrently against the backend, and writes simple replies as they complete (out of
 * order; each reply is queued whole, header and payload together, so replies never interleave;
 * the replies of one event-loop turn leave in one write).
 *
 * - Bounds, flags, read-only-ness and sizes are checked here; the backend sees valid requests only.
 *   Past the end: EINVAL for READ/TRIM, ENOSPC for WRITE/WRITE_ZEROES (proto.md "Error values").
 *   Longer than the maximum block size: EINVAL (a WRITE's payload is still read and discarded).
 *   Unknown commands and flags: EINVAL. A WRITE's payload is always consumed, whatever the answer.
 * - FLUSH waits for every write received before it to finish, then calls backend.flush(): all
 *   writes acknowledged before the flush (and more) are durable when it is answered.
 * - FUA goes to the backend with the write; a FUA TRIM is followed by a flush.
 * - A bad request magic means the stream is lost: the connection is dropped.
 * - Backpressure: reading stops while too many requests or bytes are in flight, or while the
 *   socket's write buffer is full; it resumes when they drain.
 * - DISC, a half-close or end(): stop reading, answer what is in flight, then close. A client
 *   vanishing mid-WRITE ends only this connection; the partial write is never applied.
 */
import type { Socket } from 'node:net';
import { nbdErrnoOf, type BlockBackend } from './backend.js';
import type { ByteQueue } from './bytes.js';
import { CMD, CMD_FLAG, NBD_ERR, REQUEST_SIZE, SIMPLE_REPLY_SIZE, decodeRequest, encodeSimpleReply, type Request } from './protocol.js';

export interface TransmissionOptions {
  /** Longest READ/WRITE/WRITE_ZEROES accepted (the advertised maximum block size). */
  maxBlock: number;
  /** Reading pauses at this many requests in flight… */
  maxInFlight: number;
  /** …or this many payload bytes (WRITE data received, READ data requested) in flight… */
  maxInFlightBytes: number;
  /** …or while more than this many reply bytes wait in the socket's buffer. */
  maxPendingOutput: number;
  onProtocolError?: (message: string) => void;
}

const ALLOWED_FLAGS: Record<number, number> = {
  [CMD.READ]: CMD_FLAG.FUA,
  [CMD.WRITE]: CMD_FLAG.FUA,
  [CMD.FLUSH]: CMD_FLAG.FUA,
  [CMD.TRIM]: CMD_FLAG.FUA,
  [CMD.WRITE_ZEROES]: CMD_FLAG.FUA | CMD_FLAG.NO_HOLE,
  [CMD.DISC]: CMD_FLAG.FUA,
};

/** Replies queued in one turn and totalling at most this are copied into one buffer. */
const COALESCE_BYTES = 64 * 1024;

export class Transmission {
  private readonly size: number;
  private pendingWrite: Request | null = null; // header of a WRITE whose payload is still arriving
  private discard = 0; // payload bytes still to skip
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly writes = new Set<Promise<void>>();
  private draining = false; // stop reading: DISC, end of input, or close() asked
  private inputEnded = false; // the peer half-closed: finish what is queued, then close
  private waitingDrain = false;
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private finished = false;
  private ending = false;
  private resolveDone!: () => void;
  /** Resolves once the connection is closed, whatever the reason. */
  readonly done: Promise<void> = new Promise((r) => (this.resolveDone = r));

  constructor(
    private readonly socket: Socket,
    private readonly queue: ByteQueue,
    private readonly backend: BlockBackend,
    private readonly opts: TransmissionOptions,
  ) {
    this.size = backend.size;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', () => socket.destroy());
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    if (socket.destroyed) this.onClose();
    else {
      if (socket.readableEnded) this.inputEnded = true; // half-closed during the handshake
      socket.resume(); // the handshake reader may have paused it; pump() pauses again if need be
      this.pump();
    }
  }

  /** Stops taking requests, answers those in flight, then closes. Resolves once closed. */
  close(): Promise<void> {
    this.draining = true;
    this.socket.pause();
    this.maybeFinish();
    return this.done;
  }

  /** Drops the connection at once; replies still pending are lost. */
  destroy(): void {
    this.socket.destroy();
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  // ------------------------------------------------------------------------------------- input
  private readonly onData = (chunk: Buffer) => {
    this.queue.push(chunk);
    this.pump();
  };

  private readonly onEnd = () => {
    // Half-close: nothing more will come. Requests already queued are served; a WRITE whose
    // payload was cut short is never applied.
    this.inputEnded = true;
    this.pump();
  };

  private readonly onClose = () => {
    if (this.finished) return;
    this.finished = true;
    this.draining = true;
    this.resolveDone();
  };

  private readonly onDrain = () => {
    this.waitingDrain = false;
    this.pump();
  };

  private blocked(): boolean {
    return (
      this.draining ||
      this.waitingDrain ||
      this.inFlight >= this.opts.maxInFlight ||
      this.inFlightBytes >= this.opts.maxInFlightBytes
    );
  }

  /** Parses and starts every complete request queued, as far as backpressure allows. */
  private pump(): void {
    const q = this.queue;
    while (!this.draining) {
      if (this.discard > 0) {
        const k = Math.min(this.discard, q.length);
        q.skip(k);
        this.discard -= k;
        if (this.discard > 0) break;
        continue;
      }
      if (this.pendingWrite) {
        if (q.length < this.pendingWrite.length) break;
        const req = this.pendingWrite;
        this.pendingWrite = null;
        this.startWrite(req, q.take(req.length));
        continue;
      }
      if (this.blocked()) break;
      if (q.length < REQUEST_SIZE) break;
      const req = decodeRequest(q.take(REQUEST_SIZE));
      if (!req) {
        this.protocolError('bad request magic');
        return;
      }
      this.dispatch(req);
    }
    if (this.draining) return;
    const blocked = this.blocked();
    if (this.inputEnded) {
      // Not blocked means no complete request is left: nothing more will ever be parsed.
      if (!blocked) {
        this.draining = true;
        this.maybeFinish();
      }
    } else if (blocked) {
      if (!this.socket.isPaused()) this.socket.pause();
    } else if (this.socket.isPaused()) {
      this.socket.resume();
    }
  }

  private protocolError(message: string): void {
    this.opts.onProtocolError?.(message);
    this.draining = true;
    this.socket.destroy();
  }

  // ---------------------------------------------------------------------------------- dispatch
  private dispatch(req: Request): void {
    const { type, flags, offset, length } = req;
    const allowed = ALLOWED_FLAGS[type];
    const badFlags = allowed === undefined || (flags & ~allowed) !== 0;
    const fua = (flags & CMD_FLAG.FUA) !== 0;
    const pastEnd = offset > this.size || length > this.size - offset;

    switch (type) {
      case CMD.READ:
        if (badFlags || length > this.opts.maxBlock || pastEnd) return this.fail(req, NBD_ERR.EINVAL);
        if (length === 0) return this.reply(req.handle, 0);
        if (this.backend.readInto) {
          // The reply in one buffer: header, then the data read straight into it.
          const whole = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE + length);
          void this.run(req, length, async () => {
            await this.backend.readInto!(offset, whole.subarray(SIMPLE_REPLY_SIZE));
            return encodeSimpleReply(0, req.handle, whole);
          }, 'whole');
        } else {
          void this.run(req, length, () => this.backend.read(offset, length), 'data');
        }
        return;
      case CMD.WRITE:
        if (length > this.opts.maxBlock) {
          this.discard = length;
          return this.fail(req, NBD_ERR.EINVAL);
        }
        this.pendingWrite = req;
        return;
      case CMD.FLUSH:
        if (badFlags) return this.fail(req, NBD_ERR.EINVAL);
        void this.run(req, 0, () => this.flush(), 'none');
        return;
      case CMD.TRIM:
        if (badFlags || pastEnd) return this.fail(req, NBD_ERR.EINVAL);
        if (this.backend.readOnly) return this.fail(req, NBD_ERR.EPERM);
        return this.runWrite(req, async () => {
          if (length > 0) await this.backend.trim(offset, length);
          if (fua) await this.backend.flush();
        });
      case CMD.WRITE_ZEROES:
        if (badFlags || length > this.opts.maxBlock) return this.fail(req, NBD_ERR.EINVAL);
        if (this.backend.readOnly) return this.fail(req, NBD_ERR.EPERM);
        if (pastEnd) return this.fail(req, NBD_ERR.ENOSPC);
        if (length === 0) return this.reply(req.handle, 0);
        return this.runWrite(req, () => this.backend.writeZeroes(offset, length, fua));
      case CMD.DISC:
        this.draining = true;
        this.maybeFinish();
        return;
      default: // CACHE, BLOCK_STATUS (never advertised or negotiated) and unknown commands
        return this.fail(req, NBD_ERR.EINVAL);
    }
  }

  /** The payload of a WRITE has arrived in full. */
  private startWrite(req: Request, data: Buffer): void {
    const { flags, offset, length } = req;
    if ((flags & ~CMD_FLAG.FUA) !== 0) return this.fail(req, NBD_ERR.EINVAL);
    if (this.backend.readOnly) return this.fail(req, NBD_ERR.EPERM);
    if (offset > this.size || length > this.size - offset) return this.fail(req, NBD_ERR.ENOSPC);
    if (length === 0) return this.reply(req.handle, 0);
    this.runWrite(req, () => this.backend.write(offset, data, (flags & CMD_FLAG.FUA) !== 0), length);
  }

  private async flush(): Promise<void> {
    if (this.writes.size > 0) await Promise.all(this.writes);
    await this.backend.flush();
  }

  /** A write-like request: tracked so that a later FLUSH waits for it. */
  private runWrite(req: Request, op: () => Promise<void>, bytes = 0): void {
    const p = this.run(req, bytes, op, 'none');
    this.writes.add(p);
    void p.then(() => this.writes.delete(p));
  }

  /**
   * Runs one request; the returned promise settles (never rejects) once its reply is queued.
   * `op` resolves with nothing ('none'), the READ data ('data'), or the whole reply ('whole').
   */
  private run(req: Request, bytes: number, op: () => Promise<Buffer | void>, result: 'none' | 'data' | 'whole'): Promise<void> {
    this.inFlight++;
    this.inFlightBytes += bytes;
    const handle = req.handle;
    let p: Promise<Buffer | void>;
    try {
      p = op();
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.then(
      (out) => {
        if (result === 'none') this.reply(handle, 0);
        else if (!out || out.length !== req.length + (result === 'whole' ? SIMPLE_REPLY_SIZE : 0)) this.reply(handle, NBD_ERR.EIO);
        else if (result === 'whole') this.send(out);
        else this.reply(handle, 0, out);
      },
      (err) => this.reply(handle, nbdErrnoOf(err)),
    ).then(() => {
      this.inFlight--;
      this.inFlightBytes -= bytes;
      if (this.draining) this.maybeFinish();
      else if (!this.blocked()) this.pump();
    });
  }

  private fail(req: Request, errno: number): void {
    this.reply(req.handle, errno);
  }

  // ------------------------------------------------------------------------------------ output
  /** A simple reply: the header, then the READ payload if any (only with no error). */
  private reply(handle: bigint, errno: number, data?: Buffer): void {
    this.send(encodeSimpleReply(errno, handle));
    if (data && data.length > 0 && errno === 0) this.send(data);
  }

  /**
   * Queues whole replies. What is queued in one event-loop turn leaves together at the end of the
   * turn (one write, or one writev when large), sparing the client as many wake-ups.
   */
  private send(b: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.out.push(b);
    this.outBytes += b.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushOut);
    }
  }

  private readonly flushOut = () => {
    this.flushScheduled = false;
    const out = this.out;
    const n = this.outBytes;
    if (out.length === 0) return;
    this.out = [];
    this.outBytes = 0;
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    if (out.length === 1) s.write(out[0]);
    else if (n <= COALESCE_BYTES) s.write(Buffer.concat(out, n));
    else {
      s.cork();
      for (const b of out) s.write(b);
      s.uncork();
    }
    // Stop reading while the peer does not keep up; 'drain' (armed by write() returning false
    // past the high-water mark) resumes.
    if (s.writableLength > this.opts.maxPendingOutput) this.waitingDrain = true;
  };

  /** Closes once reading has stopped and nothing is in flight. */
  private maybeFinish(): void {
    if (!this.draining || this.inFlight > 0 || this.finished || this.ending) return;
    this.ending = true;
    this.flushOut();
    const s = this.socket;
    s.pause();
    if (s.destroyed) return;
    // Once the last reply is flushed, close both directions: a peer that keeps its side open
    // must not keep the connection (and close()) waiting.
    s.end(() => s.destroy());
  }
}
