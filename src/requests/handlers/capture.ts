import { notFound } from '../../core/errors.js';
import type { Services } from '../../services/index.js';
import type { ControllerStorage } from '../../storage/controller/sessions.js';
import type { Handler, RequestContext } from '../engine.js';

export interface CaptureDeps { s: Services; storage: ControllerStorage }

const CHUNK = 4 << 20;

/**
 * createImageFromVolume (P2's storage archive: custom images from a system disk, for backup and
 * cloning by copy): the controller opens the volume itself — nobody may be writing it — and streams
 * every byte into the image store (unallocated blocks are zeros without I/O and stay holes there).
 * The image keeps the boot information and kernel files of the image the volume was restored from,
 * so a VM restored from it boots the same way.
 */
export function captureHandlers(d: CaptureDeps): Record<string, Handler> {
  async function capture(ctx: RequestContext): Promise<unknown> {
    const volumeId = ctx.req.resource_id;
    const vol = await d.s.db.k.selectFrom('volumes').select(['id', 'tenant_id', 'image_id']).where('id', '=', volumeId).executeTakeFirst();
    if (!vol) throw notFound('volume', volumeId);
    const name = String(ctx.params.name);
    const what = `copying ${volumeId} into image ${name}`;
    await ctx.progress(1, what);
    let shown = { percent: 1, at: 0 };
    const r = await d.storage.withSession(volumeId, async (session) => {
      const size = session.size;
      async function* bytes(): AsyncGenerator<Buffer> {
        for (let at = 0; at < size; at += CHUNK) {
          yield await session.read(at, Math.min(CHUNK, size - at));
          const percent = Math.floor(1 + 97 * (at / size));
          const now = Date.now();
          if (percent > shown.percent && now - shown.at >= 250) {
            shown = { percent, at: now };
            await ctx.progress(percent, `${what}: ${(at / 1048576).toFixed(0)}/${(size / 1048576).toFixed(0)} MiB`);
          }
        }
      }
      return d.s.images.capture({ name, os: String(ctx.params.os ?? 'linux'), tenantId: vol.tenant_id, bootFrom: vol.image_id, source: `volume ${volumeId}` }, bytes());
    });
    await d.s.events.publish(d.s.db.k, vol.tenant_id, 'image.created', r.imageId, { volumeId, name });
    return { imageId: r.imageId, name, sizeGiB: r.sizeGiB, sha256: r.sha256 };
  }
  return { createImageFromVolume: capture };
}
