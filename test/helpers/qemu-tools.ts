/**
 * QEMU's own clients (qemu-io, qemu-img) against NBD exports, for the storage tests: run
 * asynchronously because the server under test may live in the test's own process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open, truncate, writeFile } from 'node:fs/promises';

const MiB = 1024 * 1024;

export async function tool(cmd: string, args: string[], input?: string): Promise<string> {
  const child = execFile(cmd, args, { maxBuffer: 64 * MiB, timeout: 300_000 });
  const out = new Promise<string>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${cmd} ${args.join(' ').slice(0, 300)} exited ${code}: ${stderr}${stdout.slice(-2000)}`))));
  });
  child.stdin!.end(input ?? '');
  return out;
}

/** qemu-io with commands on stdin (so there can be thousands); any failed command fails the test. */
export async function qemuIo(uri: string, commands: string[]): Promise<string> {
  const out = await tool('qemu-io', ['-f', 'raw', uri], commands.join('\n') + '\nquit\n');
  // qemu-io reports a failed command on stdout and carries on.
  const bad = out.split('\n').filter((l) => /Pattern verification failed|error|failed/i.test(l));
  assert.deepEqual(bad, [], `qemu-io reported: ${bad.slice(0, 5).join(' | ')}`);
  return out;
}

import { prng } from '../../bench/lib/prng.js';

export { prng };

/**
 * 1,500 random qemu-io commands (writes of 1 B–40 KB and up to 2 MiB, FUA writes, write-zeroes,
 * flushes and, with `discardBlock`, discards of whole blocks — the contents of a partly discarded
 * range are not defined by NBD) on `uri`, mirrored into a reference raw file at `refPath`; then
 * `qemu-img compare` must find them identical. The seed is in the error message.
 */
export async function randomWorkload(uri: string, size: number, refPath: string, o: { discardBlock?: number } = {}): Promise<void> {
  await writeFile(refPath, '');
  await truncate(refPath, size);
  const ref = await open(refPath, 'r+');
  const seed = Date.now() % 100_000;
  const rnd = prng(seed);
  const cmds: string[] = [];
  for (let i = 0; i < 1500; i++) {
    const big = rnd() < 0.1;
    const len = 1 + Math.floor(rnd() * (big ? 2 * MiB : 40_000));
    const off = Math.floor(rnd() * (size - len));
    const r = rnd();
    if (r < 0.06) {
      cmds.push(`write -z ${off} ${len}`);
      await ref.write(Buffer.alloc(len), 0, len, off);
    } else if (r < 0.1 && o.discardBlock) {
      const first = Math.ceil(off / o.discardBlock) * o.discardBlock;
      const end = Math.floor((off + len) / o.discardBlock) * o.discardBlock;
      if (end > first) {
        cmds.push(`discard ${first} ${end - first}`);
        await ref.write(Buffer.alloc(end - first), 0, end - first, first);
      }
    } else {
      const p = Math.floor(rnd() * 256);
      cmds.push(`write ${r < 0.2 ? '-f ' : ''}-P 0x${p.toString(16)} ${off} ${len}`);
      await ref.write(Buffer.alloc(len, p), 0, len, off);
    }
    if (i % 200 === 199) cmds.push('flush');
  }
  await ref.close();
  await qemuIo(uri, cmds);
  const out = await tool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, refPath]).catch((err: Error) => {
    throw new Error(`seed ${seed}: ${err.message}`);
  });
  assert.match(out, /Images are identical/);
}
