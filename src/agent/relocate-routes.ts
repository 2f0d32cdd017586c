import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AgentFrontend } from './frontend.js';
import { AGENT_PATHS, type RelocateBody, type RelocateEvent } from './protocol.js';

const NODE_ID = /^node-[0-9a-f]{12}$/;
const ACTIONS: readonly string[] = ['add', 'sync', 'remove'];

/**
 * POST …/volumes/:volumeId/relocate answers at once with an NDJSON stream of RelocateEvent lines
 * (copy progress at most every 250 ms) ending in `result` or `error`, so the controller's request
 * shows progress for as long as the copy takes.
 */
export async function relocateRoutes(app: FastifyInstance, frontend: AgentFrontend, log: Logger): Promise<void> {
  app.post<{ Params: { hostId: string; volumeId: string }; Body: RelocateBody }>(AGENT_PATHS.relocate(':hostId', ':volumeId'), async (req, reply) => {
    const { volumeId } = req.params;
    const b = req.body;
    if (!b || !ACTIONS.includes(b.action) || typeof b.nodeId !== 'string' || !NODE_ID.test(b.nodeId)) {
      throw Object.assign(new Error('relocate needs {action: add|sync|remove, nodeId: node-…}'), { statusCode: 400 });
    }
    log.info({ volumeId, ...b }, 'relocating a volume');
    const out = new PassThrough();
    const line = (e: RelocateEvent) => { if (!out.writableEnded) out.write(`${JSON.stringify(e)}\n`); };
    let last = 0;
    const t0 = Date.now();
    frontend.relocate(volumeId, b, (progress) => {
      const at = Date.now();
      if (at - last < 250 && progress.done < progress.total) return;
      last = at;
      line({ progress });
    }).then((result) => {
      log.info({ volumeId, ...b, ...result, ms: Date.now() - t0 }, 'volume relocated');
      line({ result });
    }, (e: Error) => {
      log.warn({ volumeId, ...b, err: e.message }, 'relocation failed');
      line({ error: e.message });
    }).finally(() => out.end());
    return reply.type('application/x-ndjson').send(out);
  });
}
