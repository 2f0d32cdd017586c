/**
 * The uncompressed kernel (vmlinux) next to Debian's bzImage. QEMU boots an ELF vmlinux with a
 * PVH note (CONFIG_PVH=y in Debian's kernel) directly, skipping the in-guest xz decompression,
 * which under TCG costs more than the rest of the boot: measured 8.7 s to the boot marker with
 * vmlinux vs 25 s with vmlinuz on the same loaded host. Extracted once per kernel into the cache.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

function pipeThrough(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
    p.stdin.on('error', () => undefined); // the decompressor may stop reading at the stream end
    p.stdin.end(input);
  });
}

/** The compressed payload of an x86 bzImage (boot protocol ≥ 2.08), by its header fields. */
export function bzImagePayload(bz: Buffer): Buffer {
  if (bz.length < 0x250 || bz.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new Error('not an x86 bzImage');
  if (bz.readUInt16LE(0x206) < 0x208) throw new Error('bzImage boot protocol older than 2.08');
  const setupSects = bz[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + bz.readUInt32LE(0x248);
  return bz.subarray(start, start + bz.readUInt32LE(0x24c));
}

/** Decompresses a bzImage payload (xz, gzip or zstd; Debian uses xz) into the vmlinux ELF. */
export async function extractVmlinux(bz: Buffer): Promise<Buffer> {
  const payload = bzImagePayload(bz);
  const magic = payload.subarray(0, 6);
  let elf: Buffer;
  // The kernel build appends the uncompressed size after the stream: decode one stream only.
  if (magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) elf = await pipeThrough('xz', ['-dc', '--single-stream'], payload);
  else if (magic[0] === 0x1f && magic[1] === 0x8b) elf = gunzipSync(payload.subarray(0, payload.length - 4));
  else if (magic.readUInt32LE(0) === 0xfd2fb528) elf = await pipeThrough('zstd', ['-dcq'], payload.subarray(0, payload.length - 4));
  else throw new Error(`unsupported bzImage compression (magic ${magic.toString('hex')})`);
  if (elf.toString('latin1', 0, 4) !== '\x7fELF') throw new Error('decompressed kernel is not an ELF file');
  return elf;
}

/** boot/vmlinux-<version> in an unpacked kernel tree, extracted on first use. */
export async function ensureVmlinux(root: string, kernelVersion: string): Promise<string> {
  const path = join(root, 'boot', `vmlinux-${kernelVersion}`);
  if (existsSync(path)) return path;
  const elf = await extractVmlinux(await readFile(join(root, 'boot', `vmlinuz-${kernelVersion}`)));
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, elf);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  return path;
}
