import type { AgentClient } from '../../agent/client.js';
import type { ImageFileMeta } from '../../agent/protocol.js';
import { Fault, KumoError, invalidState, notFound } from '../../core/errors.js';
import type { SchedulerPolicy } from '../../scheduler/index.js';
import { capacitySnapshot } from '../../services/capacity.js';
import type { Events } from '../../services/events.js';
import { DISK_FILE } from '../../services/images.js';
import type { Db } from '../../state/db.js';
import type { Handler, RequestContext } from '../engine.js';
import { chooseHost, claimVolumes } from './volume-host.js';

export interface RestoreDeps { db: Db; events: Events; agents: AgentClient; policy: SchedulerPolicy }

/** Progress of a restore: 0–10 choosing the host, 10–60 fetching the image, 60–100 writing it. */
const DOWNLOAD = [10, 60] as const;
const COPY = [60, 99] as const;

/**
 * restoreImage: the system volume's host (its local file's home, or a scheduler placement recorded
 * as that home), then the agent's idempotent restore, whose streamed progress moves the request's,
 * then `volumes.image_id`. Repeating it after a controller restart writes the same bytes again.
 */
export function restoreHandlers(d: RestoreDeps): Record<string, Handler> {
  async function restore(ctx: RequestContext): Promise<unknown> {
    const vm = await d.db.k.selectFrom('vms').selectAll().where('id', '=', ctx.req.resource_id).executeTakeFirst();
    if (!vm) throw notFound('VM', ctx.req.resource_id);
    if (vm.status !== 'stopped') throw invalidState(`restoreImage needs ${vm.id} stopped; it is ${vm.status}`);
    const imageId = String(ctx.params.imageId);
    const img = await d.db.k.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!img) throw notFound('image', imageId);
    if (img.dir === '') throw invalidState(`image ${imageId} has no disk in the image store`);
    const vol = await d.db.k.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
      .select(['volumes.id', 'volumes.size_gib']).where('vm_disks.vm_id', '=', vm.id).where('vm_disks.slot', '=', 0).executeTakeFirst();
    if (!vol) throw invalidState(`${vm.id} has no system volume`);

    const hostId = await d.db.k.transaction().execute(async (trx) => {
      await d.db.lock(trx, 'placement');
      const chosen = await chooseHost(trx, await capacitySnapshot(trx), vm, d.policy);
      await claimVolumes(trx, vm.id, chosen);
      return chosen;
    });
    const host = await d.db.k.selectFrom('hosts').selectAll().where('id', '=', hostId).executeTakeFirstOrThrow();
    await ctx.progress(DOWNLOAD[0], `writing ${img.name} onto ${vol.id} on ${host.name} (${host.id}): fetching the image`);

    // Progress goes to the store at most every 250 ms or whole percent, whichever is rarer.
    let shown: { percent: number; at: number; stage: string } = { percent: DOWNLOAD[0], at: 0, stage: 'download' };
    const files = JSON.parse(img.files) as ImageFileMeta[];
    try {
      await d.agents.restore(host, vol.id, { vmId: vm.id, imageId, sizeGiB: vol.size_gib, disk: DISK_FILE, files }, async (e) => {
        const [from, to] = e.stage === 'download' ? DOWNLOAD : COPY;
        const f = e.stage === 'download' ? (e.total > 0 ? e.bytes / e.total : 1) : e.fraction;
        const percent = Math.floor(from + (to - from) * Math.min(1, Math.max(0, f)));
        const at = Date.now();
        if (e.stage === shown.stage && (percent <= shown.percent || at - shown.at < 250)) return;
        shown = { percent, at, stage: e.stage };
        const what = e.stage === 'download' ? `fetching the image (${mib(e.bytes)}/${mib(e.total)} MiB)` : `writing the disk (${Math.round(e.fraction * 100)} %)`;
        await ctx.progress(percent, `writing ${img.name} onto ${vol.id} on ${host.name}: ${what}`);
      });
    } catch (e) {
      if (e instanceof KumoError) throw e;
      throw new KumoError(Fault.INTERNAL, `restoring ${img.name} (${imageId}) onto ${vol.id} on ${host.name} failed: ${(e as Error).message}`);
    }
    await d.db.k.updateTable('volumes').set({ image_id: imageId }).where('id', '=', vol.id).execute();
    await d.events.publish(d.db.k, vm.tenant_id, 'vm.restored', vm.id, { imageId, volumeId: vol.id, hostId: host.id });
    return { volumeId: vol.id, imageId, host: host.id };
  }

  return { restoreImage: restore };
}

const mib = (n: number) => (n / 1048576).toFixed(1);
