/** The initramfs: busybox, the root-disk modules in load order, and /init (see scripts.ts). */
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { appletTarget, type Busybox } from './busybox.js';
import { CpioWriter } from './cpio.js';
import { initramfsInit } from './scripts.js';

export interface InitramfsModule {
  /** module name (underscores), file becomes /lib/modules/<name>.ko */
  name: string;
  /** uncompressed .ko bytes */
  data: Buffer;
}

/** Builds the newc archive; modules are loaded in the order given. */
export async function buildInitramfsArchive(busybox: Busybox, modules: InitramfsModule[]): Promise<Buffer> {
  const cpio = new CpioWriter(0);
  for (const d of ['dev', 'proc', 'sys', 'newroot', 'run', 'tmp', 'etc', 'lib/modules']) cpio.dir(d);
  // The kernel opens /dev/console for /init before anything can mount devtmpfs.
  cpio.charDevice('dev/console', 5, 1, 0o600);
  cpio.file('bin/busybox', await readFile(busybox.binary), 0o755);
  for (const a of busybox.applets) if (a !== 'linuxrc') cpio.symlink(a, appletTarget(a));
  cpio.file('init', initramfsInit(), 0o755);
  for (const m of modules) cpio.file(`lib/modules/${m.name}.ko`, m.data, 0o644);
  cpio.file('etc/kumo-modules', modules.map((m) => `${m.name}\n`).join(''));
  return cpio.toBuffer();
}

/** gzip: every Debian kernel decompresses it (CONFIG_RD_GZIP) and node's zlib is deterministic. */
export async function buildInitramfs(busybox: Busybox, modules: InitramfsModule[]): Promise<Buffer> {
  // Level 6: level 9 saves 0.3 % of 1.8 MiB and takes 5x longer (most of a warm build).
  return gzipSync(await buildInitramfsArchive(busybox, modules), { level: 6 });
}
