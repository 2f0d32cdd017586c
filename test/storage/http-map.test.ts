/**
 * HttpMapSource against the controller's real storage routes (`kumo up`: controller + storage
 * node), as `kumo vol export` uses it: an admin API key, holders `export:<id>`. Then what it does
 * when the controller cannot be reached (a small fastify app that drops connections).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import Fastify from 'fastify';
import { Fault, KumoError } from '../../src/core/errors.js';
import { ControllerUnreachable, HttpMapSource, MAX_CALL_ENTRIES, type MapAuth } from '../../src/storage/frontend/http-map.js';
import { LeaseHeld, LeaseLost } from '../../src/storage/frontend/map.js';
import { STORAGE_PATHS } from '../../src/storage/wire.js';
import { Cloud, rest } from '../helpers/cloud.js';

const isFault = (code: number, re: RegExp) => (e: unknown) => e instanceof KumoError && e.code === code && re.test(e.message);

describe('HttpMapSource with the controller', () => {
  let cloud: Cloud;
  let n = 0;
  before(async () => { cloud = await Cloud.up(['--no-tiny-image']); });
  after(() => cloud?.destroy());

  const admin = (): MapAuth => ({ bearer: cloud.creds.admin.key });
  const source = (holder = `export:t${++n}`, auth = admin()) => new HttpMapSource({ controllerUrl: cloud.url, holder, auth });
  async function volume(sizeGiB = 1): Promise<string> {
    const r = await rest(cloud, 'tenant', 'POST', '/volumes', { sizeGiB });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return (r.body as { volumeId: string }).volumeId;
  }

  it('holds the lease from open to release; another holder meanwhile gets LeaseHeld, an older epoch LeaseLost', async () => {
    const vol = await volume();
    const a = source();
    const b = source();
    const map = await a.open(vol);
    assert.equal(map.volumeId, vol);
    assert.equal(map.sizeBytes, 2 ** 30);
    assert.equal(map.locations.length, 1);
    assert.deepEqual(map.nodes.map((x) => x.nodeId), map.locations);
    assert.ok(map.nodes[0].port > 0 && map.nodes[0].token);
    assert.deepEqual(map.blocks, []);

    await assert.rejects(b.open(vol), (e) => e instanceof LeaseHeld && e.volumeId === vol && e.holder === a.holder);
    await a.renew(vol, map.epoch);
    const [e0, e1] = await a.allocate(vol, map.epoch, [0, 1]);
    assert.equal(e0.block, 0);
    assert.deepEqual(e0.replicas, [{ nodeId: map.locations[0], state: 'in-sync' }]);
    assert.notEqual(e0.objectId, e1.objectId);
    // Idempotent: allocated blocks come back as they are.
    assert.deepEqual(await a.allocate(vol, map.epoch, [0]), [e0]);
    await a.update(vol, map.epoch, [{ block: 0, nodeId: map.locations[0], state: 'out-of-sync' }]);
    await a.discard(vol, map.epoch, [1]);

    // The same holder opening again (a restarted frontend) fences its older session.
    const again = await a.open(vol);
    assert.equal(again.epoch, map.epoch + 1);
    assert.deepEqual(again.blocks, [{ ...e0, replicas: [{ nodeId: map.locations[0], state: 'out-of-sync' }] }]);
    await assert.rejects(a.renew(vol, map.epoch), (e) => e instanceof LeaseLost && e.volumeId === vol && e.epoch === map.epoch);
    await assert.rejects(a.allocate(vol, map.epoch, [2]), LeaseLost);

    await a.release(vol, again.epoch);
    const taken = await b.open(vol);
    assert.ok(taken.epoch > again.epoch);
    await b.release(vol, taken.epoch);
  });

  it('splits allocate, update and discard of more entries than one body may carry into several calls', async () => {
    // 64 GiB of 4 MiB blocks: 16384 blocks, two calls' worth.
    const vol = await volume(64);
    const a = source();
    const map = await a.open(vol);
    const count = map.sizeBytes / map.blockSize;
    assert.equal(count, 16384);
    assert.ok(count > MAX_CALL_ENTRIES);
    const node = map.locations[0];
    const all = Array.from({ length: count }, (_, i) => i);

    // One call with every change would be refused: its body is over the controller's 1 MiB.
    const whole = await fetch(cloud.url.replace(/\/+$/, '').replace(/\/v1$/, '') + STORAGE_PATHS.update(vol), {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${cloud.creds.admin.key}` },
      body: JSON.stringify({ holder: a.holder, epoch: map.epoch, changes: all.map((block) => ({ block, nodeId: node, state: 'out-of-sync' })) }),
    });
    await whole.text();
    assert.equal(whole.status, 413);

    const entries = await a.allocate(vol, map.epoch, all);
    assert.deepEqual(entries.map((e) => e.block), all);
    assert.equal(new Set(entries.map((e) => e.objectId)).size, count);
    await a.update(vol, map.epoch, all.map((block) => ({ block, nodeId: node, state: 'out-of-sync' as const })));
    await a.release(vol, map.epoch);

    const again = await a.open(vol);
    assert.equal(again.blocks.length, count);
    assert.ok(again.blocks.every((e) => e.replicas.length === 1 && e.replicas[0].nodeId === node && e.replicas[0].state === 'out-of-sync'));
    assert.deepEqual(new Set(again.blocks.map((e) => e.objectId)), new Set(entries.map((e) => e.objectId)));
    await a.discard(vol, again.epoch, all);
    await a.release(vol, again.epoch);
    const last = await a.open(vol);
    assert.deepEqual(last.blocks, []);
    await a.release(vol, last.epoch);
  });

  it('faults arrive as KumoError with the controller\'s code and detail', async () => {
    const vol = await volume();
    const a = source();
    const map = await a.open(vol);
    await assert.rejects(a.allocate(vol, map.epoch, [1 << 20]), isFault(Fault.INVALID_PARAMS, /beyond the end/));
    await assert.rejects(a.addLocation(vol, map.epoch, map.locations[0]), isFault(Fault.INVALID_STATE, /already a location/));
    await assert.rejects(a.addLocation(vol, map.epoch, 'node-0000dead'), isFault(Fault.NOT_FOUND, /node-0000dead/));
    await assert.rejects(a.removeLocation(vol, map.epoch, map.locations[0]), isFault(Fault.INVALID_STATE, /only location/));
    await assert.rejects(source().open('vol-0000dead'), isFault(Fault.NOT_FOUND, /vol-0000dead/));
    await a.release(vol, map.epoch);
  });

  it('credentials: a tenant key, a bad key and a holder that is not export:… are refused', async () => {
    const vol = await volume();
    const { user, key } = cloud.creds.tenant;
    await assert.rejects(source(undefined, { basic: { user, key } }).open(vol), isFault(Fault.AUTHORIZATION, /administrators/));
    await assert.rejects(source(undefined, { bearer: 'nonsense' }).open(vol), isFault(Fault.AUTHORIZATION, /node token or an administrator/));
    await assert.rejects(source('host-1234').open(vol), isFault(Fault.AUTHORIZATION, /export:<id>/));
    // Basic with the admin's user works as well as Bearer.
    const c = cloud.creds.admin;
    const s = source(undefined, { basic: { user: c.user, key: c.key } });
    await s.release(vol, (await s.open(vol)).epoch);
  });
});

describe('HttpMapSource without a controller', () => {
  async function flaky(t: TestContext, drops: number) {
    const app = Fastify({ logger: false });
    let calls = 0;
    app.post(STORAGE_PATHS.renew(':v'), async (req) => {
      calls++;
      // A connection that breaks before the answer: what a restarting controller or a lost packet looks like.
      if (calls <= drops) req.raw.socket.destroy();
      return {};
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    t.after(() => app.close());
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    return { url, calls: () => calls };
  }

  it('sends a call again when its answer was lost, a few times', async (t) => {
    const c = await flaky(t, 2);
    const s = new HttpMapSource({ controllerUrl: c.url, holder: 'export:x', auth: { bearer: 'k' } });
    await s.renew('vol-1', 1);
    assert.equal(c.calls(), 3);
  });

  it('gives up after the retries with an error naming the controller', async (t) => {
    const c = await flaky(t, 100);
    const s = new HttpMapSource({ controllerUrl: c.url, holder: 'export:x', auth: { bearer: 'k' }, retries: 2 });
    await assert.rejects(s.renew('vol-1', 1), (e) => e instanceof ControllerUnreachable && e.message.startsWith(`cannot reach the controller at ${c.url}: `));
    assert.equal(c.calls(), 3);
  });
});
