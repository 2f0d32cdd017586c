/**
 * A writer for the "newc" cpio format the kernel unpacks as initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst).
 *
 * Written here rather than driving the `cpio` command: the archive must hold root-owned files and
 * a /dev/console device node, which `cpio -o` only records if they exist like that on disk (root
 * and mknod); here ownership, modes and times are chosen per entry, the result is byte-for-byte
 * reproducible, and the builder needs one host tool less. The format is a 110-byte ASCII header,
 * the NUL-terminated name, and the data, each padded to 4 bytes.
 */
import { posix } from 'node:path';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

interface Entry {
  name: string;
  mode: number;
  data: Buffer;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
}

function clean(path: string): string {
  const p = posix.normalize(path).replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '' || p === '.' || p.startsWith('..')) throw new Error(`bad archive path: ${path}`);
  return p;
}

export class CpioWriter {
  private readonly entries: Entry[] = [];
  private readonly seen = new Map<string, Entry>();

  /** @param mtime the time stamped on every entry (0 keeps archives reproducible) */
  constructor(private readonly mtime = 0) {}

  dir(path: string, mode = 0o755): this {
    const name = clean(path);
    const e = this.seen.get(name);
    if (e) {
      if ((e.mode & 0o170000) !== S_IFDIR) throw new Error(`${name} exists and is not a directory`);
      return this;
    }
    return this.add(name, S_IFDIR | mode, Buffer.alloc(0), 2);
  }

  file(path: string, data: Buffer | string, mode = 0o644): this {
    return this.add(clean(path), S_IFREG | mode, Buffer.isBuffer(data) ? data : Buffer.from(data), 1);
  }

  symlink(path: string, target: string): this {
    return this.add(clean(path), S_IFLNK | 0o777, Buffer.from(target), 1);
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): this {
    return this.add(clean(path), S_IFCHR | mode, Buffer.alloc(0), 1, major, minor);
  }

  has(path: string): boolean {
    return this.seen.has(clean(path));
  }

  private add(name: string, mode: number, data: Buffer, nlink: number, rdevMajor = 0, rdevMinor = 0): this {
    if (this.seen.has(name)) throw new Error(`duplicate archive entry: ${name}`);
    const parent = posix.dirname(name);
    if (parent !== '.') this.dir(parent); // parents first: the kernel does not create them
    const e: Entry = { name, mode, data, nlink, rdevMajor, rdevMinor };
    this.entries.push(e);
    this.seen.set(name, e);
    return this;
  }

  toBuffer(): Buffer {
    const parts: Buffer[] = [];
    let offset = 0;
    const push = (b: Buffer) => {
      parts.push(b);
      offset += b.length;
      const pad = (4 - (offset % 4)) % 4;
      if (pad) {
        parts.push(Buffer.alloc(pad));
        offset += pad;
      }
    };
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const record = (ino: number, e: Entry) => {
      const name = Buffer.from(`${e.name}\0`);
      const fields = [ino, e.mode, 0, 0, e.nlink, this.mtime, e.data.length, 0, 0, e.rdevMajor, e.rdevMinor, name.length, 0];
      push(Buffer.concat([Buffer.from('070701' + fields.map(hex).join(''), 'ascii'), name]));
      if (e.data.length) push(e.data);
    };
    this.entries.forEach((e, i) => record(i + 1, e));
    record(0, { name: 'TRAILER!!!', mode: 0, data: Buffer.alloc(0), nlink: 1, rdevMajor: 0, rdevMinor: 0 });
    return Buffer.concat(parts);
  }
}

export interface CpioMember {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  data: Buffer;
  rdevMajor: number;
  rdevMinor: number;
}

/** Reads a newc archive back (for tests and for inspecting a built initramfs). */
export function readCpio(buf: Buffer): CpioMember[] {
  const out: CpioMember[] = [];
  let off = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    const magic = buf.toString('ascii', off, off + 6);
    if (magic !== '070701') throw new Error(`bad cpio magic at ${off}: ${magic}`);
    const f = (i: number) => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const size = f(6);
    const nameSize = f(11);
    const name = buf.toString('utf8', off + 110, off + 110 + nameSize - 1);
    const dataStart = align(off + 110 + nameSize);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode: f(1), uid: f(2), gid: f(3), data: buf.subarray(dataStart, dataStart + size), rdevMajor: f(9), rdevMinor: f(10) });
    off = align(dataStart + size);
  }
}
