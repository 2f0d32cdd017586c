import type { Handler, RequestContext } from '../engine.js';
import { relocate, type RelocateDeps } from '../../storage/controller/relocate.js';
import type { RelocateBody } from '../../storage/relocation/step.js';

/**
 * addVolumeLocation / removeVolumeLocation (HaaS) and syncVolume (the resync the storage reconciler
 * asks for): one relocation step each, done by the volume's lease holder, with the copy's progress
 * as the request's. Steps are idempotent, so a request resumed after a controller restart repeats
 * its step and copies only what is still stale.
 */
export function locationHandlers(d: RelocateDeps): Record<string, Handler> {
  const step = (action: RelocateBody['action']) => async (ctx: RequestContext): Promise<unknown> => {
    const volumeId = ctx.req.resource_id;
    const nodeId = String(ctx.params.nodeId);
    const what = action === 'add' ? `adding location ${nodeId} to ${volumeId}` : action === 'sync' ? `resyncing ${volumeId} on ${nodeId}` : `removing location ${nodeId} from ${volumeId}`;
    await ctx.progress(1, what);
    let shown = { percent: 1, at: 0 };
    const r = await relocate(d, volumeId, { action, nodeId }, async (p) => {
      const percent = Math.min(99, Math.floor(1 + 98 * (p.total > 0 ? p.done / p.total : 1)));
      const at = Date.now();
      if (percent <= shown.percent || at - shown.at < 250) return;
      shown = { percent, at };
      await ctx.progress(percent, `${what}: ${p.done}/${p.total} blocks checked, ${p.copied} copied`);
    });
    await d.s.events.publish(d.s.db.k, ctx.req.tenant_id, `volume.location.${action === 'add' ? 'added' : action === 'sync' ? 'synced' : 'removed'}`, volumeId, { nodeId, ...r });
    return { volumeId, nodeId, ...r };
  };
  return { addVolumeLocation: step('add'), removeVolumeLocation: step('remove'), syncVolume: step('sync') };
}
