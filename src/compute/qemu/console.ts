/**
 * The serial console of a running VM. QEMU serves the serial port on a unix socket to one client
 * at a time (a second one waits, unseen, until the first leaves), so the driver keeps exactly one
 * connection per running VM and fans its output out to any number of ConsoleStreams; their input
 * goes back through the same connection.
 *
 * The history is not kept here: QEMU's chardev writes every byte to console.log itself (also while
 * no agent runs). consoleTail reads the file's end, and the file is trimmed when it passes
 * TRIM_AT_BYTES so that at least KEEP_BYTES (1 MiB) of the latest output always stay.
 *
 * Trimming a file QEMU appends to (O_APPEND) is done with fallocate's collapse-range, which drops
 * whole blocks from the front atomically with respect to the appends (ext4, xfs). Where the
 * filesystem cannot, the fallback copies the tail and truncates ("copytruncate"): output QEMU
 * writes in the microseconds between the copy and the truncate can be lost or misordered.
 */
import { execFile } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ConsoleStream } from '../driver.js';

const run = promisify(execFile);

export const KEEP_BYTES = 1 << 20;
export const TRIM_AT_BYTES = 4 << 20;
/** Between size checks of console.log while output flows. */
const CHECK_EVERY_BYTES = 256 * 1024;

export interface ConsoleLog { debug(obj: object, msg: string): void; warn(obj: object, msg: string): void }

/** The last `bytes` bytes of a file; empty when it does not exist. */
export async function readTail(path: string, bytes: number): Promise<Buffer> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (!fh) return Buffer.alloc(0);
  try {
    const size = (await fh.stat()).size;
    const n = Math.max(0, Math.min(bytes, size));
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, size - n);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Shrinks `path` to its last `keep` bytes (at least) when it is larger than `trimAt`.
 * Returns how the file was trimmed, or null when it was small enough.
 */
export async function trimLog(path: string, keep = KEEP_BYTES, trimAt = TRIM_AT_BYTES): Promise<'collapse' | 'copy' | null> {
  const st = await stat(path).catch(() => null);
  if (!st || st.size <= trimAt) return null;
  const block = st.blksize > 0 ? st.blksize : 4096;
  const cut = Math.floor((st.size - keep) / block) * block;
  if (cut > 0) {
    try {
      await run('fallocate', ['--collapse-range', '--offset', '0', '--length', String(cut), path], { timeout: 10_000 });
      return 'collapse';
    } catch {
      // unsupported filesystem or no fallocate(1): copy instead
    }
  }
  const tail = await readTail(path, keep);
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(0);
  } finally {
    await fh.close();
  }
  const ah = await open(path, 'a');
  try {
    await ah.write(tail);
  } finally {
    await ah.close();
  }
  return 'copy';
}

/** The one connection to a VM's serial socket. */
export class VmConsole {
  private socket: Socket | null = null;
  private readonly listeners = new Set<(chunk: Buffer) => void>();
  private closed = false;
  private sinceCheck = 0;
  private trimming = false;

  constructor(
    readonly vmId: string,
    private readonly socketPath: string,
    private readonly logPath: string,
    private readonly log: ConsoleLog,
  ) {}

  /** Connects, retrying while QEMU sets the socket up; a connection lost later is re-made (a few tries). */
  async connect(attempts = 50, delayMs = 100): Promise<void> {
    for (let i = 1; !this.closed; i++) {
      try {
        this.socket = await this.connectOnce();
        void this.trim();
        return;
      } catch (e) {
        if (i >= attempts) throw new Error(`cannot connect to the serial console ${this.socketPath}: ${(e as Error).message}`);
        await sleep(delayMs);
      }
    }
  }

  private connectOnce(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = createConnection(this.socketPath);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        s.on('error', (e) => this.log.debug({ vmId: this.vmId, error: e.message }, 'serial console connection error'));
        s.on('data', (chunk: Buffer) => this.onData(chunk));
        s.on('close', () => {
          if (this.socket !== s) return;
          this.socket = null;
          // QEMU does not hang up on a live client; after an exit the driver close()s us first.
          if (!this.closed) void this.connect(10, 500).catch(() => undefined);
        });
        resolve(s);
      });
    });
  }

  private onData(chunk: Buffer): void {
    for (const l of [...this.listeners]) {
      try {
        l(chunk);
      } catch (e) {
        this.log.warn({ vmId: this.vmId, error: (e as Error).message }, 'console listener threw');
      }
    }
    this.sinceCheck += chunk.length;
    if (this.sinceCheck >= CHECK_EVERY_BYTES) void this.trim();
  }

  /** Trims console.log if it grew too large; errors are logged, never thrown. */
  async trim(): Promise<void> {
    if (this.trimming) return;
    this.trimming = true;
    this.sinceCheck = 0;
    try {
      const how = await trimLog(this.logPath);
      if (how) this.log.debug({ vmId: this.vmId, how }, 'console.log trimmed');
    } catch (e) {
      this.log.warn({ vmId: this.vmId, error: (e as Error).message }, 'cannot trim console.log');
    } finally {
      this.trimming = false;
    }
  }

  /** A view on the connection; closing it detaches only its own listeners. */
  stream(): ConsoleStream {
    const mine = new Set<(chunk: Buffer) => void>();
    return {
      onData: (listener) => {
        mine.add(listener);
        this.listeners.add(listener);
        return () => { mine.delete(listener); this.listeners.delete(listener); };
      },
      write: (data) => {
        if (!this.socket || this.socket.destroyed) throw new Error(`the serial console of ${this.vmId} is not connected`);
        this.socket.write(data);
      },
      close: () => {
        for (const l of mine) this.listeners.delete(l);
        mine.clear();
      },
    };
  }

  /** Hangs up (QEMU keeps logging and accepts the next client). */
  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.socket?.destroy();
    this.socket = null;
  }
}
