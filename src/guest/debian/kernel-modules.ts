/**
 * The Debian image boots the tiny image's kernel, which has no package inside the image; without
 * /lib/modules/<version> udev and modprobe could load nothing beyond what the initramfs loaded.
 * A chosen closure is copied from the cached kernel tree (not all ~390 MiB) and indexed with depmod.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { obtainFromApt, type PackageRef } from '../debs.js';
import { run } from '../exec.js';
import { depmodTree, findKernel, readModuleIndex, resolveLoadOrder } from '../modules.js';
import { EXTRA_MODULES } from './packages.js';

/** The unpacked kernel package build-tiny already cached (found by its marker, no download). */
export async function kernelTree(cacheDir: string, kernelPackage: PackageRef): Promise<string> {
  return (await obtainFromApt(cacheDir, kernelPackage, depmodTree)).root;
}

/** Copies EXTRA_MODULES and their dependencies into root's /usr/lib/modules; returns their names. */
export async function installModules(root: string, kernelRoot: string, kernelVersion: string): Promise<string[]> {
  const k = findKernel(kernelRoot);
  if (k.kernelVersion !== kernelVersion) throw new Error(`kernel tree ${kernelRoot} is ${k.kernelVersion}, not ${kernelVersion}`);
  const index = await readModuleIndex(k.modulesDir);
  const plan = resolveLoadOrder(index, EXTRA_MODULES);
  const dest = join(root, 'usr/lib/modules', kernelVersion);
  for (const name of plan.order) {
    const rel = index.path.get(name)!;
    await mkdir(dirname(join(dest, rel)), { recursive: true });
    await copyFile(join(k.modulesDir, rel), join(dest, rel));
  }
  // depmod needs these to know what is built in and the order; it writes the rest.
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
    if (existsSync(join(k.modulesDir, f))) await copyFile(join(k.modulesDir, f), join(dest, f));
  }
  await run('depmod', ['-b', root, kernelVersion]);
  return plan.order;
}
