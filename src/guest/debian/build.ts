/**
 * `kumo image build-debian`: Debian 12 with cloud-init, for testing kumo's metadata service with
 * the real thing. debootstrap into a directory, a few files changed (guest-config.ts), ext4 made
 * from the directory with `mke2fs -d` — no loop mounts, no partition table, no bootloader: it boots
 * the tiny image's kernel and initramfs directly (the initramfs mounts /dev/vda and execs its
 * /sbin/init, here systemd). Produces, in outDir:
 *   debian-12-cloud.raw   sparse raw disk (2 GiB), one ext4 filesystem
 *   vmlinuz, vmlinux, initrd.img   the tiny image's kernel and initramfs (see build-tiny.ts)
 *   debian-12-cloud.json  manifest: cache key, kernel version, packages, sizes
 * The finished disk is cached under <cache>/debian-12-cloud/<key>/, the key hashing everything
 * that goes into it, so a second build is a sparse copy; debootstrap's .debs are cached as well.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTinyImage, INITRD_FILE, KERNEL_FILE, VMLINUX_FILE, type BuildTinyResult } from '../build-tiny.js';
import { run } from '../exec.js';
import { MKE2FS_CONF } from '../rootfs.js';
import { debootstrap } from './debootstrap.js';
import { applyConfig } from './apply-config.js';
import { installModules, kernelTree } from './kernel-modules.js';
import { FILES, PRUNE, SYMLINKS } from './guest-config.js';
import { DEFAULT_MIRROR, EXTRA_MODULES, PACKAGES, SUITE, VARIANT } from './packages.js';

export const IMAGE_NAME = 'debian-12-cloud';
export const DISK_FILE = `${IMAGE_NAME}.raw`;
export const MANIFEST_FILE = `${IMAGE_NAME}.json`;
export const DEFAULT_SIZE_MIB = 2048;
/** No `quiet`: systemd's and cloud-init's progress on the serial console is the evidence a user reads. */
export const CMDLINE = 'console=ttyS0';
/** Bumped when the build steps change in a way the inputs below do not show. */
const FORMAT = 1;

export interface BuildDebianOptions {
  cacheDir: string;
  outDir: string;
  sizeMiB?: number;
  /** default KUMO_DEBIAN_MIRROR, else deb.debian.org */
  mirror?: string;
  log?: (line: string) => void;
}

export interface DebianManifest {
  name: typeof IMAGE_NAME;
  format: number;
  key: string;
  builtAt: string;
  suite: string;
  variant: string;
  include: string[];
  kernelVersion: string;
  cmdline: string;
  sizeMiB: number;
  /** bytes the sparse disk really occupies */
  allocated: number;
  /** dpkg -l of the image: name → version */
  packages: Record<string, string>;
}

/** The tiny image's kernel files with this disk. */
export interface BuildDebianResult extends Pick<BuildTinyResult, 'disk' | 'kernel' | 'vmlinux' | 'initrd' | 'manifest' | 'kernelVersion' | 'sizeMiB'> {
  cmdline: string;
  /** the disk came from the cache (no debootstrap this time) */
  cached: boolean;
  seconds: number;
}

const secs = (t0: number) => ((Date.now() - t0) / 1000).toFixed(1);

/** Installed packages, read from the tree's dpkg status (no chroot). */
async function installedPackages(root: string): Promise<Record<string, string>> {
  const status = await readFile(join(root, 'var/lib/dpkg/status'), 'utf8');
  const out: Record<string, string> = {};
  for (const stanza of status.split('\n\n')) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    const version = /^Version: (.+)$/m.exec(stanza)?.[1];
    if (name && version && /^Status: install ok installed$/m.test(stanza)) out[name] = version;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** debootstrap → configure → ext4 image, in a scratch dir under `entry`'s parent; returns the manifest. */
async function buildDisk(a: { entry: string; key: string; kernelRoot: string; kernelVersion: string; sizeMiB: number; mirror: string; debCache: string; log: (l: string) => void }): Promise<void> {
  const work = `${a.entry}.build-${process.pid}-${randomBytes(4).toString('hex')}`;
  const root = join(work, 'root');
  await mkdir(work, { recursive: true });
  try {
    let t = Date.now();
    await debootstrap({ suite: SUITE, mirror: a.mirror, variant: VARIANT, include: PACKAGES, target: root, debCache: a.debCache, log: a.log });
    a.log(`debootstrap done in ${secs(t)} s`);
    t = Date.now();
    const modules = await installModules(root, a.kernelRoot, a.kernelVersion);
    a.log(`kernel modules: ${modules.length} copied into /usr/lib/modules/${a.kernelVersion}`);
    const packages = await installedPackages(root);
    await applyConfig(root);
    const disk = join(work, DISK_FILE);
    const conf = join(work, 'mke2fs.conf');
    await writeFile(conf, MKE2FS_CONF);
    await writeFile(disk, '');
    await truncate(disk, a.sizeMiB * 1024 * 1024);
    await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'debian-root', '-E', 'root_owner=0:0', '-d', root, disk], {
      env: { ...process.env, MKE2FS_CONFIG: conf },
    });
    const allocated = (await stat(disk)).blocks * 512;
    a.log(`ext4 image made in ${secs(t)} s: ${a.sizeMiB} MiB, ${(allocated / 1048576).toFixed(0)} MiB allocated, ${Object.keys(packages).length} packages`);
    const manifest: DebianManifest = {
      name: IMAGE_NAME, format: FORMAT, key: a.key, builtAt: new Date().toISOString(), suite: SUITE, variant: VARIANT, include: PACKAGES,
      kernelVersion: a.kernelVersion, cmdline: CMDLINE, sizeMiB: a.sizeMiB, allocated, packages,
    };
    await writeFile(join(work, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    await rm(root, { recursive: true, force: true });
    await rm(a.entry, { recursive: true, force: true });
    await rename(work, a.entry);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Other keys' cache entries: each is a whole disk, so only the current one is kept. */
async function sweepOldEntries(dir: string, keep: string, log: (l: string) => void): Promise<void> {
  for (const e of await readdir(dir)) {
    if (e === keep || e.includes('.build-')) continue;
    log(`removing the outdated cached image ${join(dir, e)}`);
    await rm(join(dir, e), { recursive: true, force: true });
  }
}

export async function buildDebianImage(opts: BuildDebianOptions): Promise<BuildDebianResult> {
  const log = opts.log ?? (() => undefined);
  const sizeMiB = opts.sizeMiB ?? DEFAULT_SIZE_MIB;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1024 || sizeMiB > 65536) throw new Error(`sizeMiB must be an integer in 1024..65536, got ${sizeMiB}`);
  const mirror = opts.mirror ?? process.env.KUMO_DEBIAN_MIRROR ?? DEFAULT_MIRROR;
  const started = Date.now();
  await mkdir(opts.outDir, { recursive: true });

  // The kernel and initramfs are the tiny image's: build it (warm: seconds) into a scratch dir.
  const tinyOut = join(opts.outDir, `.tiny-${process.pid}-${randomBytes(4).toString('hex')}`);
  const out = (f: string) => join(opts.outDir, f);
  try {
    const tiny = await buildTinyImage({ cacheDir: opts.cacheDir, outDir: tinyOut, log: (l) => log(`tiny kernel: ${l}`) });
    const kernelRoot = await kernelTree(opts.cacheDir, tiny.packages[0]);
    const key = createHash('sha256')
      .update(JSON.stringify({ FORMAT, SUITE, VARIANT, PACKAGES, EXTRA_MODULES, FILES, SYMLINKS, PRUNE, MKE2FS_CONF, kernel: tiny.kernelVersion, sizeMiB }))
      .digest('hex').slice(0, 16);
    const cacheRoot = join(opts.cacheDir, IMAGE_NAME);
    const entry = join(cacheRoot, key);
    await mkdir(cacheRoot, { recursive: true });
    const cached = existsSync(join(entry, MANIFEST_FILE));
    if (cached) {
      log(`using the cached image ${entry} (key ${key}; delete it to rebuild)`);
    } else {
      log(`no cached image for key ${key}: building Debian ${SUITE} (${VARIANT} + ${PACKAGES.join(', ')}) from ${mirror}`);
      await buildDisk({ entry, key, kernelRoot, kernelVersion: tiny.kernelVersion, sizeMiB, mirror, debCache: join(opts.cacheDir, 'debian-debs'), log });
      await sweepOldEntries(cacheRoot, key, log);
    }
    // Sparse copies, published by rename: a VM still running on an older disk keeps its inode.
    const tmp = `.tmp-${process.pid}`;
    await run('cp', ['--sparse=always', join(entry, DISK_FILE), out(DISK_FILE + tmp)]);
    await rename(out(DISK_FILE + tmp), out(DISK_FILE));
    await copyFile(join(entry, MANIFEST_FILE), out(MANIFEST_FILE));
    for (const f of [KERNEL_FILE, VMLINUX_FILE, INITRD_FILE]) await rename(join(tinyOut, f), out(f));
    const manifest = JSON.parse(await readFile(out(MANIFEST_FILE), 'utf8')) as DebianManifest;
    const seconds = (Date.now() - started) / 1000;
    log(`${cached ? 'reused the cached' : 'built the'} ${IMAGE_NAME} image in ${seconds.toFixed(1)} s: ${DISK_FILE} ${sizeMiB} MiB `
      + `(${(manifest.allocated / 1048576).toFixed(0)} MiB allocated), kernel ${tiny.kernelVersion}, cloud-init ${manifest.packages['cloud-init'] ?? '?'}`);
    return {
      disk: out(DISK_FILE), kernel: out(KERNEL_FILE), vmlinux: out(VMLINUX_FILE), initrd: out(INITRD_FILE), manifest: out(MANIFEST_FILE),
      kernelVersion: tiny.kernelVersion, cmdline: CMDLINE, sizeMiB, cached, seconds,
    };
  } finally {
    await rm(tinyOut, { recursive: true, force: true });
  }
}

/**
 * What a controller passes to ImageService.register to offer this image (direct kernel boot):
 * the same shape as the tiny image's registration in server-cmd.ts.
 */
export function registration(b: BuildDebianResult) {
  return {
    name: IMAGE_NAME, os: 'linux', kind: 'debian',
    source: `kumo image build-debian: Debian ${SUITE} ${VARIANT} + cloud-init; kernel ${b.kernelVersion}`,
    disk: b.disk, files: [{ name: 'vmlinux', path: b.vmlinux }, { name: 'initrd.img', path: b.initrd }],
    boot: { kernel: 'vmlinux', initrd: 'initrd.img', append: b.cmdline },
  };
}
