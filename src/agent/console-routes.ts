import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { ComputeDriver, ConsoleStream } from '../compute/driver.js';
import { CONSOLE_CLOSE, CONSOLE_MAX_TAIL, CONSOLE_PATHS, closeReason } from './console-client.js';

/** A client this far behind is dropped: console output must not pile up in the agent's memory. */
const MAX_BEHIND = 8 << 20;
const LIVENESS_MS = 2000;

/** One console stream per VM, shared by every client attached to it, so all see the same output
 * whatever the driver does with several streams. A client is catching up (its live output held
 * back) until the tail has been sent to it. */
interface Attachment { ready: Promise<ConsoleStream>; peers: Map<WebSocket, Buffer[] | null>; off?: () => void; timer?: NodeJS.Timeout }

const bytesOf = (d: RawData): Buffer => (Buffer.isBuffer(d) ? d : Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d));

function tailBytes(v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!/^\d{1,8}$/.test(v)) throw Object.assign(new Error(`bytes must be an integer from 0 to ${CONSOLE_MAX_TAIL}`), { statusCode: 400 });
  return Math.min(Number(v), CONSOLE_MAX_TAIL);
}

function send(ws: WebSocket, data: Buffer): void {
  if (ws.readyState !== ws.OPEN || data.length === 0) return;
  if (ws.bufferedAmount > MAX_BEHIND) ws.close(CONSOLE_CLOSE.tooSlow, 'console client too slow; output dropped');
  else ws.send(data, { binary: true });
}

/**
 * The agent's console endpoints: the kept tail, and a websocket bridging binary frames both ways
 * to the driver's console. They sit behind the agent's node-token hook like every agent route;
 * the websocket upgrade is routed through Fastify, so the hook sees it too.
 */
export async function consoleRoutes(app: FastifyInstance, driver: (hostId: string) => ComputeDriver): Promise<void> {
  if (!app.hasDecorator('websocketServer')) await app.register(websocket, { options: { maxPayload: 1 << 20 } });
  // An upgrade refused by an earlier onRequest hook (the node-token check) is answered, but
  // @fastify/websocket only frees sockets its own onRequest hook saw; the bare socket would then
  // hold the agent open on close. An upgrade that reaches onResponse was refused (accepted ones are hijacked).
  app.addHook('onResponse', async (req) => { if (req.raw.headers.upgrade) req.raw.socket.destroy(); });
  const vms = new Map<string, Attachment>();
  type P = { Params: { hostId: string; vmId: string }; Querystring: { bytes?: string; tail?: string } };

  app.get<P>(CONSOLE_PATHS.tail(':hostId', ':vmId'), async (req, reply) => {
    const tail = await driver(req.params.hostId).consoleTail(req.params.vmId, tailBytes(req.query.bytes, CONSOLE_MAX_TAIL));
    return reply.type('application/octet-stream').send(tail);
  });

  function leave(key: string, a: Attachment, ws: WebSocket): void {
    a.peers.delete(ws);
    if (a.peers.size || vms.get(key) !== a) return;
    vms.delete(key);
    a.ready.then((stream) => { a.off?.(); clearInterval(a.timer); stream.close(); }, () => {});
  }

  function open(d: ComputeDriver, key: string, vmId: string): Attachment {
    const a: Attachment = { ready: d.console(vmId), peers: new Map() };
    a.ready.then((stream) => {
      a.off = stream.onData((chunk) => { for (const [ws, backlog] of a.peers) backlog ? backlog.push(chunk) : send(ws, chunk); });
      // Drivers do not say when a console ends; a VM that stopped ends its clients' sessions.
      a.timer = setInterval(() => void d.list().then((running) => {
        if (running.some((v) => v.vmId === vmId)) return;
        for (const ws of a.peers.keys()) ws.close(1000, closeReason(`${vmId} stopped`));
      }, () => {}), LIVENESS_MS);
      a.timer.unref();
    }, () => { if (vms.get(key) === a) vms.delete(key); });
    return a;
  }

  app.get<P>(CONSOLE_PATHS.ws(':hostId', ':vmId'), { websocket: true }, async (ws, req) => {
    const { hostId, vmId } = req.params;
    // Input typed before the console is open is kept, not lost.
    const early: Buffer[] = [];
    let write = (b: Buffer) => { early.push(b); };
    ws.on('message', (data) => write(bytesOf(data)));
    let d: ComputeDriver;
    let tail: number;
    try {
      d = driver(hostId);
      tail = tailBytes(req.query.tail, 0);
    } catch (e) {
      ws.close((e as { statusCode?: number }).statusCode === 404 ? CONSOLE_CLOSE.notFound : 1008, closeReason((e as Error).message));
      return;
    }
    const key = `${hostId}/${vmId}`;
    let a = vms.get(key);
    if (!a) { a = open(d, key, vmId); vms.set(key, a); }
    const att = a;
    att.peers.set(ws, []);
    ws.on('close', () => leave(key, att, ws));
    let stream: ConsoleStream;
    try {
      stream = await att.ready;
    } catch (e) {
      ws.close(CONSOLE_CLOSE.notRunning, closeReason((e as Error).message));
      return;
    }
    write = (b) => stream.write(b);
    early.splice(0).forEach(write);
    const past = tail ? await d.consoleTail(vmId, tail).catch(() => Buffer.alloc(0)) : Buffer.alloc(0);
    const backlog = att.peers.get(ws);
    if (!backlog) return;
    send(ws, past);
    // What arrived while the tail was read is usually in the tail already; do not show it twice.
    const caught = Buffer.concat(backlog);
    if (!past.subarray(-caught.length || past.length).equals(caught)) send(ws, caught);
    att.peers.set(ws, null);
  });
}
