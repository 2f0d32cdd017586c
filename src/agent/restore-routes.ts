import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ComputeDriver } from '../compute/driver.js';
import { FILE_NAME, IMAGE_ID } from './images.js';
import { AGENT_PATHS, type HeartbeatBody, type HeartbeatReply, type RestoreBody, type RestoreEvent } from './protocol.js';
import { localStorageOf } from './volumes.js';

export interface RestoreRouteOptions {
  /** The agent's resolveLaunch: restores are served when it was made by makeResolver. */
  resolveLaunch: unknown;
  /** The agent's node token, for fetching image files from the controller. */
  nodeToken: () => string;
  driver: (hostId: string) => ComputeDriver;
  log: Logger;
}

const fail = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

function checkBody(b: RestoreBody): void {
  const ok = b && typeof b === 'object' && typeof b.vmId === 'string' && typeof b.imageId === 'string' && IMAGE_ID.test(b.imageId)
    && Number.isInteger(b.sizeGiB) && b.sizeGiB > 0 && typeof b.disk === 'string' && Array.isArray(b.files)
    && b.files.every((f) => f && typeof f.name === 'string' && FILE_NAME.test(f.name) && Number.isSafeInteger(f.size) && f.size >= 0 && typeof f.sha256 === 'string');
  if (!ok) throw fail(400, 'restore needs {vmId, imageId, sizeGiB, disk, files: [{name, size, sha256}]}');
}

/**
 * The agent's restore operation: POST …/volumes/:volumeId/restore answers at once with an NDJSON
 * stream of RestoreEvent lines (download, then copy progress) ending in `done` or `error`, so the
 * controller's request shows progress while the image is fetched and written. Idempotent: a
 * repeated restore writes the same bytes again (image files come from the cache).
 */
export async function registerRestoreRoutes(app: FastifyInstance, o: RestoreRouteOptions): Promise<void> {
  const storage = localStorageOf(o.resolveLaunch);
  storage?.bindToken(o.nodeToken);
  app.post<{ Params: { hostId: string; volumeId: string }; Body: RestoreBody }>(AGENT_PATHS.restore(':hostId', ':volumeId'), async (req, reply) => {
    const { hostId, volumeId } = req.params;
    if (!storage) throw fail(501, 'this agent keeps no volume files (it was started without a volume store)');
    const driver = o.driver(hostId);
    const b = req.body;
    checkBody(b);
    if ((await driver.list()).some((v) => v.vmId === b.vmId)) throw fail(409, `${b.vmId} runs on this host: stop it before restoring its system volume`);
    o.log.info({ volumeId, imageId: b.imageId, vmId: b.vmId }, 'restoring an image onto a volume');
    const out = new PassThrough();
    const line = (e: RestoreEvent) => { if (!out.writableEnded) out.write(`${JSON.stringify(e)}\n`); };
    // Progress at most every 100 ms per stage; stage changes and the end always go out.
    let last = { stage: '', at: 0 };
    const emit = (e: RestoreEvent) => {
      const stage = 'stage' in e ? e.stage : '';
      const at = Date.now();
      const end = ('fraction' in e && e.fraction === 1) || ('bytes' in e && e.bytes === e.total);
      if (stage === last.stage && at - last.at < 100 && !end) return;
      last = { stage, at };
      line(e);
    };
    const t0 = Date.now();
    storage.restore(volumeId, b, emit).then(() => {
      o.log.info({ volumeId, imageId: b.imageId, ms: Date.now() - t0 }, 'image restored onto the volume');
      line({ done: true });
    }, (e: Error) => {
      o.log.warn({ volumeId, imageId: b.imageId, err: e.message }, 'restore failed');
      line({ error: e.message });
    }).finally(() => out.end());
    return reply.type('application/x-ndjson').send(out);
  });
}

/** The heartbeat's report of volume files (nothing without a volume store). */
export async function heldVolumes(resolveLaunch: unknown): Promise<Pick<HeartbeatBody, 'volumes'>> {
  const s = localStorageOf(resolveLaunch);
  return s ? { volumes: await s.heldVolumes() } : {};
}

/** Acts on the controller's answer to a heartbeat: deletes the files of volumes it no longer has. */
export async function onHeartbeatReply(resolveLaunch: unknown, res: Response, log: Logger): Promise<void> {
  const s = localStorageOf(resolveLaunch);
  const text = await res.text().catch(() => '');
  if (!s || !res.ok || !text) return;
  let r: HeartbeatReply;
  try { r = JSON.parse(text) as HeartbeatReply; } catch { return; }
  try {
    const gone = await s.dropVolumes(r.storeId, r.deleteVolumes ?? []);
    if (gone.length) log.info({ volumes: gone }, 'deleted the files of volumes the controller no longer has');
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'volume files not deleted');
  }
}
