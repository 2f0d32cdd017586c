/** busybox-static from its unpacked package: the binary and the applet links it wants. */
import { existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import { run } from './exec.js';

export interface Busybox {
  /** path of the static binary on the build host */
  binary: string;
  /** applet install paths relative to /, e.g. `bin/sh`, `sbin/init`, `usr/bin/tail` */
  applets: string[];
}

export async function findBusybox(root: string): Promise<Busybox> {
  const binary = ['bin/busybox', 'usr/bin/busybox'].map((p) => join(root, p)).find((p) => existsSync(p));
  if (!binary) throw new Error(`no busybox binary in ${root}`);
  // The binary is static and amd64 like the host, so it can list its own applets.
  const { stdout } = await run(binary, ['--list-full']);
  const applets = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.includes('/') && !l.startsWith('/') && !l.includes('..') && l !== 'bin/busybox');
  if (!applets.includes('bin/sh') || !applets.includes('sbin/init')) throw new Error(`${binary} lacks sh or init applets`);
  return { binary, applets: applets.sort() };
}

/** A relative symlink target from an applet path to bin/busybox (valid before and after chroot). */
export function appletTarget(applet: string): string {
  return posix.relative(posix.dirname(applet), 'bin/busybox');
}
