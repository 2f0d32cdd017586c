import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Fault, KumoError } from '../../core/errors.js';
import type { Services } from '../../services/index.js';
import type { Principal } from '../../services/principal.js';
import { authenticate } from '../auth.js';
import { toFault } from '../faults.js';
import { OPERATIONS, OPERATION_BY_NAME } from '../operations/index.js';
import { positionalArgs } from '../validate.js';
import { decodeCall, encodeFault, encodeResponse, type XmlRpcValue } from './codec.js';

export const MAX_BODY = 1 << 20;

/** XML-RPC at /RPC2: decode, authenticate, look the method up, validate, call the service. */
export async function xmlrpcTransport(app: FastifyInstance, s: Services, log: Logger): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_BODY }, (_req, body, done) => done(null, body));

  app.post('/RPC2', async (req, reply) => {
    const t0 = process.hrtime.bigint();
    const principal = await authenticate(s, req);
    if (!principal) return reply.code(401).header('www-authenticate', 'Basic realm="kumo"').type('text/plain').send('API user and key required (HTTP Basic)\n');
    let method = '?';
    let xml: string;
    try {
      if (typeof req.body !== 'string' || req.body.length === 0) throw new KumoError(Fault.INVALID_REQUEST, 'empty body: expected an XML-RPC methodCall');
      const call = decodeCall(req.body);
      method = call.method;
      xml = encodeResponse(await dispatch(s, principal, call.method, call.params) as XmlRpcValue);
      s.metrics.apiSeconds.observe({ transport: 'xmlrpc', method, outcome: 'ok' }, Number(process.hrtime.bigint() - t0) / 1e9);
    } catch (e) {
      const f = toFault(e, log, { transport: 'xmlrpc', method, user: principal.userName });
      xml = encodeFault(f.code, f.message);
      s.metrics.faults.inc({ transport: 'xmlrpc', code: String(f.code) });
      s.metrics.apiSeconds.observe({ transport: 'xmlrpc', method: OPERATION_BY_NAME.has(method) ? method : 'unknown', outcome: 'fault' }, Number(process.hrtime.bigint() - t0) / 1e9);
      log.debug({ method, code: f.code, user: principal.userName }, f.message);
    }
    return reply.type('text/xml; charset=utf-8').send(xml);
  });
}

async function dispatch(s: Services, principal: Principal, method: string, params: XmlRpcValue[]): Promise<unknown> {
  if (method === 'system.listMethods') return OPERATIONS.map((o) => o.name).sort();
  if (method === 'system.methodHelp') {
    const o = OPERATION_BY_NAME.get(String(params[0]));
    if (!o) throw new KumoError(Fault.NOT_FOUND, `no method ${String(params[0]).slice(0, 64)}`);
    return `${o.name}(${o.params.map((p) => p.optional ? `[${p.name}]` : p.name).join(', ')}): ${o.summary}`;
  }
  const op = OPERATION_BY_NAME.get(method);
  if (!op) throw new KumoError(Fault.METHOD_NOT_FOUND, `no method ${JSON.stringify(method.slice(0, 64))}; system.listMethods lists them`);
  return op.run(s, principal, positionalArgs(op, params));
}
