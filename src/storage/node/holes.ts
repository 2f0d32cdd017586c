/**
 * Deallocating a byte range inside a file. Node has no fallocate(2), so a punch goes through
 * util-linux's `fallocate --punch-hole --keep-size` (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE) on the path —
 * a process spawn, ≈2 ms, acceptable for TRIM, which is rare and never on the data path. Where the
 * command or the filesystem cannot punch, the range is overwritten with zeros instead: reads still
 * see zeros, the space stays allocated. Whole-object and tail trims never need this (unlink,
 * ftruncate); see ObjectStore.trim.
 */
import { execFile } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';

export function punchHole(path: string, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('fallocate', ['--punch-hole', '--keep-size', '--offset', String(offset), '--length', String(length), path],
      { timeout: 30_000 }, (err, _stdout, stderr) => {
        if (err) reject(Object.assign(new Error(`fallocate --punch-hole failed: ${String(stderr).trim() || err.message}`), { code: 'EOPNOTSUPP' }));
        else resolve();
      });
  });
}

/** True when punching works in `dir` (the command exists and the filesystem supports it). */
export async function canPunchHoles(dir: string): Promise<boolean> {
  const probe = join(dir, `.punch-probe-${process.pid}`);
  try {
    const fh = await open(probe, 'w');
    try { await fh.write(Buffer.alloc(8192, 1), 0, 8192, 0); } finally { await fh.close(); }
    await punchHole(probe, 0, 4096);
    return true;
  } catch {
    return false;
  } finally {
    await rm(probe, { force: true });
  }
}
