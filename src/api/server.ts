import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import type { Logger } from 'pino';
import { Fault, KumoError } from '../core/errors.js';
import type { Services } from '../services/index.js';
import { agentRoutes } from './agent-routes.js';
import { consoleRoutes } from './console.js';
import { isImageUpload } from './image-routes.js';
import { eventsWebsocket } from './events-ws.js';
import { problem } from './faults.js';
import { restTransport } from './rest/transport.js';
import { storageRoutes } from './storage-routes.js';
import { MAX_BODY, xmlrpcTransport } from './xmlrpc/transport.js';

const DRAIN_LIMIT = 64 << 20;

/** The controller's HTTP face: /RPC2, /v1 (+ OpenAPI and events), the agents' routes, /metrics. */
export async function buildServer(s: Services, log: Logger): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({ loggerInstance: log.child({ component: 'http' }, { level: 'warn' }) as FastifyInstance['log'], bodyLimit: MAX_BODY, return503OnClosing: true });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) req.log.error({ err: err.message, url: req.url }, 'unhandled error');
    const code = status === 413 || status === 415 || err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? Fault.INVALID_REQUEST : status < 500 ? Fault.INVALID_PARAMS : Fault.INTERNAL;
    const msg = status === 413 ? `request body larger than ${MAX_BODY} bytes` : status < 500 ? err.message : 'internal error';
    reply.code(status).type('application/problem+json').send({ ...problem(new KumoError(code, msg)), status });
  });
  // Fastify answers an oversized body with 413 and closes the socket at once, so a client still
  // sending (Python's xmlrpc.client writes the whole body before it reads) gets a broken pipe, not
  // the answer. Up to DRAIN_LIMIT, answer on a connection that stays open: Node reads and drops the
  // rest of the body, and the client then reads the 413. Beyond it, Fastify's close is cheaper.
  app.addHook('onRequest', async (req, reply) => {
    const len = Number(req.headers['content-length']);
    if (!(len > MAX_BODY && len <= DRAIN_LIMIT) || isImageUpload(req.method, req.url)) return;
    return reply.code(413).type('application/problem+json')
      .send({ ...problem(new KumoError(Fault.INVALID_REQUEST, `request body larger than ${MAX_BODY} bytes`)), status: 413 });
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'kumo REST API', version: '1', description: 'The HaaS operations of shared/haas-api.md over REST. Faults are application/problem+json with the XML-RPC fault code in `code`.' },
      components: { securitySchemes: { basic: { type: 'http', scheme: 'basic' }, bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ basic: [] }, { bearer: [] }],
    },
  });
  await app.register(websocket);
  await app.register(async (x) => xmlrpcTransport(x, s, log));
  await app.register(async (x) => restTransport(x, s, log));
  await app.register(async (x) => agentRoutes(x, s));
  await app.register(async (x) => storageRoutes(x, s));
  await app.register(async (x) => eventsWebsocket(x, s));
  await app.register(async (x) => consoleRoutes(x, s, log));
  app.get('/v1/openapi.json', { schema: { hide: true } as never }, async () => app.swagger());
  app.get('/metrics', { schema: { hide: true } as never }, async (_req, reply) => reply.type(s.metrics.registry.contentType).send(await s.metrics.registry.metrics()));
  app.get('/healthz', { schema: { hide: true } as never }, async () => ({ ok: true }));
  return app;
}
