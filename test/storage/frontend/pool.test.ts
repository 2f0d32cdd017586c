/**
 * NodePool: one connection per node, nearest-first ordering (local, then RTT, unreachable last),
 * failing fast while a node is unreachable, reconnecting when it is back, following address changes;
 * the node of this process reached in process (addLocal).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { InProcessNodeClient, NodeClosed, StorageNodeClient, StorageNodeError, StorageNodeServer } from '../../../src/storage/node/index.js';
import { NodePool } from '../../../src/storage/frontend/pool.js';
import { isLocalHost } from '../../../src/storage/frontend/local-host.js';
import { defer, startNodes } from './nodes.js';

describe('NodePool', () => {
  it('shares one connection per node and orders nodes local first, unreachable last', async (t) => {
    const nodes = await startNodes(t, 3);
    const pool = new NodePool({ isLocal: (a) => a.nodeId === 'node-2', retryAfterMs: 60_000 });
    defer(t, () => pool.close());
    for (const n of nodes) pool.setAddress(n.addr);
    pool.setAddress({ nodeId: 'dead', zone: 'z1', host: '127.0.0.1', port: 1, token: 'x' });
    const a = await pool.get('node-0');
    assert.equal(await pool.get('node-0'), a);
    assert.equal(pool.client('node-0'), a);
    await Promise.all(['node-1', 'node-2'].map((id) => pool.get(id)));
    await assert.rejects(pool.get('dead'), NodeClosed);
    await pool.measure();
    for (const n of nodes) assert.ok(pool.rtt(n.nodeId) >= 0, `rtt of ${n.nodeId}`);
    const order = pool.nearest(['dead', 'node-0', 'node-1', 'node-2']);
    assert.equal(order[0], 'node-2', 'local first');
    assert.equal(order[3], 'dead', 'unreachable last');
    assert.equal(nodes[0].server.connections, 1);
    await assert.rejects(pool.get('nobody'), NodeClosed);
  });

  it('fails fast while a node is unreachable, and tries again at most every retryAfterMs', async (t) => {
    // A "node" that accepts and never answers HELLO: each attempt costs a connect timeout.
    const sockets: Socket[] = [];
    const silent = createServer((s) => { sockets.push(s); s.on('error', () => {}); });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    defer(t, () => { for (const s of sockets) s.destroy(); silent.close(); });
    const port = (silent.address() as { port: number }).port;
    const pool = new NodePool({ connectTimeoutMs: 200, retryAfterMs: 100 });
    defer(t, () => pool.close());
    pool.setAddress({ nodeId: 'hung', zone: 'z1', host: '127.0.0.1', port, token: 'x' });

    await assert.rejects(pool.get('hung'), StorageNodeError); // the first attempt is waited for
    assert.equal(sockets.length, 1);
    for (let i = 0; i < 20; i++) await assert.rejects(pool.get('hung'), /unreachable/);
    // No new attempt came from those: they failed without waiting for one.
    assert.ok(sockets.length <= 2, `${sockets.length} connection attempts`);
    // Later requests start a retry in the background (and still fail fast meanwhile).
    while (sockets.length < 2) {
      await assert.rejects(pool.get('hung'), /unreachable/);
      await new Promise((r) => setTimeout(r, 20));
    }
    // connect() waits for a fresh attempt.
    await assert.rejects(pool.connect('hung'), StorageNodeError);
  });

  it('reconnects to a node that came back, and follows a node to a new address', async (t) => {
    const nodes = await startNodes(t, 1);
    const n = nodes[0];
    const pool = new NodePool({ retryAfterMs: 50 });
    defer(t, () => pool.close());
    pool.setAddress(n.addr);
    const first = await pool.get(n.addr); // by address, as the controller's garbage collection calls it
    await first.write('0123456789abcdef0123456789abcdef', 0, Buffer.from('kept'), { fua: true });
    await n.server.stop();
    await new Promise((r) => first.onClose(r));
    await assert.rejects(pool.get(n.nodeId), NodeClosed);
    const back = new StorageNodeServer({ dir: n.dir, token: n.addr.token, host: '127.0.0.1', port: n.addr.port });
    await back.start();
    defer(t, () => back.stop());
    const again = await pool.connect(n.nodeId);
    assert.notEqual(again, first);
    assert.equal((await again.read('0123456789abcdef0123456789abcdef', 0, 4)).toString(), 'kept');
    assert.equal(await pool.get(n.nodeId), again);

    const moved = new StorageNodeServer({ dir: n.dir, token: 'new-token', host: '127.0.0.1', port: 0 });
    const { port } = await moved.start();
    defer(t, () => moved.stop());
    pool.setAddress({ ...n.addr, port, token: 'new-token' });
    const third = await pool.get(n.nodeId);
    assert.notEqual(third, again);
    assert.equal((await third.read('0123456789abcdef0123456789abcdef', 0, 4)).toString(), 'kept');
    await new Promise((r) => again.onClose(r)); // the old connection was idle: it is closed
  });

  it('reaches the node of this process in process, first of all, whatever address the map gives it', async (t) => {
    const nodes = await startNodes(t, 3);
    const pool = new NodePool({ isLocal: () => true, retryAfterMs: 50 });
    defer(t, () => pool.close());
    for (const n of nodes) pool.setAddress(n.addr);
    const tcp = await pool.get('node-1');
    assert.ok(tcp instanceof StorageNodeClient);
    // Registered late (after a TCP connection): that connection is retired, the node reached in process.
    pool.addLocal('node-1', nodes[1].server);
    const c = await pool.get('node-1');
    assert.ok(c instanceof InProcessNodeClient);
    await new Promise((r) => tcp.onClose(r));
    // The address the map gives (other nodes copy from there) is kept, and changes nothing here.
    pool.setAddress({ ...nodes[1].addr, port: 1, token: 'moved' });
    assert.equal(pool.address('node-1')!.port, 1);
    assert.equal(await pool.get('node-1'), c);
    await Promise.all(['node-0', 'node-2'].map((id) => pool.get(id)));
    await pool.measure();
    assert.equal(pool.rtt('node-1'), 0);
    assert.ok(pool.isLocalNode('node-1'));
    assert.deepEqual(pool.nearest(['node-0', 'node-2', 'node-1'])[0], 'node-1', 'in process before the other local nodes');
    assert.equal(nodes[1].server.connections, 0);

    // The node stops: requests fail fast with NodeClosed, and it is last in the order.
    await nodes[1].server.stop();
    assert.equal(c.isOpen, false);
    await assert.rejects(c.read('0123456789abcdef0123456789abcdef', 0, 1), NodeClosed);
    await assert.rejects(pool.get('node-1'), NodeClosed);
    assert.equal(pool.nearest(['node-1', 'node-0']).at(-1), 'node-1');
  });

  it('knows which hosts are local', () => {
    assert.ok(isLocalHost('127.0.0.1'));
    assert.ok(isLocalHost('::1'));
    assert.ok(isLocalHost('localhost'));
    assert.ok(!isLocalHost('192.0.2.1'));
  });
});
