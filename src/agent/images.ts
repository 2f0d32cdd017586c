import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSparse } from '../core/sparse.js';
import { CONTROLLER_PATHS, type AgentImageMeta, type ImageFileMeta } from './protocol.js';

export const IMAGE_ID = /^img-[0-9a-f]{12}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** The controller names image files this way (services/images.ts); anything else is refused. */
export const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ImageCacheOptions {
  /** `<agent data>/images` */
  dir: string;
  controllerUrl: string;
  /** The agent's node token (known once it has registered). */
  token: () => string;
}

/**
 * The agent's copy of image files, fetched from the controller with the node token. Files are kept
 * as `<dir>/<imageId>/<sha256>`: a file is reused only with the same content, a download is
 * verified (size and sha256) before it is published by rename, and one download of a file runs at
 * a time however many restores and starts want it.
 */
export class ImageCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly o: ImageCacheOptions) {}

  private async get(path: string): Promise<Response> {
    const token = this.o.token();
    if (!token) throw new Error('the agent has not registered with the controller yet');
    const res = await fetch(this.o.controllerUrl + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new Error(`controller answered ${path} with HTTP ${res.status}: ${text.slice(0, 300)}`);
    }
    return res;
  }

  /** The image's current files and boot information, from the controller. */
  async meta(imageId: string): Promise<AgentImageMeta> {
    if (!IMAGE_ID.test(imageId)) throw new Error(`not an image id: ${JSON.stringify(imageId.slice(0, 40))}`);
    return (await this.get(CONTROLLER_PATHS.image(imageId)).then((r) => r.json())) as AgentImageMeta;
  }

  path(imageId: string, f: ImageFileMeta): string {
    if (!IMAGE_ID.test(imageId)) throw new Error(`not an image id: ${JSON.stringify(imageId.slice(0, 40))}`);
    if (!SHA256.test(f.sha256) || !FILE_NAME.test(f.name)) throw new Error(`bad image file ${JSON.stringify(f).slice(0, 200)}`);
    return join(this.o.dir, imageId, f.sha256);
  }

  /** The cached file, downloaded first when missing; `onBytes` sees the download's progress. */
  async ensure(imageId: string, f: ImageFileMeta, onBytes?: (bytes: number) => void): Promise<string> {
    const path = this.path(imageId, f);
    const st = await stat(path).catch(() => null);
    if (st?.isFile() && st.size === f.size) return path;
    let p = this.inflight.get(path);
    if (!p) {
      p = this.download(imageId, f, path, onBytes).finally(() => this.inflight.delete(path));
      this.inflight.set(path, p);
    }
    return p;
  }

  private async download(imageId: string, f: ImageFileMeta, path: string, onBytes?: (bytes: number) => void): Promise<string> {
    await mkdir(join(this.o.dir, imageId), { recursive: true });
    const tmp = join(this.o.dir, imageId, `.dl-${randomBytes(4).toString('hex')}`);
    try {
      const res = await this.get(CONTROLLER_PATHS.imageFile(imageId, f.name));
      if (!res.body) throw new Error(`controller sent no body for ${imageId}/${f.name}`);
      const got = await writeSparse(res.body as AsyncIterable<Uint8Array>, tmp, { limit: f.size, onBytes });
      if (got.size !== f.size || got.sha256 !== f.sha256) {
        throw new Error(`${imageId}/${f.name} arrived as ${got.size} bytes sha256 ${got.sha256}, expected ${f.size} bytes ${f.sha256} (replaced on the controller meanwhile?)`);
      }
      await rename(tmp, path);
      return path;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Deletes cached versions of an image other than `keep` (the image was replaced). */
  async prune(imageId: string, keep: ImageFileMeta[]): Promise<void> {
    const dir = join(this.o.dir, imageId);
    if (!IMAGE_ID.test(imageId) || !existsSync(dir)) return;
    const wanted = new Set(keep.map((f) => f.sha256));
    for (const name of await readdir(dir)) {
      if (SHA256.test(name) && !wanted.has(name) && !this.inflight.has(join(dir, name))) await rm(join(dir, name), { force: true });
    }
  }
}
