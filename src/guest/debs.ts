/**
 * Guest inputs from Debian packages: resolve which packages to use, fetch them with
 * `apt-get download`, unpack them with `dpkg-deb -x` into a cache keyed by package version.
 * When apt cannot deliver, fall back to the host's installed copy of the same packages, but only
 * for files `dpkg -L` attributes to them.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from './exec.js';
import { sha256File } from './hash.js';

export interface PackageRef {
  name: string;
  version: string;
}

/** Where an unpacked tree came from this time: a fresh download, a cached .deb or tree, the host. */
export type PackageSource = 'apt-download' | 'cached-deb' | 'cached-tree' | 'installed';

export interface UnpackedPackage extends PackageRef {
  /** The unpacked file tree (paths inside it are the package's paths). */
  root: string;
  source: PackageSource;
  /** How the cached tree was made originally: from a .deb or from the installed files. */
  origin: 'deb' | 'installed';
  /** sha256 of the .deb when the tree came from one. */
  debSha256?: string;
}

/** Called on a fresh tree before it is published to the cache (e.g. depmod). */
export type TreeHook = (root: string) => Promise<void>;

interface TreeMarker extends PackageRef {
  origin: 'deb' | 'installed';
  debSha256?: string;
}

const MARKER = '.kumo-tree.json';

/** Package versions may hold an epoch colon; apt writes it as %3a in file names, so do we. */
export function versionKey(version: string): string {
  return version.replace(/:/g, '%3a');
}

/** Parses one `Depends:` value into its first alternatives: [{name, op?, version?}]. */
export function parseDepends(value: string): { name: string; op?: string; version?: string }[] {
  return value
    .split(',')
    .map((s) => s.split('|')[0].trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const m = /^([^\s(:]+)(?::\S+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?/.exec(s);
      if (!m) throw new Error(`cannot parse dependency "${s}"`);
      return m[2] ? { name: m[1], op: m[2], version: m[3] } : { name: m[1] };
    });
}

/** Splits a deb822 text into stanzas of `Key: value` fields (continuation lines joined). */
export function parseStanzas(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let fields = new Map<string, string>();
  let last = '';
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (fields.size > 0) out.push(fields);
      fields = new Map();
      last = '';
      continue;
    }
    if (/^\s/.test(line) && last) {
      fields.set(last, `${fields.get(last)} ${line.trim()}`);
      continue;
    }
    const i = line.indexOf(':');
    if (i > 0) {
      last = line.slice(0, i);
      fields.set(last, line.slice(i + 1).trim());
    }
  }
  if (fields.size > 0) out.push(fields);
  return out;
}

/** The concrete kernel package a meta package (linux-image-amd64) depends on. */
export function kernelFromDepends(meta: string, depends: string): PackageRef {
  const dep = parseDepends(depends).find((d) => /^linux-image-\d/.test(d.name));
  if (!dep) throw new Error(`${meta} does not depend on a linux-image-<abi> package: ${depends}`);
  if (dep.op !== '=' || !dep.version) throw new Error(`${meta} depends on ${dep.name} without an exact version`);
  return { name: dep.name, version: dep.version };
}

/**
 * Candidate versions from the apt lists: the kernel behind `meta` and each of `plain`. One
 * apt-cache call: where the binary cache is disabled (container images) each call costs ~1.5 s.
 */
export async function resolveFromApt(meta: string, plain: string[]): Promise<{ kernel: PackageRef; others: PackageRef[] }> {
  const { stdout } = await run('apt-cache', ['show', '--no-all-versions', meta, ...plain]);
  const stanzas = parseStanzas(stdout);
  const find = (name: string) => {
    const f = stanzas.find((s) => s.get('Package') === name);
    if (!f?.get('Version')) throw new Error(`apt-cache has no candidate for ${name}`);
    return f;
  };
  const kernel = kernelFromDepends(meta, find(meta).get('Depends') ?? '');
  return { kernel, others: plain.map((name) => ({ name, version: find(name).get('Version')! })) };
}

async function installed(name: string): Promise<{ version: string; depends: string } | null> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f', '${Status}\t${Version}\t${Depends}', name]);
    const [status, version, depends] = stdout.split('\t');
    if (!status.endsWith(' installed') || !version) return null;
    return { version, depends: depends ?? '' };
  } catch {
    return null;
  }
}

/** The same resolution against the host's installed packages (the offline fallback). */
export async function resolveInstalled(meta: string, plain: string[]): Promise<{ kernel: PackageRef; others: PackageRef[] }> {
  const m = await installed(meta);
  if (!m) throw new Error(`${meta} is not installed on this host`);
  const kernel = kernelFromDepends(meta, m.depends);
  const others: PackageRef[] = [];
  for (const name of plain) {
    const p = await installed(name);
    if (!p) throw new Error(`${name} is not installed on this host`);
    others.push({ name, version: p.version });
  }
  return { kernel, others };
}

/** Removes scratch entries (.tmp-*, .dl-*) that crashed builds left more than an hour ago. */
export async function sweepStale(cacheDir: string): Promise<void> {
  for (const sub of ['trees', 'debs']) {
    const dir = join(cacheDir, sub);
    if (!existsSync(dir)) continue;
    for (const name of await readdir(dir)) {
      if (!/^\.(tmp|dl)-/.test(name)) continue;
      const st = await lstat(join(dir, name)).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 3600_000) await rm(join(dir, name), { recursive: true, force: true });
    }
  }
}

function treeDir(cacheDir: string, p: PackageRef): string {
  return join(cacheDir, 'trees', `${p.name}_${versionKey(p.version)}`);
}

async function readMarker(dir: string): Promise<TreeMarker | null> {
  try {
    return JSON.parse(await readFile(join(dir, MARKER), 'utf8')) as TreeMarker;
  } catch {
    return null;
  }
}

/** Fills a scratch directory with `fill`, runs the hook, then publishes it atomically. */
async function publishTree(cacheDir: string, p: PackageRef, marker: TreeMarker, fill: (dir: string) => Promise<void>, hook?: TreeHook): Promise<string> {
  const final = treeDir(cacheDir, p);
  const tmp = join(cacheDir, 'trees', `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    if (hook) await hook(tmp);
    await writeFile(join(tmp, MARKER), JSON.stringify(marker, null, 2) + '\n');
    // Another build may have published the same version meanwhile: theirs is as good as ours.
    if (!(await readMarker(final))) {
      await rm(final, { recursive: true, force: true }); // a leftover without marker is garbage
      try {
        await rename(tmp, final);
      } catch (e) {
        if (!(await readMarker(final))) throw e;
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return final;
}

async function cachedDeb(cacheDir: string, p: PackageRef): Promise<string | null> {
  const dir = join(cacheDir, 'debs');
  const prefix = `${p.name}_${versionKey(p.version)}_`;
  const names = existsSync(dir) ? await readdir(dir) : [];
  const hit = names.find((n) => n.startsWith(prefix) && n.endsWith('.deb'));
  return hit ? join(dir, hit) : null;
}

/** `apt-get download name=version` into the cache; returns the .deb path. */
async function downloadDeb(cacheDir: string, p: PackageRef): Promise<string> {
  const dir = join(cacheDir, 'debs');
  const tmp = join(dir, `.dl-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    // As root, apt drops to the _apt user for downloads; it needs to write into the target dir.
    const opts = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
    await run('apt-get', ['download', '-q', ...opts, `${p.name}=${p.version}`], { cwd: tmp });
    const got = (await readdir(tmp)).find((n) => n.endsWith('.deb'));
    if (!got) throw new Error(`apt-get download ${p.name}=${p.version} produced no .deb`);
    const dest = join(dir, got);
    await rename(join(tmp, got), dest);
    return dest;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The unpacked tree of `p`, from the cache, a cached .deb or a fresh apt download. */
export async function obtainFromApt(cacheDir: string, p: PackageRef, hook?: TreeHook): Promise<UnpackedPackage> {
  const existing = await readMarker(treeDir(cacheDir, p));
  if (existing) return { ...p, root: treeDir(cacheDir, p), source: 'cached-tree', origin: existing.origin, debSha256: existing.debSha256 };
  let deb = await cachedDeb(cacheDir, p);
  const source: PackageSource = deb ? 'cached-deb' : 'apt-download';
  deb ??= await downloadDeb(cacheDir, p);
  const debSha256 = await sha256File(deb);
  const root = await publishTree(cacheDir, p, { ...p, origin: 'deb', debSha256 }, async (dir) => {
    await run('dpkg-deb', ['-x', deb, dir]);
  }, hook);
  return { ...p, root, source, origin: 'deb', debSha256 };
}

/** Copies the files `dpkg -L` lists for an installed package into a tree (offline fallback). */
async function copyInstalled(name: string, dest: string): Promise<void> {
  const { stdout } = await run('dpkg', ['-L', name]);
  const paths = stdout.split('\n').filter((l) => l.startsWith('/') && l !== '/.');
  if (paths.length === 0) throw new Error(`dpkg -L ${name} lists no files`);
  for (const p of paths) {
    const target = join(dest, p);
    let ls;
    try {
      ls = await lstat(p);
    } catch {
      continue; // listed but removed by the admin (e.g. a conffile): not ours to invent
    }
    const isDir = ls.isDirectory() || (ls.isSymbolicLink() && (await stat(p).catch(() => null))?.isDirectory());
    if (isDir) {
      await mkdir(target, { recursive: true });
    } else if (ls.isSymbolicLink()) {
      await mkdir(dirname(target), { recursive: true });
      await rm(target, { force: true });
      await symlink(await readlink(p), target);
    } else if (ls.isFile()) {
      await mkdir(dirname(target), { recursive: true });
      await copyFile(p, target);
    }
  }
}

/** The unpacked tree of an installed package at its installed version (cache first). */
export async function obtainInstalled(cacheDir: string, p: PackageRef, hook?: TreeHook): Promise<UnpackedPackage> {
  const existing = await readMarker(treeDir(cacheDir, p));
  if (existing) return { ...p, root: treeDir(cacheDir, p), source: 'cached-tree', origin: existing.origin, debSha256: existing.debSha256 };
  const root = await publishTree(cacheDir, p, { ...p, origin: 'installed' }, (dir) => copyInstalled(p.name, dir), hook);
  return { ...p, root, source: 'installed', origin: 'installed' };
}
