import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LaunchSpec, VmSpec } from '../compute/driver.js';
import { ImageCache } from './images.js';
import type { RestoreBody, RestoreEvent } from './protocol.js';

export const VOLUME_ID = /^vol-[0-9a-f]{12}$/;
const GiB = 1024 ** 3;

function checkVolumeId(volumeId: string): void {
  if (!VOLUME_ID.test(volumeId)) throw Object.assign(new Error(`not a volume id: ${JSON.stringify(volumeId.slice(0, 40))}`), { statusCode: 400 });
}

/**
 * Interim local volumes (until kumo storage nodes serve them over NBD): each volume is a sparse
 * raw file `<dir>/<volumeId>.raw` as long as the volume, on the host that first used it.
 */
export class VolumeFiles {
  constructor(readonly dir: string) {}

  path(volumeId: string): string {
    checkVolumeId(volumeId);
    return join(this.dir, `${volumeId}.raw`);
  }

  /** The volume's file, created sparse (all zeros) on first use; a shorter one is lengthened, never shortened. */
  async ensure(volumeId: string, sizeGiB: number): Promise<string> {
    const path = this.path(volumeId);
    await mkdir(this.dir, { recursive: true });
    const fh = await open(path, 'a');
    try {
      if ((await fh.stat()).size < sizeGiB * GiB) await fh.truncate(sizeGiB * GiB);
    } finally {
      await fh.close();
    }
    return path;
  }

  /** Volume ids that have a file here. */
  async list(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.raw') && VOLUME_ID.test(n.slice(0, -4))).map((n) => n.slice(0, -4)).sort();
  }

  async remove(volumeId: string): Promise<void> {
    await rm(this.path(volumeId), { force: true });
  }

  /**
   * Replaces the volume's content with a raw image: a fresh sparse file of the volume's size gets
   * the image with `qemu-img convert -n` (zeros stay holes; `-p` drives `onFraction`), and is then
   * renamed over the volume's file — nothing of the old content survives, and a failure leaves the
   * old content whole.
   */
  async writeImage(volumeId: string, sizeGiB: number, raw: string, onFraction: (f: number) => void): Promise<void> {
    const path = this.path(volumeId);
    const size = (await stat(raw)).size;
    if (size > sizeGiB * GiB) throw new Error(`the image (${size} bytes) is larger than ${volumeId} (${sizeGiB} GiB)`);
    await mkdir(this.dir, { recursive: true });
    const tmp = `${path}.restore-${randomBytes(4).toString('hex')}`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      await fh.truncate(sizeGiB * GiB);
      await fh.close();
      await qemuImgConvert(raw, tmp, onFraction);
      const done = await open(tmp, 'r+');
      await done.sync();
      await done.close();
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/** `qemu-img convert -p -f raw -O raw -n --target-is-zero`, reporting its percentage. */
function qemuImgConvert(src: string, dst: string, onFraction: (f: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-img', ['convert', '-p', '-f', 'raw', '-O', 'raw', '-n', '--target-is-zero', src, dst], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      const all = [...d.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
      if (all.length) onFraction(Number(all[all.length - 1][1]) / 100);
    });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-2000); });
    p.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new Error('qemu-img not found: install the Debian package qemu-utils') : e));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`qemu-img convert failed (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}

export interface LocalStorageOptions {
  /** The agent's data directory: volumes in `volumes/`, image files in `images/`. */
  dataDir: string;
  controllerUrl: string;
  /** The node token for fetching images; the agent binds its own when this is absent. */
  token?: string | (() => string);
}

/** An agent's local volume files and image cache, and the operations the controller asks of them. */
export class LocalStorage {
  readonly volumes: VolumeFiles;
  readonly images: ImageCache;
  private token: () => string;
  /** One operation per volume at a time (restores, first-use creation). */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly storeFile: string;

  constructor(readonly o: LocalStorageOptions) {
    const t = o.token;
    this.token = typeof t === 'function' ? t : () => t ?? '';
    this.volumes = new VolumeFiles(join(o.dataDir, 'volumes'));
    this.images = new ImageCache({ dir: join(o.dataDir, 'images'), controllerUrl: o.controllerUrl, token: () => this.token() });
    this.storeFile = join(o.dataDir, 'volumes', '.store-id');
  }

  /** Called by the agent: its node token, unless one was given. */
  bindToken(token: () => string): void {
    if (this.o.token === undefined) this.token = token;
  }

  private serial<T>(volumeId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(volumeId) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    this.chains.set(volumeId, next);
    void next.catch(() => {}).finally(() => { if (this.chains.get(volumeId) === next) this.chains.delete(volumeId); });
    return next;
  }

  /** Fetches every file of the image (progress over their total bytes), then writes the disk onto the volume. */
  async restore(volumeId: string, b: RestoreBody, emit: (e: RestoreEvent) => void): Promise<void> {
    checkVolumeId(volumeId);
    const disk = b.files.find((f) => f.name === b.disk);
    if (!disk) throw new Error(`the image's files do not include its disk ${b.disk}`);
    await this.serial(volumeId, async () => {
      const total = b.files.reduce((n, f) => n + f.size, 0);
      let done = 0;
      const paths = new Map<string, string>();
      emit({ stage: 'download', bytes: 0, total });
      for (const f of [disk, ...b.files.filter((x) => x !== disk)]) {
        paths.set(f.name, await this.images.ensure(b.imageId, f, (n) => emit({ stage: 'download', bytes: done + n, total })));
        done += f.size;
        emit({ stage: 'download', bytes: done, total });
      }
      await this.images.prune(b.imageId, b.files);
      emit({ stage: 'copy', fraction: 0 });
      await this.volumes.writeImage(volumeId, b.sizeGiB, paths.get(disk.name)!, (fraction) => emit({ stage: 'copy', fraction }));
      emit({ stage: 'copy', fraction: 1 });
    });
  }

  /** The controller's spec as paths on this host: volume files (created on first use) and cached kernel files. */
  async resolve(spec: VmSpec): Promise<LaunchSpec> {
    const disks = await Promise.all(spec.disks.map(async (d) => ({
      ...d, source: { kind: 'file' as const, path: await this.serial(d.volumeId, () => this.volumes.ensure(d.volumeId, d.sizeGiB)) },
    })));
    if (!spec.boot) return { ...spec, disks };
    const boot = spec.boot;
    const meta = await this.images.meta(boot.imageId);
    const file = async (name: string) => {
      const f = meta.files.find((x) => x.name === name);
      if (!f) throw new Error(`image ${boot.imageId} has no file ${name}`);
      return this.images.ensure(boot.imageId, f);
    };
    return {
      ...spec, disks,
      kernel: { path: await file(boot.kernel), ...(boot.initrd ? { initrd: await file(boot.initrd) } : {}), append: boot.append ?? '' },
    };
  }

  /** What the heartbeat reports. */
  heldVolumes(): Promise<string[]> { return this.volumes.list(); }

  /**
   * Deletes the files of volumes the store no longer has. The first store that answers is
   * remembered, and another store's word is ignored: an agent pointed at the wrong controller
   * must not delete what it holds for the right one.
   */
  async dropVolumes(storeId: string | undefined, volumeIds: string[]): Promise<string[]> {
    if (!storeId || volumeIds.length === 0) return [];
    const known = await readFile(this.storeFile, 'utf8').then((s) => s.trim(), () => '');
    if (!known) {
      await mkdir(this.volumes.dir, { recursive: true });
      await writeFile(this.storeFile, `${storeId}\n`);
    } else if (known !== storeId) {
      throw new Error(`not deleting volume files: this agent's volumes belong to store ${known}, and the controller speaks for store ${storeId}`);
    }
    const gone: string[] = [];
    for (const id of volumeIds) {
      if (!VOLUME_ID.test(id)) continue;
      await this.serial(id, () => this.volumes.remove(id));
      gone.push(id);
    }
    return gone;
  }
}

/** `resolveLaunch` for the agent, carrying the storage it resolves into (see localStorageOf). */
export type LocalResolver = ((spec: VmSpec) => Promise<LaunchSpec>) & { readonly storage: LocalStorage };

/**
 * The agent's `resolveLaunch`: disks become the local volume files (created sparse at their size on
 * first use, so blank volumes work), `boot` becomes cached kernel/initrd files of the image, the
 * append line as the image says. Pass it as AgentOptions.resolveLaunch; the agent then also serves
 * restores and reports its volume files (agent/restore-routes.ts).
 */
export function makeResolver(o: LocalStorageOptions): LocalResolver {
  const storage = new LocalStorage(o);
  return Object.assign((spec: VmSpec) => storage.resolve(spec), { storage });
}

/** The storage behind a resolver made by makeResolver, or null for any other resolver. */
export function localStorageOf(resolve: unknown): LocalStorage | null {
  const s = (resolve as Partial<LocalResolver> | undefined)?.storage;
  return s instanceof LocalStorage ? s : null;
}
