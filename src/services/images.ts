import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Fault, KumoError, invalidParams, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { copySparse, writeSparse, type Written } from '../core/sparse.js';
import type { AgentImageMeta, BootMeta, ImageFileMeta } from '../agent/protocol.js';
import type { Db } from '../state/db.js';
import { now } from '../state/db.js';
import type { ImageRow } from '../state/schema.js';
import { requireAdmin, visible, type Principal } from './principal.js';
import { checkName } from './validate.js';

/** Every image's disk is stored under this name, raw. */
export const DISK_FILE = 'disk.raw';
/** Names of an image's files (kernel, initrd …): plain names, never paths. */
export const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const GiB = 1024 ** 3;
/** The largest disk an image may have: the largest volume (services/volumes.ts). */
export const MAX_IMAGE_BYTES = 16384 * GiB;

export interface ImageMeta { name: string; os: string; kind?: string; source?: string; tenantId?: string | null; boot?: BootMeta | null }

/** A raw disk and other files (kernel, initrd) on the controller's machine, to be copied into the store. */
export interface RegisterImageArgs extends ImageMeta { disk: string; files?: { name: string; path: string }[] }

/** `changed`: files were written (a new image, or new bytes for an existing one); `created`: a new image. */
export interface Registered { imageId: string; name: string; sizeGiB: number; sha256: string; changed: boolean; created: boolean }

const parseFiles = (i: Pick<ImageRow, 'files'>) => JSON.parse(i.files) as ImageFileMeta[];
const parseBoot = (i: Pick<ImageRow, 'boot'>) => (i.boot === '' ? null : JSON.parse(i.boot) as BootMeta);
const sameFiles = (a: ImageFileMeta[], b: ImageFileMeta[]) =>
  a.length === b.length && a.every((f) => b.some((g) => g.name === f.name && g.size === f.size && g.sha256 === f.sha256));

/**
 * Images: the archive a system volume is restored from. Their files live on the controller under
 * `<data>/images/<imageId>/` (disk.raw and, for direct kernel boot, kernel and initrd); agents
 * fetch them over HTTP with their node token. Public images (tenant null) are registered by
 * administrators — `kumo up` registers `tiny-linux`, `kumo image import` uploads any raw/qcow2 disk.
 */
export class Images {
  private dataDir: string | null = null;

  constructor(private readonly db: Db) {}

  /** The controller's data directory; without it, images can be listed but not stored or served. */
  setDataDir(dir: string): void { this.dataDir = dir; }

  private store(): string {
    if (!this.dataDir) throw new KumoError(Fault.INTERNAL, 'this controller has no image store (no data directory)');
    return join(this.dataDir, 'images');
  }

  async list(p: Principal) {
    let q = this.db.k.selectFrom('images').selectAll().orderBy('name').orderBy('id');
    if (!p.admin) q = q.where((eb) => eb.or([eb('tenant_id', '=', p.tenantId), eb('tenant_id', 'is', null)]));
    return (await q.execute()).map((i) => ({ imageId: i.id, name: i.name, os: i.os, sizeGiB: i.size_gib, kind: i.kind }));
  }

  async info(p: Principal, imageId: string) {
    const i = await this.db.k.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!i || !visible(p, i.tenant_id)) throw notFound('image', imageId);
    return { imageId: i.id, name: i.name, os: i.os, sizeGiB: i.size_gib, kind: i.kind, createdAt: i.created_at, source: i.source };
  }

  /**
   * Copies a raw disk (and kernel files) into the store as the image `name` — idempotent by name
   * within its owner: the same bytes again change nothing; different bytes replace the files and
   * keep the image id, so VMs restored from it keep booting from it.
   */
  async register(p: Principal, a: RegisterImageArgs): Promise<Registered> {
    requireAdmin(p);
    await this.checkMeta(a);
    for (const f of a.files ?? []) {
      if (!FILE_NAME.test(f.name) || f.name === DISK_FILE) throw invalidParams(`image file names are plain names other than ${DISK_FILE}: ${JSON.stringify(f.name)}`);
    }
    const staging = await this.staging();
    try {
      const files: ImageFileMeta[] = [{ name: DISK_FILE, ...(await copySparse(a.disk, join(staging, DISK_FILE))) }];
      for (const f of a.files ?? []) files.push({ name: f.name, ...(await copySparse(f.path, join(staging, f.name))) });
      return await this.commit(a, staging, files);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** An uploaded raw disk (firmware boot) as the image `name`; see register for replacing. */
  async upload(p: Principal, meta: ImageMeta, body: AsyncIterable<Uint8Array>): Promise<Registered> {
    requireAdmin(p);
    await this.checkMeta(meta);
    const staging = await this.staging();
    try {
      let disk: Written;
      try {
        disk = await writeSparse(body, join(staging, DISK_FILE), { limit: MAX_IMAGE_BYTES });
      } catch (e) {
        if (/^more than/.test((e as Error).message)) throw invalidParams(`an image disk is at most ${MAX_IMAGE_BYTES / GiB} GiB`);
        throw e;
      }
      if (disk.size === 0) throw invalidParams('the uploaded disk is empty');
      return await this.commit({ ...meta, boot: null }, staging, [{ name: DISK_FILE, ...disk }]);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * A volume's bytes as a private image of `tenantId` (createImageFromVolume). The image boots like
   * the one the volume was restored from (`bootFrom`): its boot information and kernel files are copied.
   */
  async capture(a: { name: string; os: string; tenantId: string; bootFrom: string | null; source: string }, body: AsyncIterable<Uint8Array>): Promise<Registered> {
    const meta: ImageMeta = { name: a.name, os: a.os, kind: 'captured', source: a.source, tenantId: a.tenantId };
    await this.checkMeta(meta);
    const staging = await this.staging();
    try {
      const files: ImageFileMeta[] = [{ name: DISK_FILE, ...(await writeSparse(body, join(staging, DISK_FILE), { limit: MAX_IMAGE_BYTES })) }];
      const from = a.bootFrom ? await this.db.k.selectFrom('images').selectAll().where('id', '=', a.bootFrom).executeTakeFirst() : undefined;
      const boot = from && from.dir !== '' ? parseBoot(from) : null;
      if (from && boot) {
        for (const f of parseFiles(from).filter((x) => x.name !== DISK_FILE)) {
          await copyFile(join(this.store(), from.id, f.name), join(staging, f.name));
          files.push(f);
        }
      }
      return await this.commit({ ...meta, boot }, staging, files);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  private async checkMeta(a: ImageMeta): Promise<void> {
    checkName(a.name, 'image name');
    for (const [k, v, max] of [['os', a.os, 64], ['kind', a.kind ?? '', 32], ['source', a.source ?? '', 1024]] as const) {
      if (typeof v !== 'string' || v.length > max || (k === 'os' && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v))) throw invalidParams(`image ${k} must be ${k === 'os' ? 'a word like linux' : 'text'} of at most ${max} characters`);
    }
    if (a.tenantId && !(await this.db.k.selectFrom('tenants').select('id').where('id', '=', a.tenantId).executeTakeFirst())) throw notFound('tenant', a.tenantId);
  }

  private async staging(): Promise<string> {
    const dir = join(this.store(), `.staging-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Moves staged files into place and writes the row, under a lock on the name. */
  private async commit(a: ImageMeta, staging: string, files: ImageFileMeta[]): Promise<Registered> {
    const boot = a.boot ?? null;
    for (const n of boot ? [boot.kernel, boot.initrd].filter((x): x is string => !!x) : []) {
      if (!files.some((f) => f.name === n && n !== DISK_FILE)) throw invalidParams(`boot names ${n}, which is not a file of the image`);
    }
    const disk = files[0];
    const sizeGiB = Math.max(1, Math.ceil(disk.size / GiB));
    const tenantId = a.tenantId ?? null;
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `image:${tenantId ?? 'public'}:${a.name}`);
      let q = trx.selectFrom('images').selectAll().where('name', '=', a.name);
      q = tenantId === null ? q.where('tenant_id', 'is', null) : q.where('tenant_id', '=', tenantId);
      const old = await q.orderBy('created_at').executeTakeFirst();
      const same = old && old.dir !== '' && sameFiles(parseFiles(old), files) && old.boot === (boot ? JSON.stringify(boot) : '')
        && existsSync(join(this.store(), old.id, DISK_FILE));
      const imageId = old?.id ?? newId('img');
      const values = {
        os: a.os, kind: a.kind || 'imported', source: a.source ?? '', size_gib: sizeGiB, dir: join('images', imageId),
        boot: boot ? JSON.stringify(boot) : '', size_bytes: disk.size, sha256: disk.sha256, files: JSON.stringify(files),
      };
      if (same) {
        await trx.updateTable('images').set({ os: values.os, kind: values.kind, source: values.source }).where('id', '=', imageId).execute();
        return { imageId, name: a.name, sizeGiB, sha256: disk.sha256, changed: false, created: false };
      }
      const final = join(this.store(), imageId);
      const aside = `${final}.old-${randomBytes(4).toString('hex')}`;
      if (existsSync(final)) await rename(final, aside);
      await rename(staging, final);
      await rm(aside, { recursive: true, force: true });
      if (old) await trx.updateTable('images').set(values).where('id', '=', imageId).execute();
      else await trx.insertInto('images').values({ id: imageId, tenant_id: tenantId, name: a.name, created_at: now(), ...values }).execute();
      return { imageId, name: a.name, sizeGiB, sha256: disk.sha256, changed: true, created: !old };
    });
  }

  private async stored(imageId: string): Promise<ImageRow> {
    const i = await this.db.k.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!i) throw notFound('image', imageId);
    if (i.dir === '') throw new KumoError(Fault.INVALID_STATE, `image ${imageId} has no files in the image store`);
    return i;
  }

  /** What an agent needs to fetch and boot an image. */
  async agentMeta(imageId: string): Promise<AgentImageMeta> {
    const i = await this.stored(imageId);
    return { imageId: i.id, sha256: i.sha256, sizeBytes: Number(i.size_bytes), disk: DISK_FILE, files: parseFiles(i), boot: parseBoot(i) };
  }

  /** The path of one file of an image; names that are not the image's files are not found. */
  async filePath(imageId: string, name: string): Promise<{ path: string; size: number }> {
    const i = await this.stored(imageId);
    const f = parseFiles(i).find((x) => x.name === name);
    if (!f || !FILE_NAME.test(name)) throw notFound('image file', `${imageId}/${basename(name).slice(0, 64)}`);
    return { path: join(this.store(), i.id, f.name), size: f.size };
  }
}
