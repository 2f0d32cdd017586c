/**
 * Kernel modules for the initramfs: which files, in which load order. Debian's kernel package does
 * not ship modules.dep (its postinst runs depmod), so the unpacked tree gets `depmod -b` once when
 * it enters the cache; the order is then resolved here from modules.dep, modules.softdep and
 * modules.alias. busybox insmod loads one file and knows nothing of dependencies, hence the order.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { run, runToBuffer } from './exec.js';

export interface ModuleIndex {
  /** module name → path relative to the modules dir */
  path: Map<string, string>;
  /** module name → names of the modules it needs (modules.dep, already transitive) */
  deps: Map<string, string[]>;
  /** module name → modules or aliases to load before it (modules.softdep `pre:`) */
  softPre: Map<string, string[]>;
  /** alias → module names (only the aliases named by softdeps are useful here) */
  alias: Map<string, string[]>;
  /** names of modules built into the kernel image */
  builtin: Set<string>;
}

/** `kernel/fs/ext4/ext4.ko.xz` → `ext4`; dashes and underscores are the same to the kernel. */
export function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export function parseModuleIndex(files: { dep: string; softdep?: string; alias?: string; builtin?: string }): ModuleIndex {
  const idx: ModuleIndex = { path: new Map(), deps: new Map(), softPre: new Map(), alias: new Map(), builtin: new Set() };
  for (const line of files.dep.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const file = line.slice(0, i).trim();
    const name = moduleName(file);
    idx.path.set(name, file);
    idx.deps.set(name, line.slice(i + 1).trim().split(/\s+/).filter(Boolean).map(moduleName));
  }
  for (const line of (files.softdep ?? '').split('\n')) {
    const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const pre = /pre:\s*([^:]*?)(?:\s+post:.*)?$/.exec(m[2]);
    if (pre) idx.softPre.set(m[1].replace(/-/g, '_'), pre[1].split(/\s+/).filter(Boolean));
  }
  for (const line of (files.alias ?? '').split('\n')) {
    const m = /^alias\s+(\S+)\s+(\S+)$/.exec(line.trim());
    if (!m) continue;
    const list = idx.alias.get(m[1]) ?? [];
    list.push(m[2].replace(/-/g, '_'));
    idx.alias.set(m[1], list);
  }
  for (const line of (files.builtin ?? '').split('\n')) if (line.trim()) idx.builtin.add(moduleName(line.trim()));
  return idx;
}

/**
 * A softdep names a module or an alias. Among several providers prefer the generic C
 * implementation: the CPU-specific ones (crc32c_intel needs SSE4.2) fail on TCG's default CPU.
 */
function provider(idx: ModuleIndex, want: string): string | null {
  const n = want.replace(/-/g, '_');
  if (idx.path.has(n) || idx.builtin.has(n)) return n;
  const cands = (idx.alias.get(want) ?? []).filter((c) => idx.path.has(c) || idx.builtin.has(c));
  return cands.find((c) => c.endsWith('_generic')) ?? cands[0] ?? null;
}

export interface LoadPlan {
  /** module names in insmod order (dependencies first) */
  order: string[];
  /** wanted modules the kernel has built in (nothing to load) */
  builtin: string[];
  /** softdeps that could not be satisfied (informational) */
  missingSoft: string[];
}

/** Load order for `wanted` and everything they need; throws for a module that does not exist. */
export function resolveLoadOrder(idx: ModuleIndex, wanted: string[]): LoadPlan {
  const plan: LoadPlan = { order: [], builtin: [], missingSoft: [] };
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    if (idx.builtin.has(name) && !idx.path.has(name)) {
      if (wanted.includes(name) && !plan.builtin.includes(name)) plan.builtin.push(name);
      return;
    }
    if (!idx.path.has(name)) throw new Error(`kernel module ${name} not found (needed by ${chain.join(' → ') || 'the guest'})`);
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') return; // softdep cycles exist in the wild; hard deps are acyclic
    state.set(name, 'visiting');
    for (const soft of idx.softPre.get(name) ?? []) {
      const p = provider(idx, soft);
      if (p) visit(p, [...chain, name]);
      else plan.missingSoft.push(`${name} → ${soft}`);
    }
    for (const dep of idx.deps.get(name) ?? []) visit(dep, [...chain, name]);
    state.set(name, 'done');
    plan.order.push(name);
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'), []);
  return plan;
}

/** The kernel version directory of an unpacked linux-image tree and where its modules live. */
export function findKernel(root: string): { kernelVersion: string; modulesDir: string; vmlinuz: string } {
  for (const base of ['lib/modules', 'usr/lib/modules']) {
    const dir = join(root, base);
    if (!existsSync(dir)) continue;
    const versions = readdirSync(dir).filter((v) => existsSync(join(root, 'boot', `vmlinuz-${v}`)));
    if (versions.length === 1) {
      const v = versions[0];
      return { kernelVersion: v, modulesDir: join(dir, v), vmlinuz: join(root, 'boot', `vmlinuz-${v}`) };
    }
    if (versions.length > 1) throw new Error(`several kernels in ${dir}: ${versions.join(', ')}`);
  }
  throw new Error(`no kernel (boot/vmlinuz-* with lib/modules/*) in ${root}`);
}

/** Cache hook for a fresh kernel tree: generate modules.dep & co with depmod. */
export async function depmodTree(root: string): Promise<void> {
  const { kernelVersion, modulesDir } = findKernel(root);
  // depmod -b looks under BASE/lib/modules; a merged-/usr package ships usr/lib/modules only.
  if (modulesDir.startsWith(join(root, 'usr')) && !existsSync(join(root, 'lib'))) await symlink('usr/lib', join(root, 'lib'));
  try {
    await run('depmod', ['-b', root, kernelVersion]);
  } catch (e) {
    throw new Error(`depmod (from kmod, which Debian kernels depend on) is needed to index guest modules: ${(e as Error).message}`);
  }
}

export async function readModuleIndex(modulesDir: string): Promise<ModuleIndex> {
  const opt = async (f: string) => (existsSync(join(modulesDir, f)) ? readFile(join(modulesDir, f), 'utf8') : '');
  const dep = await opt('modules.dep');
  if (!dep) throw new Error(`${modulesDir}/modules.dep is missing or empty (was depmod run?)`);
  return parseModuleIndex({ dep, softdep: await opt('modules.softdep'), alias: await opt('modules.alias'), builtin: await opt('modules.builtin') });
}

/** A module file's bytes, decompressed: busybox insmod cannot read .ko.xz/.ko.zst. */
export async function readModule(modulesDir: string, rel: string): Promise<Buffer> {
  const file = join(modulesDir, rel);
  if (rel.endsWith('.ko')) return readFile(file);
  if (rel.endsWith('.ko.gz')) return gunzipSync(await readFile(file));
  if (rel.endsWith('.ko.xz')) return runToBuffer('xz', ['-dc', file]);
  if (rel.endsWith('.ko.zst')) return runToBuffer('zstd', ['-dcq', file]);
  throw new Error(`unknown module file type: ${rel}`);
}
