import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fault } from '../../src/core/errors.js';
import { RequestEngine, type Handler, type RequestContext } from '../../src/requests/engine.js';
import { Events } from '../../src/services/events.js';
import { SYSTEM } from '../../src/services/principal.js';
import { now } from '../../src/state/db.js';
import { forEachDb, requestsEnded as allFinished, silent, until } from '../helpers/db.js';

const TENANT = 'tenant-000000000001';
const iso = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

// A controller that dies mid-request leaves its row `running` with a lease that stops being renewed.
forEachDb('request takeover', (env) => {
  const engines: RequestEngine[] = [];
  afterEach(async () => { for (const e of engines.splice(0)) await e.stop(); });

  async function engine(handlers: Record<string, Handler>, owner: string, opts: { leaseMs?: number; maxAttempts?: number } = {}) {
    const e = new RequestEngine(env.db, new Events(env.db), handlers, silent, { owner, pollMs: 20, ...opts });
    engines.push(e);
    await e.start();
    return e;
  }

  /** The rows a controller killed while running `id` leaves behind. */
  async function orphan(id: string, resource: string, owner: string, leaseExpires: string, attempts: number) {
    await env.db.k.insertInto('requests').values({
      id, tenant_id: TENANT, method: 'work', resource_id: resource, params: '{"size":3}', status: 'running', progress: 30,
      message: 'copying', result: '', error_code: null, error_message: '', owner, lease_expires: leaseExpires, attempts,
      checkpoint: '{"copied":1}', created_at: now(), started_at: now(), finished_at: null,
    }).execute();
    await env.db.k.insertInto('resource_locks').values({ resource_id: resource, request_id: id, owner, expires_at: leaseExpires }).execute();
  }

  const resumer = (seen: { resumed: boolean; checkpoint: unknown; owner: string }[], owner: string): Handler => async (ctx) => {
    seen.push({ resumed: ctx.resumed, checkpoint: ctx.checkpoint, owner });
    return { resumedAt: ctx.checkpoint };
  };

  it('resumes a request whose owner is gone once its lease has expired, and not before', async () => {
    const seen: { resumed: boolean; checkpoint: unknown; owner: string }[] = [];
    await orphan('req-a00000000001', 'vm-a00000000001', 'ctl-dead', iso(400), 1);
    const queued = await env.services.requests.submit(env.db.k, TENANT, 'work', 'vm-a00000000001', {});
    await engine({ work: resumer(seen, 'ctl-live') }, 'ctl-live', { leaseMs: 1000 });
    await sleep(200);
    assert.equal(seen.length, 0, 'a live lease is respected');
    assert.equal((await env.services.requests.get(SYSTEM, queued)).status, 'queued', 'the resource stays locked by the orphan');
    await allFinished(env.db, ['req-a00000000001', queued]);
    assert.deepEqual(seen, [
      { resumed: true, checkpoint: { copied: 1 }, owner: 'ctl-live' },
      { resumed: false, checkpoint: {}, owner: 'ctl-live' },
    ]);
    const r = await env.db.k.selectFrom('requests').selectAll().where('id', '=', 'req-a00000000001').executeTakeFirstOrThrow();
    assert.deepEqual([r.status, r.owner, r.attempts], ['succeeded', 'ctl-live', 2]);
  });

  it('fails a request with a message once it has been cut off maxAttempts times', async () => {
    await orphan('req-b00000000001', 'vm-b00000000001', 'ctl-dead', iso(-1000), 3);
    const seen: { resumed: boolean; checkpoint: unknown; owner: string }[] = [];
    await engine({ work: resumer(seen, 'ctl-live') }, 'ctl-live', { maxAttempts: 3 });
    await allFinished(env.db, ['req-b00000000001']);
    assert.equal(seen.length, 0);
    const r = await env.services.requests.get(SYSTEM, 'req-b00000000001');
    assert.equal(r.status, 'failed');
    assert.equal((r.error as { code: number }).code, Fault.INTERNAL);
    assert.match(r.message, /abandoned.*stopped.*3 times/);
    assert.equal((await env.db.k.selectFrom('resource_locks').selectAll().where('resource_id', '=', 'vm-b00000000001').execute()).length, 0);
  });

  it('resumes its own requests at once after a restart, without waiting for the lease', async () => {
    await orphan('req-c00000000001', 'vm-c00000000001', 'ctl-same', iso(60_000), 1);
    const seen: { resumed: boolean; checkpoint: unknown; owner: string }[] = [];
    await engine({ work: resumer(seen, 'ctl-same') }, 'ctl-same');
    await allFinished(env.db, ['req-c00000000001']);
    assert.deepEqual(seen, [{ resumed: true, checkpoint: { copied: 1 }, owner: 'ctl-same' }]);
  });

  it('lets exactly one of two controllers take over an expired request', async () => {
    await orphan('req-d00000000001', 'vm-d00000000001', 'ctl-dead', iso(-1000), 1);
    const seen: { resumed: boolean; checkpoint: unknown; owner: string }[] = [];
    const handler = (owner: string): Handler => async (ctx) => { await sleep(50); return resumer(seen, owner)(ctx); };
    await Promise.all([engine({ work: handler('ctl-x') }, 'ctl-x'), engine({ work: handler('ctl-y') }, 'ctl-y')]);
    await allFinished(env.db, ['req-d00000000001']);
    await sleep(100);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].resumed, true);
  });

  it('stops a runner that lost its lease and lets it record nothing', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let running: RequestContext | null = null;
    const id = await env.services.requests.submit(env.db.k, TENANT, 'work', 'vm-e00000000001', {});
    const old = await engine({ work: async (ctx) => { running = ctx; await gate; return {}; } }, 'ctl-old', { leaseMs: 600 });
    const ctx = await until('ctl-old to run it', async () => running);
    // Another controller took the request over (ctl-old was paused past its lease, say).
    await env.db.k.updateTable('requests').set({ owner: 'ctl-new', lease_expires: iso(60_000) }).where('id', '=', id).execute();
    await until('ctl-old to notice at its next renewal', async () => ctx.signal.aborted);
    release();
    await until('ctl-old to let go', async () => old.active === 0);
    const r = await env.db.k.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    assert.deepEqual([r.status, r.owner], ['running', 'ctl-new'], 'a runner that lost the lease must not record the end');
  });
  it('lets the leases of a stopped controller lapse, so another one resumes its request', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const seen: { owner: string; resumed: boolean }[] = [];
    const id = await env.services.requests.submit(env.db.k, TENANT, 'work', 'vm-f00000000001', {});
    const first = await engine({ work: async (ctx) => { seen.push({ owner: 'ctl-1', resumed: ctx.resumed }); await gate; return { by: 'ctl-1' }; } }, 'ctl-1', { leaseMs: 600 });
    await until('ctl-1 to run it', async () => seen.length === 1);
    await first.stop();
    try {
      await engine({ work: async (ctx) => { seen.push({ owner: 'ctl-2', resumed: ctx.resumed }); return { by: 'ctl-2' }; } }, 'ctl-2');
      await allFinished(env.db, [id]);
    } finally {
      release();
    }
    await sleep(50);
    assert.deepEqual(seen, [{ owner: 'ctl-1', resumed: false }, { owner: 'ctl-2', resumed: true }]);
    assert.deepEqual((await env.services.requests.get(SYSTEM, id)).result, { by: 'ctl-2' });
  });
});
