/**
 * The storage side doors over HTTP (src/api/storage-routes.ts): node registration and heartbeats,
 * and the frontends' MapSource calls with their two kinds of credentials.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { storageRoutes } from '../../src/api/storage-routes.js';
import { SYSTEM } from '../../src/services/principal.js';
import { STORAGE_PATHS } from '../../src/storage/wire.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { basic } from './support.js';

interface Reply { status: number; type: string; body: any }

forEachDb('storage routes', (env) => {
  let app: FastifyInstance;
  let url = '';
  let join = '';
  let agentToken = '', otherToken = '';
  let hostA = '', hostB = '';
  let admin = { user: '', key: '' }, tenant = { user: '', key: '' };
  let vol = '';

  async function post(path: string, auth: string | null, body: unknown): Promise<Reply> {
    const res = await fetch(`${url}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : null };
  }

  before(async () => {
    const s = env.services;
    join = await s.hosts.joinToken();
    const reg = (name: string) => s.hosts.register(join, { zone: 'zone-a', url: 'http://127.0.0.1:9', driver: 'sim', accel: 'sim', hosts: [{ name, vcpus: 4, memoryMiB: 4096, architectures: ['x86_64'] }] });
    const a = await reg('ha');
    const b = await reg('hb');
    [agentToken, hostA, otherToken, hostB] = [a.nodeToken, a.hosts[0].hostId, b.nodeToken, b.hosts[0].hostId];
    const ops = await newTenant(s, 'ops', {}, true);
    const t = await newTenant(s, 'plain');
    admin = await s.tenants.createApiUser(SYSTEM, ops.tenantId, { admin: true, name: 'root' });
    tenant = await s.tenants.createApiUser(SYSTEM, t.tenantId, { name: 'user' });
    app = Fastify({ logger: false });
    await app.register(async (x) => storageRoutes(x, s));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  after(() => app?.close());

  it('registers a node with the join token (401 without it, 400 for a bad body) and takes its heartbeats', async () => {
    const body = { name: 'sn1', zone: 'zone-a', host: '127.0.0.1', port: 10809, totalBytes: 2 ** 40, freeBytes: 2 ** 39 };
    const bad = await post(STORAGE_PATHS.register, 'Bearer nope', body);
    assert.equal(bad.status, 401);
    assert.match(bad.type, /problem\+json/);
    assert.equal((await post(STORAGE_PATHS.register, `Bearer ${join}`, { ...body, port: '10809' })).status, 400);
    const ok = await post(STORAGE_PATHS.register, `Bearer ${join}`, body);
    assert.equal(ok.status, 200);
    assert.match(ok.body.nodeId, /^node-/);
    const beat = { nodeId: ok.body.nodeId, host: '127.0.0.1', port: 10809, totalBytes: 2 ** 40, freeBytes: 2 ** 38 };
    assert.equal((await post(STORAGE_PATHS.heartbeat, `Bearer ${ok.body.nodeToken}`, beat)).status, 200);
    assert.equal((await post(STORAGE_PATHS.heartbeat, 'Bearer nope', beat)).status, 401);
    assert.equal((await post(STORAGE_PATHS.heartbeat, null, beat)).status, 401);
    assert.equal((await env.services.storageNodes.list()).find((n) => n.nodeId === ok.body.nodeId)!.freeBytes, 2 ** 38);
    vol = await env.services.volumes.allocate(await newTenant(env.services, 'owner'), { sizeGiB: 1 });
  });

  it('frontend calls: an agent for its own hosts only, an administrator for export: holders only', async () => {
    const open = STORAGE_PATHS.open(vol);
    assert.equal((await post(open, null, { holder: hostA })).status, 401);
    assert.equal((await post(open, 'Bearer not-a-token', { holder: hostA })).status, 401);
    assert.equal((await post(open, `Bearer ${otherToken}`, { holder: hostA })).status, 403);
    assert.equal((await post(open, `Bearer ${admin.key}`, { holder: hostA })).status, 403);
    assert.equal((await post(open, basic(tenant.user, tenant.key), { holder: 'export:t' })).status, 403);
    assert.equal((await post(open, `Bearer ${agentToken}`, { holder: 42 })).status, 400);
    const m = await post(open, `Bearer ${agentToken}`, { holder: hostA });
    assert.equal(m.status, 200, JSON.stringify(m.body));
    assert.equal(m.body.volumeId, vol);
    assert.equal(m.body.epoch, 1);
    assert.equal(m.body.nodes.length, 1);
    assert.ok(m.body.nodes[0].token);
    // Someone else's open while the agent holds it: 409 naming the holder.
    const held = await post(open, basic(admin.user, admin.key), { holder: 'export:tool' });
    assert.equal(held.status, 409);
    assert.equal(held.body.lease, 'held');
    assert.equal(held.body.holder, hostA);
    assert.equal(typeof held.body.detail, 'string');

    const alloc = await post(STORAGE_PATHS.allocate(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, blocks: [0, 2] });
    assert.equal(alloc.status, 200);
    assert.deepEqual(alloc.body.blocks.map((b: { block: number }) => b.block), [0, 2]);
    assert.equal((await post(STORAGE_PATHS.allocate(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, blocks: ['x'] })).status, 400);
    assert.equal((await post(STORAGE_PATHS.allocate(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, blocks: Array(65537).fill(0) })).status, 400);
    assert.equal((await post(STORAGE_PATHS.allocate(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, blocks: [100000] })).status, 400);
    assert.equal((await post(STORAGE_PATHS.allocate(vol), `Bearer ${agentToken}`, { holder: hostA, blocks: [1] })).status, 400);
    const lost = await post(STORAGE_PATHS.renew(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 7 });
    assert.equal(lost.status, 409);
    assert.equal(lost.body.lease, 'lost');
    const nodeId = m.body.locations[0];
    const upd = await post(STORAGE_PATHS.update(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, changes: [{ block: 0, nodeId, state: 'in-sync' }] });
    assert.equal(upd.status, 200);
    assert.equal((await post(STORAGE_PATHS.update(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, changes: [{ block: 0, nodeId, state: 'bad' }] })).status, 400);
    const again = await post(STORAGE_PATHS.addLocation(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, nodeId });
    assert.equal(again.status, 409);
    assert.equal(again.body.title, 'INVALID_STATE');
    assert.equal((await post(STORAGE_PATHS.addLocation(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, nodeId: 'node-000000000000' })).status, 404);
    assert.equal((await post(STORAGE_PATHS.discard(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1, blocks: [2] })).status, 200);
    assert.equal((await post(STORAGE_PATHS.release(vol), `Bearer ${agentToken}`, { holder: hostA, epoch: 1 })).status, 200);

    const exp = await post(open, basic(admin.user, admin.key), { holder: 'export:tool' });
    assert.equal(exp.status, 200);
    assert.equal(exp.body.epoch, 2);
    assert.deepEqual(exp.body.blocks.map((b: { block: number }) => b.block), [0]);
    assert.equal((await post(STORAGE_PATHS.release(vol), `Bearer ${admin.key}`, { holder: 'export:tool', epoch: 2 })).status, 200);
    assert.equal((await post(STORAGE_PATHS.open('vol-000000000000'), `Bearer ${agentToken}`, { holder: hostB })).status, 403);
    const missing = await post(STORAGE_PATHS.open('vol-000000000000'), `Bearer ${otherToken}`, { holder: hostB });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.title, 'NOT_FOUND');
  });
});
