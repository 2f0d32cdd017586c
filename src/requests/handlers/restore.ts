import { open } from 'node:fs/promises';
import { Fault, KumoError, invalidState, notFound } from '../../core/errors.js';
import { isZero } from '../../core/zeros.js';
import type { Services } from '../../services/index.js';
import { DISK_FILE } from '../../services/images.js';
import type { ControllerStorage } from '../../storage/controller/sessions.js';
import type { VolumeSession } from '../../storage/frontend/session.js';
import type { Handler, RequestContext } from '../engine.js';

export interface RestoreDeps { s: Services; storage: ControllerStorage }

const CHUNK = 1 << 20;
const PARALLEL = 8;

/**
 * restoreImage: the controller opens the system volume itself (the VM is off, so nobody holds its
 * write lease), discards every block — the old content is gone and unwritten blocks read as zeros —
 * then writes the image's non-zero MiBs and flushes. Repeating it after a controller restart writes
 * the same bytes again.
 */
export function restoreHandlers(d: RestoreDeps): Record<string, Handler> {
  async function restore(ctx: RequestContext): Promise<unknown> {
    const db = d.s.db.k;
    const vm = await db.selectFrom('vms').selectAll().where('id', '=', ctx.req.resource_id).executeTakeFirst();
    if (!vm) throw notFound('VM', ctx.req.resource_id);
    if (vm.status !== 'stopped') throw invalidState(`restoreImage needs ${vm.id} stopped; it is ${vm.status}`);
    const imageId = String(ctx.params.imageId);
    const img = await db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!img) throw notFound('image', imageId);
    if (img.dir === '') throw invalidState(`image ${imageId} has no disk in the image store`);
    const vol = await db.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
      .select(['volumes.id', 'volumes.size_gib']).where('vm_disks.vm_id', '=', vm.id).where('vm_disks.slot', '=', 0).executeTakeFirst();
    if (!vol) throw invalidState(`${vm.id} has no system volume`);
    const disk = await d.s.images.filePath(imageId, DISK_FILE);
    if (disk.size > vol.size_gib * 1024 ** 3) throw invalidState(`image ${img.name} (${disk.size} bytes) is larger than ${vol.id} (${vol.size_gib} GiB)`);

    const what = `writing ${img.name} onto ${vol.id}`;
    await ctx.progress(2, what);
    let shown = { percent: 2, at: 0 };
    try {
      await d.storage.withSession(vol.id, async (session) => {
        await session.trim(0, session.size);
        await writeFile(session, disk.path, disk.size, async (bytes) => {
          const percent = Math.floor(2 + 96 * (disk.size ? bytes / disk.size : 1));
          const at = Date.now();
          if (percent <= shown.percent || at - shown.at < 250) return;
          shown = { percent, at };
          await ctx.progress(percent, `${what}: ${(bytes / 1048576).toFixed(0)}/${(disk.size / 1048576).toFixed(0)} MiB`);
        });
        await session.flush();
      });
    } catch (e) {
      if (e instanceof KumoError) throw e;
      throw new KumoError(Fault.INTERNAL, `${what} failed: ${(e as Error).message}`);
    }
    await db.updateTable('volumes').set({ image_id: imageId }).where('id', '=', vol.id).execute();
    await d.s.events.publish(db, vm.tenant_id, 'vm.restored', vm.id, { imageId, volumeId: vol.id });
    return { volumeId: vol.id, imageId };
  }

  return { restoreImage: restore };
}

/** Copies a raw file onto the session, skipping all-zero MiBs (the volume reads zeros there already). */
async function writeFile(session: VolumeSession, path: string, size: number, onBytes: (bytes: number) => Promise<void>): Promise<void> {
  const fh = await open(path, 'r');
  try {
    let next = 0;
    let done = 0;
    const worker = async () => {
      const buf = Buffer.allocUnsafe(CHUNK);
      while (next < size) {
        const at = next;
        next += CHUNK;
        const len = Math.min(CHUNK, size - at);
        const { bytesRead } = await fh.read(buf, 0, len, at);
        const data = buf.subarray(0, bytesRead);
        if (!isZero(data)) await session.write(at, Buffer.from(data), false);
        done += len;
        await onBytes(done);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  } finally {
    await fh.close();
  }
}
