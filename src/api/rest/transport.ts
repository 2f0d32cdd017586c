import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Services } from '../../services/index.js';
import { authenticate, unauthenticated } from '../auth.js';
import { problem, toFault } from '../faults.js';
import { OPERATIONS, type Operation } from '../operations/index.js';
import { namedArgs } from '../validate.js';

const pathParams = (o: Operation) => new Set([...o.rest.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]));

/** Path and query values arrive as text: turn them into the integers and booleans the schema asks for. */
function fromText(schema: TSchema, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  if (schema.type === 'integer' && /^-?\d{1,15}$/.test(v)) return Number(v);
  if (schema.type === 'boolean' && (v === 'true' || v === 'false')) return v === 'true';
  return v;
}

/** Where each of an operation's parameters comes from in REST: `inPath` and `rest` (the others) are
 * worked out once per route (see restTransport). */
function gather(o: Operation, inPath: Set<string>, rest: Operation['params'], req: FastifyRequest): Record<string, unknown> {
  const params = req.params as Record<string, string>;
  const query = (req.query ?? {}) as Record<string, unknown>;
  const source = o.rest.method === 'GET' ? query : ((req.body ?? {}) as Record<string, unknown>);
  const named: Record<string, unknown> = {};
  for (const p of o.params) if (inPath.has(p.name)) named[p.name] = fromText(p.schema, params[p.name]);
  // A single struct parameter is the whole body (or query); otherwise each parameter is a member.
  if (rest.length === 1 && rest[0].schema.type === 'object') {
    const props = (rest[0].schema.properties ?? {}) as Record<string, TSchema>;
    named[rest[0].name] = o.rest.method === 'GET'
      ? (Object.keys(query).length ? Object.fromEntries(Object.entries(query).map(([k, v]) => [k, props[k] ? fromText(props[k], v) : v])) : undefined)
      : source;
  } else {
    for (const p of rest) named[p.name] = o.rest.method === 'GET' ? fromText(p.schema, source[p.name]) : source[p.name];
  }
  return named;
}

function routeSchema(o: Operation) {
  const inPath = pathParams(o);
  const rest = o.params.filter((p) => !inPath.has(p.name));
  const obj = (ps: typeof rest) => ({ type: 'object', properties: Object.fromEntries(ps.map((p) => [p.name, p.schema])), required: ps.filter((p) => !p.optional).map((p) => p.name) });
  const single = rest.length === 1 && rest[0].schema.type === 'object' ? rest[0].schema : null;
  const status = o.rest.status ?? 200;
  return {
    operationId: o.name, summary: o.summary, tags: [o.tag],
    description: `XML-RPC: ${o.name}(${o.params.map((p) => p.name).join(', ')})${o.admin ? ' — administrators only' : ''}`,
    ...(inPath.size ? { params: obj(o.params.filter((p) => inPath.has(p.name))) } : {}),
    ...(rest.length && o.rest.method === 'GET' ? { querystring: single ?? obj(rest) } : {}),
    ...(rest.length && o.rest.method !== 'GET' ? { body: single ?? obj(rest) } : {}),
    response: { [status]: status === 204 ? { type: 'null', description: 'done' } : o.rest.wrap ? { type: 'object', properties: { [o.rest.wrap]: o.result } } : o.result },
  };
}

/** REST at /v1: the same operations as XML-RPC, JSON in and out, problem+json for faults. */
export async function restTransport(app: FastifyInstance, s: Services, log: Logger): Promise<void> {
  // Validation is ours (api/validate.ts) so both transports give the same faults; the schemas
  // here document the API in the OpenAPI description.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // `curl -X POST -H 'content-type: application/json' …/power-on` sends no body: read it as {}.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, {});
    try { done(null, JSON.parse(body as string)); } catch (e) {
      done(Object.assign(new Error(`malformed JSON: ${(e as Error).message}`), { statusCode: 400 }), undefined);
    }
  });
  for (const o of OPERATIONS) {
    const inPath = pathParams(o);
    const rest = o.params.filter((p) => !inPath.has(p.name));
    app.route({
      method: o.rest.method, url: o.rest.path.replace(/\{(\w+)\}/g, ':$1'), schema: routeSchema(o),
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        const t0 = process.hrtime.bigint();
        const principal = await authenticate(s, req);
        if (!principal) {
          return unauthenticated(reply);
        }
        try {
          const result = await o.run(s, principal, namedArgs(o, gather(o, inPath, rest, req)));
          s.metrics.apiSeconds.observe({ transport: 'rest', method: o.name, outcome: 'ok' }, Number(process.hrtime.bigint() - t0) / 1e9);
          const status = o.rest.status ?? 200;
          if (status === 202) reply.header('location', `/v1/requests/${String(result)}`);
          if (status === 204) return reply.code(204).send();
          return reply.code(status).send(o.rest.wrap ? { [o.rest.wrap]: result } : result);
        } catch (e) {
          const f = toFault(e, log, { transport: 'rest', method: o.name, user: principal.userName });
          s.metrics.faults.inc({ transport: 'rest', code: String(f.code) });
          s.metrics.apiSeconds.observe({ transport: 'rest', method: o.name, outcome: 'fault' }, Number(process.hrtime.bigint() - t0) / 1e9);
          const body = problem(f);
          return reply.code(body.status).type('application/problem+json').send(body);
        }
      },
    });
  }
}
