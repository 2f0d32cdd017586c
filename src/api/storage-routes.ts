import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Fault, KumoError, invalidParams } from '../core/errors.js';
import { MAX_BATCH } from '../services/blockmaps.js';
import type { Services } from '../services/index.js';
import { LeaseHeld, LeaseLost } from '../storage/frontend/map.js';
import { STORAGE_PATHS } from '../storage/wire.js';
import { authenticate } from './auth.js';
import { httpStatus, problem } from './faults.js';

/**
 * The storage side doors (storage/wire.ts): storage nodes register and heartbeat; frontends make
 * their MapSource calls. Thin: bodies are checked here, every rule lives in services/blockmaps.ts
 * and services/storage-nodes.ts.
 */

/** `kumo vol export` sessions hold leases under this name when an admin API key speaks. */
export const EXPORT_HOLDER = /^export:[A-Za-z0-9_-]{1,64}$/;

const Holder = Type.String({ minLength: 1, maxLength: 200 });
const Epoch = Type.Integer({ minimum: 0 });
const Id = Type.String({ minLength: 1, maxLength: 64 });
const Blocks = Type.Array(Type.Integer({ minimum: 0 }), { maxItems: MAX_BATCH });
const Bytes = Type.Integer({ minimum: 0 });
const Address = { host: Type.String({ minLength: 1, maxLength: 255 }), port: Type.Integer({ minimum: 1, maximum: 65535 }), totalBytes: Bytes, freeBytes: Bytes };

const RegisterSchema = Type.Object({ name: Type.String({ maxLength: 63 }), zone: Type.String({ maxLength: 63 }), ...Address });
const HeartbeatSchema = Type.Object({ nodeId: Id, ...Address });
const OpenSchema = Type.Object({ holder: Holder });
const LeaseSchema = Type.Object({ holder: Holder, epoch: Epoch });
const BlocksSchema = Type.Object({ holder: Holder, epoch: Epoch, blocks: Blocks });
const UpdateSchema = Type.Object({
  holder: Holder, epoch: Epoch,
  changes: Type.Array(Type.Object({
    block: Type.Integer({ minimum: 0 }), nodeId: Id,
    state: Type.Union([Type.Literal('in-sync'), Type.Literal('syncing'), Type.Literal('out-of-sync'), Type.Null()]),
  }), { maxItems: MAX_BATCH }),
});
const LocationSchema = Type.Object({ holder: Holder, epoch: Epoch, nodeId: Id });
const HandoverSchema = Type.Object({ holder: Holder, epoch: Epoch, toHolder: Holder });

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();
function check<T extends TSchema>(schema: T, body: unknown): Static<T> {
  let c = checks.get(schema);
  if (!c) checks.set(schema, c = TypeCompiler.Compile(schema));
  if (c.Check(body)) return body as Static<T>;
  const e = c.Errors(body).First();
  throw invalidParams(`body${e ? `${e.path.replaceAll('/', '.')}: ${e.message.toLowerCase()}` : ' must be a JSON object'}`);
}

const bearer = (req: FastifyRequest) => /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';

function sendError(reply: FastifyReply, e: unknown, authStatus = 403) {
  if (e instanceof LeaseHeld || e instanceof LeaseLost) {
    const held = e instanceof LeaseHeld;
    return reply.code(409).type('application/problem+json').send({
      ...problem(new KumoError(Fault.CONFLICT, e.message)), lease: held ? 'held' : 'lost', ...(held ? { holder: e.holder } : {}),
    });
  }
  if (e instanceof KumoError) {
    const status = e.code === Fault.AUTHORIZATION ? authStatus : httpStatus(e.code);
    return reply.code(status).type('application/problem+json').send({ ...problem(e), status });
  }
  throw e;
}

const unauthorized = (reply: FastifyReply, detail: string) => sendError(reply, new KumoError(Fault.AUTHORIZATION, detail), 401);

export async function storageRoutes(app: FastifyInstance, s: Services): Promise<void> {
  app.post(STORAGE_PATHS.register, async (req, reply) => {
    try {
      return await s.storageNodes.register(bearer(req), check(RegisterSchema, req.body));
    } catch (e) { return sendError(reply, e, 401); }
  });

  app.post(STORAGE_PATHS.heartbeat, async (req, reply) => {
    try {
      await s.storageNodes.heartbeat(bearer(req), check(HeartbeatSchema, req.body));
      return {};
    } catch (e) { return sendError(reply, e, 401); }
  });

  /**
   * Who may hold a lease as `holder`: an agent (its node token) for one of its own hosts, or an
   * administrator (API key) for an `export:` session. null when allowed, else the HTTP status.
   */
  const refusal = async (req: FastifyRequest, holder: string): Promise<{ status: 401 | 403; detail: string } | null> => {
    const token = bearer(req);
    if (token) {
      const hosts = await s.hosts.byToken(token);
      if (hosts.length) return hosts.some((h) => h.id === holder) ? null : { status: 403, detail: `this node token does not speak for ${holder.slice(0, 80)}` };
    }
    const p = await authenticate(s, req);
    if (!p) return { status: 401, detail: 'an agent\'s node token or an administrator\'s API key is required' };
    if (!p.admin) return { status: 403, detail: 'volume exports are for administrators' };
    return EXPORT_HOLDER.test(holder) ? null : { status: 403, detail: 'an API key holds leases only as export:<id>' };
  };

  // Bodies of up to MAX_BATCH entries are larger than the API's 1 MiB; the route may take them.
  const frontend = <T extends TSchema & { static: { holder: string } }>(path: (volumeId: string) => string, schema: T,
    run: (volumeId: string, b: Static<T>) => Promise<unknown>) =>
    app.post(path(':volumeId'), { bodyLimit: 16 << 20 }, async (req, reply) => {
      try {
        if (!req.headers.authorization) return unauthorized(reply, 'an agent\'s node token or an administrator\'s API key is required');
        const b = check(schema, req.body);
        const no = await refusal(req, b.holder);
        if (no) return sendError(reply, new KumoError(Fault.AUTHORIZATION, no.detail), no.status);
        const volumeId = (req.params as { volumeId: string }).volumeId;
        if (volumeId.length > 64) throw invalidParams('not a volume id');
        return (await run(volumeId, b)) ?? {};
      } catch (e) { return sendError(reply, e); }
    });

  const m = s.blockMaps;
  frontend(STORAGE_PATHS.open, OpenSchema, (v, b) => m.open(v, b.holder));
  frontend(STORAGE_PATHS.renew, LeaseSchema, (v, b) => m.renew(v, b.holder, b.epoch));
  frontend(STORAGE_PATHS.allocate, BlocksSchema, async (v, b) => ({ blocks: await m.allocate(v, b.holder, b.epoch, b.blocks) }));
  frontend(STORAGE_PATHS.update, UpdateSchema, (v, b) => m.update(v, b.holder, b.epoch, b.changes));
  frontend(STORAGE_PATHS.discard, BlocksSchema, (v, b) => m.discard(v, b.holder, b.epoch, b.blocks));
  frontend(STORAGE_PATHS.addLocation, LocationSchema, (v, b) => m.addLocation(v, b.holder, b.epoch, b.nodeId));
  frontend(STORAGE_PATHS.removeLocation, LocationSchema, (v, b) => m.removeLocation(v, b.holder, b.epoch, b.nodeId));
  frontend(STORAGE_PATHS.release, LeaseSchema, (v, b) => m.release(v, b.holder, b.epoch));
  frontend(STORAGE_PATHS.handover, HandoverSchema, (v, b) => m.handover(v, b.holder, b.epoch, b.toHolder));
  frontend(STORAGE_PATHS.lease, OpenSchema, async (v, b) => ({ epoch: await m.heldEpoch(v, b.holder) }));
}
