/**
 * `kumo image build-tiny`: a small Linux guest from Debian packages only — the linux-image-amd64
 * kernel with the modules it needs to reach its disk, and busybox-static. Produces, in outDir:
 *   tiny-linux.raw   sparse raw disk, one ext4 filesystem (no partition table): busybox, init scripts
 *   vmlinuz          the kernel, for direct kernel boot (-kernel)
 *   vmlinux          the same kernel uncompressed (ELF, PVH entry): boots ~3x faster under TCG
 *   initrd.img       gzip'd newc initramfs: busybox + modules, mounts /dev/vda, switch_root
 *   tiny-linux.json  manifest: kernel version, package versions and sources, sizes, sha256s
 * Boot with `-kernel vmlinuz -initrd initrd.img -append "console=ttyS0 quiet"`, the disk as the
 * first virtio-blk device and `-smbios type=1,serial=<vm id>`; see scripts.ts for the guest side.
 * `-kernel vmlinux` works the same and skips the kernel's self-decompression (see kernel.ts).
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBusybox } from './busybox.js';
import {
  obtainFromApt,
  obtainInstalled,
  resolveFromApt,
  resolveInstalled,
  sweepStale,
  type PackageRef,
  type UnpackedPackage,
} from './debs.js';
import { cachedSha256, sha256File } from './hash.js';
import { buildInitramfs } from './initramfs.js';
import { ensureVmlinux } from './kernel.js';
import { depmodTree, findKernel, readModule, readModuleIndex, resolveLoadOrder } from './modules.js';
import { buildRootfs } from './rootfs.js';

export const KERNEL_META_PACKAGE = 'linux-image-amd64';
export const BUSYBOX_PACKAGE = 'busybox-static';
/**
 * Modules the initramfs loads (their dependencies and softdeps are added): the virtio-pci disk and
 * ext4 for root, virtio_net and packet sockets (built in on Debian; udhcpc needs them) for the
 * guest agent's NIC (agent.ts) and NIC tests, and button +
 * evdev so the ACPI power button reaches acpid. No virtio_console: the console is ttyS0.
 */
export const GUEST_MODULES = ['virtio_pci', 'virtio_blk', 'ext4', 'virtio_net', 'af_packet', 'button', 'evdev'];
export const DEFAULT_SIZE_MIB = 64;
export const DEFAULT_CMDLINE = 'console=ttyS0 quiet';

export const DISK_FILE = 'tiny-linux.raw';
export const KERNEL_FILE = 'vmlinuz';
export const VMLINUX_FILE = 'vmlinux';
export const INITRD_FILE = 'initrd.img';
export const MANIFEST_FILE = 'tiny-linux.json';

export interface BuildTinyOptions {
  /** downloaded .debs and unpacked trees, reused between builds */
  cacheDir: string;
  outDir: string;
  /** disk size, default 64 MiB (sparse: about 5 MiB is allocated) */
  sizeMiB?: number;
  log?: (line: string) => void;
}

export interface ManifestFile {
  file: string;
  size: number;
  /** bytes actually allocated (the disk is sparse) */
  allocated: number;
  sha256: string;
}

export interface ManifestPackage extends PackageRef {
  source: UnpackedPackage['source'];
  origin: UnpackedPackage['origin'];
  debSha256?: string;
}

export interface TinyManifest {
  name: 'tiny-linux';
  format: 1;
  builtAt: string;
  kernelVersion: string;
  cmdline: string;
  sizeMiB: number;
  /** which way the packages were obtained: apt lists/download or the host's installed packages */
  inputs: 'apt' | 'installed';
  packages: ManifestPackage[];
  modules: string[];
  builtinModules: string[];
  files: { disk: ManifestFile; kernel: ManifestFile; vmlinux: ManifestFile; initrd: ManifestFile };
}

export interface BuildTinyResult {
  disk: string;
  /** Debian's compressed kernel (bzImage) */
  kernel: string;
  /** the same kernel uncompressed, for PVH direct boot: prefer it under TCG */
  vmlinux: string;
  initrd: string;
  manifest: string;
  kernelVersion: string;
  sizeMiB: number;
  packages: ManifestPackage[];
}

interface Inputs {
  kernel: UnpackedPackage;
  busybox: UnpackedPackage;
  via: 'apt' | 'installed';
  note: string;
}

/** Packages from apt (candidate versions; cached by version), else the installed ones. */
async function obtainInputs(cacheDir: string): Promise<Inputs> {
  let aptError: Error;
  try {
    const plan = await resolveFromApt(KERNEL_META_PACKAGE, [BUSYBOX_PACKAGE]);
    const kernel = await obtainFromApt(cacheDir, plan.kernel, depmodTree);
    const busybox = await obtainFromApt(cacheDir, plan.others[0]);
    return { kernel, busybox, via: 'apt', note: 'apt' };
  } catch (e) {
    aptError = e as Error;
  }
  try {
    const plan = await resolveInstalled(KERNEL_META_PACKAGE, [BUSYBOX_PACKAGE]);
    const kernel = await obtainInstalled(cacheDir, plan.kernel, depmodTree);
    const busybox = await obtainInstalled(cacheDir, plan.others[0]);
    return { kernel, busybox, via: 'installed', note: `installed packages via dpkg -L; apt failed: ${aptError.message}` };
  } catch (e) {
    throw new Error(`cannot obtain the guest packages. apt: ${aptError.message}; installed: ${(e as Error).message}`);
  }
}

/** Size and hash of an output; `copiedFrom` (a cache file with the same bytes) reuses its hash. */
async function describe(path: string, file: string, copiedFrom?: string): Promise<ManifestFile> {
  const st = await stat(path);
  const sha256 = copiedFrom ? await cachedSha256(copiedFrom) : await sha256File(path);
  return { file, size: st.size, allocated: st.blocks * 512, sha256 };
}

export async function buildTinyImage(opts: BuildTinyOptions): Promise<BuildTinyResult> {
  const log = opts.log ?? (() => undefined);
  const sizeMiB = opts.sizeMiB ?? DEFAULT_SIZE_MIB;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 16 || sizeMiB > 65536) throw new Error(`sizeMiB must be an integer in 16..65536, got ${sizeMiB}`);
  const started = Date.now();
  await mkdir(opts.cacheDir, { recursive: true });
  await mkdir(opts.outDir, { recursive: true });
  await sweepStale(opts.cacheDir);

  const inputs = await obtainInputs(opts.cacheDir);
  const packages: ManifestPackage[] = [inputs.kernel, inputs.busybox].map((p) => ({
    name: p.name,
    version: p.version,
    source: p.source,
    origin: p.origin,
    ...(p.debSha256 ? { debSha256: p.debSha256 } : {}),
  }));
  log(`guest inputs (${inputs.note}): ${packages.map((p) => `${p.name} ${p.version} (${p.source})`).join(', ')}`);

  const k = findKernel(inputs.kernel.root);
  const index = await readModuleIndex(k.modulesDir);
  const plan = resolveLoadOrder(index, GUEST_MODULES);
  const modules = await Promise.all(plan.order.map(async (name) => ({ name, data: await readModule(k.modulesDir, index.path.get(name)!) })));
  const busybox = await findBusybox(inputs.busybox.root);
  const vmlinux = await ensureVmlinux(inputs.kernel.root, k.kernelVersion);

  const tmp = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const out = (f: string) => join(opts.outDir, f);
  const staged = (f: string) => join(opts.outDir, `.${f}${tmp}`);
  try {
    await writeFile(staged(INITRD_FILE), await buildInitramfs(busybox, modules));
    await copyFile(k.vmlinuz, staged(KERNEL_FILE));
    await copyFile(vmlinux, staged(VMLINUX_FILE));
    await buildRootfs({
      busybox,
      out: staged(DISK_FILE),
      sizeMiB,
      workDir: join(opts.outDir, `.rootfs${tmp}`),
      release: { name: 'tiny-linux', kernelVersion: k.kernelVersion, packages: packages.map(({ name, version }) => ({ name, version })) },
    });
    // Publish by rename: a VM still running on an older image keeps its own inode.
    for (const f of [INITRD_FILE, KERNEL_FILE, VMLINUX_FILE, DISK_FILE]) await rename(staged(f), out(f));
  } finally {
    for (const f of [INITRD_FILE, KERNEL_FILE, VMLINUX_FILE, DISK_FILE]) await rm(staged(f), { force: true });
  }

  const manifest: TinyManifest = {
    name: 'tiny-linux',
    format: 1,
    builtAt: new Date().toISOString(),
    kernelVersion: k.kernelVersion,
    cmdline: DEFAULT_CMDLINE,
    sizeMiB,
    inputs: inputs.via,
    packages,
    modules: plan.order,
    builtinModules: plan.builtin,
    files: {
      disk: await describe(out(DISK_FILE), DISK_FILE),
      kernel: await describe(out(KERNEL_FILE), KERNEL_FILE, k.vmlinuz),
      vmlinux: await describe(out(VMLINUX_FILE), VMLINUX_FILE, vmlinux),
      initrd: await describe(out(INITRD_FILE), INITRD_FILE),
    },
  };
  await writeFile(staged(MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  await rename(staged(MANIFEST_FILE), out(MANIFEST_FILE));
  const mib = (n: number) => (n / 1048576).toFixed(1);
  log(
    `built tiny-linux (kernel ${k.kernelVersion}) in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
      `${DISK_FILE} ${sizeMiB} MiB (${mib(manifest.files.disk.allocated)} MiB allocated), ` +
      `${KERNEL_FILE} ${mib(manifest.files.kernel.size)} MiB, ${VMLINUX_FILE} ${mib(manifest.files.vmlinux.size)} MiB, ${INITRD_FILE} ${mib(manifest.files.initrd.size)} MiB`,
  );
  return {
    disk: out(DISK_FILE),
    kernel: out(KERNEL_FILE),
    vmlinux: out(VMLINUX_FILE),
    initrd: out(INITRD_FILE),
    manifest: out(MANIFEST_FILE),
    kernelVersion: k.kernelVersion,
    sizeMiB,
    packages,
  };
}
