import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fault, KumoError } from '../../src/core/errors.js';
import { RequestEngine, type Handler } from '../../src/requests/engine.js';
import { Events } from '../../src/services/events.js';
import { SYSTEM } from '../../src/services/principal.js';
import { openDb, type Db } from '../../src/state/db.js';
import { forEachDb, requestsEnded as allFinished, silent, until } from '../helpers/db.js';

const TENANT = 'tenant-000000000001';

/** What handlers saw: one entry per run, with wall-clock start and end. */
interface Run { owner: string; requestId: string; resource: string; start: number; end: number }

function recorder(owner: string, runs: Run[], ms: () => number): Handler {
  return async (ctx) => {
    const start = Date.now();
    await sleep(ms());
    runs.push({ owner, requestId: ctx.req.id, resource: ctx.req.resource_id, start, end: Date.now() });
    return { owner };
  };
}

function assertNoOverlap(runs: Run[]): void {
  const byResource = new Map<string, Run[]>();
  for (const r of runs) byResource.set(r.resource, [...(byResource.get(r.resource) ?? []), r]);
  for (const [resource, rs] of byResource) {
    rs.sort((a, b) => a.start - b.start);
    for (let i = 1; i < rs.length; i++) {
      assert.ok(rs[i].start >= rs[i - 1].end, `${resource}: ${rs[i].requestId} started before ${rs[i - 1].requestId} ended`);
    }
  }
}

forEachDb('request engine', (env) => {
  const engines: RequestEngine[] = [];
  const extraDbs: Db[] = [];
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.stop();
    for (const d of extraDbs.splice(0)) await d.close();
  });

  const submit = (resource: string, method = 'work', params: Record<string, unknown> = {}) =>
    env.services.requests.submit(env.db.k, TENANT, method, resource, params);

  async function engine(handlers: Record<string, Handler>, owner = 'ctl-1', db = env.db, opts: { leaseMs?: number; maxAttempts?: number; concurrency?: number } = {}) {
    const e = new RequestEngine(db, new Events(db), handlers, silent, { owner, pollMs: 20, ...opts });
    engines.push(e);
    await e.start();
    return e;
  }

  it('runs two queued requests on one resource one after the other, other resources alongside', async () => {
    const runs: Run[] = [];
    const ids = [await submit('vm-aaaaaaaaaaaa'), await submit('vm-aaaaaaaaaaaa'), await submit('vm-bbbbbbbbbbbb')];
    await engine({ work: recorder('ctl-1', runs, () => 100) });
    await allFinished(env.db, ids);
    const [first, second, other] = ids.map((id) => runs.find((r) => r.requestId === id)!);
    assert.ok(second.start >= first.end, 'the second request on a resource waits for the first');
    assert.ok(other.start < first.end, 'a request on another resource does not wait');
    const rows = await env.db.k.selectFrom('requests').selectAll().where('id', 'in', ids).orderBy('seq').execute();
    assert.deepEqual(rows.map((r) => [r.status, r.progress, r.attempts, r.owner]), Array(3).fill(['succeeded', 100, 1, 'ctl-1']));
    assert.deepEqual(JSON.parse(rows[0].result), { owner: 'ctl-1' });
    assert.equal((await env.db.k.selectFrom('resource_locks').selectAll().execute()).length, 0);
  });

  it('stores progress and message while a request runs, and its result when it ends', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const id = await submit('vm-cccccccccccc', 'work', { n: 7 });
    await engine({
      work: async (ctx) => {
        await ctx.progress(42, `halfway through ${String(ctx.params.n)}`);
        await ctx.saveCheckpoint({ step: 2 });
        await gate;
        return { done: ctx.params.n };
      },
    });
    try {
      await until('the checkpoint', async () =>
        (await env.db.k.selectFrom('requests').select('checkpoint').where('id', '=', id).executeTakeFirstOrThrow()).checkpoint === '{"step":2}');
      const running = await env.services.requests.get(SYSTEM, id);
      assert.deepEqual([running.status, running.progress, running.message], ['running', 42, 'halfway through 7']);
      assert.notEqual(running.startedAt, '');
      assert.equal(running.finishedAt, '');
    } finally {
      release();
    }
    await allFinished(env.db, [id]);
    const done = await env.services.requests.get(SYSTEM, id);
    assert.deepEqual([done.status, done.progress, done.result, done.error], ['succeeded', 100, { done: 7 }, {}]);
  });

  it('ends a request failed with the code of the KumoError its handler threw', async () => {
    const ids = [await submit('vm-dddddddddddd', 'full'), await submit('vm-dddddddddddd', 'bug'), await submit('vm-dddddddddddd', 'nosuch')];
    await engine({
      full: async () => { throw new KumoError(Fault.NO_CAPACITY, 'no host has 8 GiB free'); },
      bug: async () => { throw new TypeError('x is undefined'); },
    });
    await allFinished(env.db, ids);
    const [full, bug, nosuch] = await Promise.all(ids.map((id) => env.services.requests.get(SYSTEM, id)));
    assert.deepEqual([full.status, full.error, full.message], ['failed', { code: Fault.NO_CAPACITY, message: 'no host has 8 GiB free' }, 'no host has 8 GiB free']);
    // A bug is reported as INTERNAL with a log reference, never a stack trace.
    assert.equal(bug.status, 'failed');
    assert.deepEqual(bug.error, { code: Fault.INTERNAL, message: `x is undefined (log reference ${ids[1]})` });
    assert.equal((nosuch.error as { code: number }).code, Fault.INTERNAL);
    assert.equal((await env.db.k.selectFrom('resource_locks').selectAll().execute()).length, 0);
  });

  it('drops a cancelled queued request without running it', async () => {
    const runs: Run[] = [];
    const first = await submit('vm-eeeeeeeeeeee');
    const second = await submit('vm-eeeeeeeeeeee');
    await engine({ work: recorder('ctl-1', runs, () => 150) });
    await until('first to run', async () => (await env.services.requests.get(SYSTEM, first)).status === 'running');
    await env.services.requests.cancel(SYSTEM, second);
    await assert.rejects(env.services.requests.cancel(SYSTEM, first), (e: KumoError) => e.code === Fault.CONFLICT);
    await allFinished(env.db, [first, second]);
    assert.deepEqual(runs.map((r) => r.requestId), [first]);
    assert.equal((await env.services.requests.get(SYSTEM, second)).status, 'cancelled');
  });

  if (env.dialect === 'postgres') {
    it('two controllers on one PostgreSQL run every request exactly once, one at a time per resource', async () => {
      const runs: Run[] = [];
      const second = await openDb(env.url);
      extraDbs.push(second);
      const resources = ['vm-100000000000', 'vm-200000000000', 'vm-300000000000', 'vm-400000000000', 'vm-500000000000', 'vm-600000000000'];
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) ids.push(await submit(resources[i % resources.length]));
      await Promise.all([
        // Each may hold 3 of the 6 resources at once, so neither can run everything alone.
        engine({ work: recorder('ctl-a', runs, () => 3 + Math.random() * 8) }, 'ctl-a', env.db, { concurrency: 3 }),
        engine({ work: recorder('ctl-b', runs, () => 3 + Math.random() * 8) }, 'ctl-b', second, { concurrency: 3 }),
      ]);
      await allFinished(env.db, ids);
      assert.deepEqual(runs.map((r) => r.requestId).sort(), [...ids].sort(), 'every request ran exactly once');
      assertNoOverlap(runs);
      const rows = await env.db.k.selectFrom('requests').select(['id', 'status', 'owner', 'attempts']).where('id', 'in', ids).execute();
      for (const r of rows) {
        assert.equal(r.status, 'succeeded');
        assert.equal(r.attempts, 1);
        assert.equal(r.owner, runs.find((x) => x.requestId === r.id)!.owner, 'the row names the controller that ran it');
      }
      const owners = new Set(runs.map((r) => r.owner));
      assert.deepEqual([...owners].sort(), ['ctl-a', 'ctl-b'], 'both controllers took part');
    });
  }
});
