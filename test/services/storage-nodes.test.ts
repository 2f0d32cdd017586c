import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { SYSTEM } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault } from './fixtures.js';
import { GiB, registerNode } from './storage-fixtures.js';

forEachDb('storage nodes', (env) => {
  it('registers with the join token; registering again under its name keeps id and token and takes the new address and zone', async () => {
    const s = env.services;
    await fault(s.storageNodes.register('wrong', { name: 'sn1', zone: 'zone-a', host: '10.0.0.1', port: 1, totalBytes: 0, freeBytes: 0 }), Fault.AUTHORIZATION);
    const first = await registerNode(s, 'sn1', 'zone-a', { host: '10.0.0.1', port: 7000 });
    assert.match(first.nodeId, /^node-[0-9a-f]{12}$/);
    assert.ok(first.nodeToken.length >= 32);
    const again = await registerNode(s, 'sn1', 'zone-b', { host: '10.0.0.2', port: 7001, totalBytes: 5 * 1024 * GiB, freeBytes: 3 * 1024 * GiB });
    assert.deepEqual(again, first);
    const [n] = (await s.storageNodes.list(SYSTEM)).filter((x) => x.nodeId === first.nodeId);
    // Byte counts beyond 2^31 come back exact (PostgreSQL bigint arrives as text).
    assert.deepEqual({ ...n, lastSeen: '' }, {
      nodeId: first.nodeId, name: 'sn1', zone: 'zone-b', status: 'up', address: '10.0.0.2:7001',
      totalBytes: 5 * 1024 * GiB, freeBytes: 3 * 1024 * GiB, lastSeen: '',
    });
    assert.deepEqual(await s.storageNodes.address(first.nodeId), { nodeId: first.nodeId, zone: 'zone-b', host: '10.0.0.2', port: 7001, token: first.nodeToken });
    await fault(s.storageNodes.address('node-000000000000'), Fault.NOT_FOUND);
  });

  it('refuses bad registrations with INVALID_PARAMS', async () => {
    const s = env.services;
    const join = await s.hosts.joinToken();
    const ok = { name: 'snx', zone: 'zone-a', host: '10.0.0.9', port: 7000, totalBytes: 1, freeBytes: 1 };
    for (const bad of [{ name: '-x' }, { host: 'a b' }, { port: 0 }, { port: 70000 }, { totalBytes: -1 }, { freeBytes: 1.5 }, { zone: 7 }]) {
      await fault(s.storageNodes.register(join, { ...ok, ...bad } as never), Fault.INVALID_PARAMS);
    }
  });

  it('heartbeats with the node token: an unknown token or another node\'s id is AUTHORIZATION', async () => {
    const s = env.services;
    const a = await registerNode(s, 'hb-a');
    const b = await registerNode(s, 'hb-b');
    const beat = { nodeId: a.nodeId, host: '10.1.0.1', port: 7100, totalBytes: 10 * GiB, freeBytes: 9 * GiB };
    await fault(s.storageNodes.heartbeat('nope', beat), Fault.AUTHORIZATION, /register again/);
    await fault(s.storageNodes.heartbeat(b.nodeToken, beat), Fault.AUTHORIZATION);
    await fault(s.storageNodes.heartbeat(a.nodeToken, { ...beat, port: -5 }), Fault.INVALID_PARAMS);
    await s.storageNodes.heartbeat(a.nodeToken, beat);
    const n = (await s.storageNodes.list(SYSTEM)).find((x) => x.nodeId === a.nodeId)!;
    assert.equal(n.address, '10.1.0.1:7100');
    assert.equal(n.freeBytes, 9 * GiB);
  });

  it('marks nodes that went quiet down, and a heartbeat brings them back up', async () => {
    const s = env.services;
    const q = await registerNode(s, 'quiet');
    assert.deepEqual(await s.storageNodes.markSilentDown(), []);
    await env.db.k.updateTable('storage_nodes').set({ last_seen: new Date(Date.now() - 60_000).toISOString() }).where('id', '=', q.nodeId).execute();
    assert.deepEqual(await s.storageNodes.markSilentDown(), [q.nodeId]);
    assert.equal((await s.storageNodes.list()).find((x) => x.nodeId === q.nodeId)!.status, 'down');
    await s.storageNodes.heartbeat(q.nodeToken, { nodeId: q.nodeId, host: '127.0.0.1', port: 10809, totalBytes: 1, freeBytes: 1 });
    assert.equal((await s.storageNodes.list()).find((x) => x.nodeId === q.nodeId)!.status, 'up');
  });

  it('getStorageNodeList is for administrators', async () => {
    const t = await newTenant(env.services, 'plain');
    await fault(env.services.storageNodes.list(t), Fault.AUTHORIZATION);
  });
});
