import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Fault, KumoError } from '../core/errors.js';
import type { Services } from '../services/index.js';
import type { HostRow } from '../state/schema.js';
import { CONTROLLER_PATHS, type AppliedBody, type ExitBody, type HeartbeatBody, type RegisterBody } from '../agent/protocol.js';
import { toWire } from '../metadata/wire.js';
import { markApplied, onHosts, vmMetadata } from '../services/guest-metadata.js';
import { problem } from './faults.js';
import { imageRoutes } from './image-routes.js';

const bearer = (req: FastifyRequest) => /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';

/** The agents' side door: registration with the join token, then reports with the node token. */
export async function agentRoutes(app: FastifyInstance, s: Services): Promise<void> {
  const hostsOf = async (req: FastifyRequest): Promise<Map<string, HostRow> | null> => {
    const token = bearer(req);
    const hosts = token ? await s.hosts.byToken(token) : [];
    return hosts.length ? new Map(hosts.map((h) => [h.id, h])) : null;
  };
  app.post(CONTROLLER_PATHS.register, async (req, reply) => {
    try {
      return await s.hosts.register(bearer(req), req.body as RegisterBody);
    } catch (e) {
      if (e instanceof KumoError) return reply.code(e.code === Fault.AUTHORIZATION ? 401 : 400).send(problem(e));
      throw e;
    }
  });
  app.post(CONTROLLER_PATHS.heartbeat, async (req, reply) => {
    const mine = await hostsOf(req);
    if (!mine) return reply.code(401).send({ error: 'unknown node token; register again' });
    const body = req.body as HeartbeatBody;
    const reported = body.hosts.filter((h) => mine.has(h.hostId));
    await s.hosts.heartbeat(reported.map((h) => h.hostId));
    for (const h of reported) await s.reconciler.report(h.hostId, h.vms);
    return {};
  });
  app.post(CONTROLLER_PATHS.exit, async (req, reply) => {
    const mine = await hostsOf(req);
    const b = req.body as ExitBody;
    if (!mine?.has(b.hostId)) return reply.code(401).send({ error: 'this node token does not speak for that host' });
    await s.reconciler.vmGone(b.hostId, b.vmId, b.reason);
    return {};
  });
  type V = { Params: { vmId: string } };
  app.get<V>(CONTROLLER_PATHS.metadata(':vmId'), async (req, reply) => {
    const mine = await hostsOf(req);
    if (!mine) return reply.code(401).send({ error: 'unknown node token; register again' });
    const md = (await onHosts(s.db, new Set(mine.keys()), req.params.vmId)) ? await vmMetadata(s.db, req.params.vmId) : null;
    return md ? toWire(md) : reply.code(404).send({ error: `VM ${req.params.vmId} is not on this agent's hosts` });
  });
  app.post<V & { Body: AppliedBody }>(CONTROLLER_PATHS.configApplied(':vmId'), async (req, reply) => {
    const mine = await hostsOf(req);
    if (!mine) return reply.code(401).send({ error: 'unknown node token; register again' });
    const g = req.body?.generation;
    if (!Number.isSafeInteger(g) || g < 0) return reply.code(400).send({ error: 'generation must be a non-negative integer' });
    if (!(await onHosts(s.db, new Set(mine.keys()), req.params.vmId))) return reply.code(404).send({ error: `VM ${req.params.vmId} is not on this agent's hosts` });
    return { marked: await markApplied(s.db, req.params.vmId, g) };
  });
  await imageRoutes(app, s);
}
