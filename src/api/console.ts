import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { CONSOLE_CLOSE, CONSOLE_MAX_TAIL, closeReason } from '../agent/console-client.js';
import { Fault, faultName, invalidParams } from '../core/errors.js';
import { consoles } from '../services/console.js';
import type { Services } from '../services/index.js';
import { authenticate, unauthenticated } from './auth.js';
import { problem, toFault } from './faults.js';

/** What a websocket client sees before live output unless it asks (`?tail=`): enough for context,
 * not a megabyte scrolling past. */
const DEFAULT_WS_TAIL = 64 << 10;
const MAX_BEHIND = 8 << 20;

function bytesParam(v: string | undefined, name: string, fallback: number, min = 0): number {
  if (v === undefined || v === '') return fallback;
  if (!/^\d{1,8}$/.test(v) || Number(v) < min || Number(v) > CONSOLE_MAX_TAIL) throw invalidParams(`${name} must be an integer from ${min} to ${CONSOLE_MAX_TAIL}`);
  return Number(v);
}

const closeCode = (code: number) => (code === Fault.NOT_FOUND ? CONSOLE_CLOSE.notFound : code === Fault.INVALID_STATE ? CONSOLE_CLOSE.notRunning : 1011);

/**
 * The console beyond the operations table: the raw tail for curl, and the live console websocket
 * (for `kumo vm console` and the web console), which pipes frames to the VM's agent both ways.
 */
export async function consoleRoutes(app: FastifyInstance, s: Services, log: Logger): Promise<void> {
  type P = { Params: { vmId: string }; Querystring: { bytes?: string; tail?: string; key?: string } };

  app.get<P>('/v1/vms/:vmId/console/raw', {
    schema: {
      operationId: 'getVmConsoleRaw', tags: ['VMs'], summary: 'The last output of the VM\'s serial console, exact bytes as text/plain (kumo addition)',
      description: 'As getVmConsole, without any replacement: for curl and terminals. Faults are application/problem+json.',
      params: { type: 'object', properties: { vmId: { type: 'string' } }, required: ['vmId'] },
      querystring: { type: 'object', properties: { bytes: { type: 'integer', minimum: 1, maximum: CONSOLE_MAX_TAIL } } },
      response: { 200: { description: 'console output', content: { 'text/plain': { schema: { type: 'string' } } } } },
    } as never,
  }, async (req, reply) => {
    const principal = await authenticate(s, req);
    if (!principal) {
      return unauthenticated(reply);
    }
    try {
      const tail = await consoles(s).tail(principal, req.params.vmId, bytesParam(req.query.bytes, 'bytes', CONSOLE_MAX_TAIL, 1));
      return reply.type('text/plain; charset=utf-8').send(tail);
    } catch (e) {
      const body = problem(toFault(e, log, { transport: 'rest', method: 'getVmConsoleRaw', user: principal.userName }));
      return reply.code(body.status).type('application/problem+json').send(body);
    }
  });

  app.get<P>('/v1/vms/:vmId/console/ws', { websocket: true }, async (client, req) => {
    // Keystrokes sent while the agent's socket opens are kept, not lost.
    const early: Buffer[] = [];
    let toAgent = (b: Buffer) => { early.push(b); };
    client.on('message', (d: RawData) => toAgent(Buffer.isBuffer(d) ? d : Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d)));
    let agent: WebSocket;
    try {
      agent = await connect(s, req, log);
    } catch (e) {
      const c = e as Closing;
      client.close(c.close, closeReason(c.reason));
      return;
    }
    if (client.readyState !== client.OPEN) { agent.terminate(); return; }
    // Every listener is in place before the first frame can arrive, so the tail is never missed.
    let opened = false;
    agent.on('open', () => {
      opened = true;
      toAgent = (b) => { if (agent.readyState === agent.OPEN) agent.send(b, { binary: true }); };
      early.splice(0).forEach(toAgent);
    });
    agent.on('message', (d: RawData) => {
      if (client.readyState !== client.OPEN) return;
      // A reader that cannot keep up is let go rather than buffered for without bound.
      if (client.bufferedAmount > MAX_BEHIND) client.close(CONSOLE_CLOSE.tooSlow, 'console client too slow; output dropped');
      else client.send(d as Buffer, { binary: true });
    });
    agent.on('unexpected-response', (_r, res) => { log.warn({ vmId: req.params.vmId, status: res.statusCode }, 'the agent refused a console'); agent.terminate(); });
    agent.on('error', (e) => log.warn({ vmId: req.params.vmId, err: e.message }, 'console connection to the agent failed'));
    agent.on('close', (code, reason) => {
      // 1005/1006 (no code: the connection failed or broke) cannot be passed on; say what happened.
      if (code === 1000 || (code >= 4000 && code < 5000)) return client.close(code, reason.toString());
      client.close(CONSOLE_CLOSE.unreachable, opened ? 'the connection to the VM\'s host was lost' : `the console of ${req.params.vmId} cannot be reached: its host does not answer`);
    });
    client.on('close', () => (agent.readyState === agent.CONNECTING ? agent.terminate() : agent.close()));
  });
}

interface Closing { close: number; reason: string }

/** Authenticates, scopes and starts the agent's socket; rejects with what the client is closed with. */
async function connect(s: Services, req: FastifyRequest<{ Params: { vmId: string }; Querystring: { tail?: string; key?: string } }>, log: Logger): Promise<WebSocket> {
  // Browsers cannot set headers on websockets, hence `?key=` as for /v1/events.
  const principal = (await authenticate(s, req)) ?? (req.query.key ? await s.tenants.authenticate(null, req.query.key) : null);
  if (!principal) throw { close: CONSOLE_CLOSE.unauthenticated, reason: 'API user and key required' } satisfies Closing;
  try {
    return await consoles(s).attach(principal, req.params.vmId, bytesParam(req.query.tail, 'tail', DEFAULT_WS_TAIL));
  } catch (e) {
    const f = toFault(e, log, { transport: 'websocket', method: 'console', user: principal.userName });
    throw { close: closeCode(f.code), reason: `${faultName(f.code)} (${f.code}): ${f.message}` } satisfies Closing;
  }
}
