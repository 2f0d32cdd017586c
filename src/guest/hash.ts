import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';

/** sha256 of a file, streamed (disk images are tens of MiB). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/**
 * sha256 of a file in the cache, remembered in a `<file>.sha256` sidecar (valid while size and
 * mtime match): the kernels are large and hashing them on every warm build is most of its time.
 */
export async function cachedSha256(path: string): Promise<string> {
  const st = await stat(path);
  const stamp = `${st.size} ${Math.trunc(st.mtimeMs)}`;
  const sidecar = `${path}.sha256`;
  const known = await readFile(sidecar, 'utf8').catch(() => '');
  const m = /^(\d+ \d+) ([0-9a-f]{64})\n?$/.exec(known);
  if (m && m[1] === stamp) return m[2];
  const hash = await sha256File(path);
  await writeFile(sidecar, `${stamp} ${hash}\n`).catch(() => undefined); // a read-only cache just costs time
  return hash;
}
