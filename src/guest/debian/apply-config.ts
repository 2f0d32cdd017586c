/**
 * Applies guest-config.ts to a debootstrapped tree from the host side. Paths are joined under the
 * tree and never followed out of it: a file that is a symlink (resolv.conf may be) is replaced.
 */
import { chmod, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FILES, PRUNE, SYMLINKS } from './guest-config.js';

/** PRUNE entries: `dir/` empties dir, a `*` in the last component matches names in its directory. */
async function prune(root: string, pattern: string): Promise<void> {
  if (pattern.endsWith('/')) {
    const dir = join(root, pattern);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) await rm(join(dir, n), { recursive: true, force: true });
    return;
  }
  const dir = join(root, dirname(pattern));
  const last = pattern.slice(pattern.lastIndexOf('/') + 1);
  const re = new RegExp(`^${last.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  for (const n of await readdir(dir).catch(() => [] as string[])) if (re.test(n)) await rm(join(dir, n), { recursive: true, force: true });
}

export async function applyConfig(root: string): Promise<void> {
  for (const p of PRUNE) await prune(root, p);
  for (const [path, content] of Object.entries(FILES)) {
    const p = join(root, path);
    await mkdir(dirname(p), { recursive: true });
    await rm(p, { force: true });
    await writeFile(p, content);
    await chmod(p, 0o644);
  }
  for (const [path, target] of Object.entries(SYMLINKS)) {
    await rm(join(root, path), { force: true });
    await symlink(target, join(root, path));
  }
}
