import type { FastifyInstance } from 'fastify';
import type { Services } from '../services/index.js';
import { visible } from '../services/principal.js';
import { authenticate } from './auth.js';

/** `/v1/events`: a websocket of the events the caller may see, optionally replayed from `?since=SEQ`.
 * Browsers cannot set headers on websockets, so `?key=` is accepted too. */
export async function eventsWebsocket(app: FastifyInstance, s: Services): Promise<void> {
  app.get('/v1/events', { websocket: true, schema: { hide: true } as never }, async (socket, req) => {
    const q = req.query as { key?: string; since?: string };
    const principal = (await authenticate(s, req)) ?? (q.key ? await s.tenants.authenticate(null, q.key) : null);
    if (!principal) { socket.close(4401, 'API user and key required'); return; }
    const send = (e: { seq: number; tenantId: string | null }) => {
      // Events of no tenant (hosts, agents) are the operator's business, not every tenant's.
      const maysee = e.tenantId === null ? principal.admin : visible(principal, e.tenantId);
      if (maysee && socket.readyState === socket.OPEN) socket.send(JSON.stringify(e));
    };
    const buffered: Parameters<typeof send>[0][] = [];
    let live = false;
    const off = s.events.subscribe((e) => (live ? send(e) : buffered.push(e)));
    socket.on('close', off);
    let last = 0;
    if (q.since !== undefined && /^\d+$/.test(q.since)) for (const e of await s.events.since(Number(q.since))) { send(e); last = e.seq; }
    for (const e of buffered) if (e.seq > last) send(e);
    live = true;
  });
}
