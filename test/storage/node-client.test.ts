/**
 * The two NodeClients against one set of checks: StorageNodeClient over loopback TCP and
 * InProcessNodeClient calling a node of this process. The frontend cannot tell them apart, so
 * whatever it relies on — per-object order under pipelining, FUA and FLUSH durability (FLUSH per
 * client), trim/delete/stat, COPY from another node, the errors of bad requests, timeouts, and
 * what a closed client or a stopping node looks like — must hold for both. (The wire itself —
 * authentication, garbage, frame codec — is node-protocol.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { newObjectId } from '../../src/storage/blockmap/index.js';
import {
  InProcessNodeClient, NodeClosed, NodeError, NodeTimeout, StorageNodeClient, StorageNodeServer, isNodeError,
  type NodeClient, type NodeCloseInfo,
} from '../../src/storage/node/index.js';
import { node, TOKEN } from './node-server.js';

const MiB = 1024 * 1024;


/** A TCP listener that accepts and never answers: a hung source node. */
async function silentNode(t: TestContext): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const silent = createServer((s) => { sockets.push(s); s.on('error', () => {}); });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => { for (const s of sockets) s.destroy(); silent.close(); });
  return { port: (silent.address() as { port: number }).port, sockets };
}

const closedInfo = (c: NodeClient) => new Promise<NodeCloseInfo>((r) => c.onClose(r));

const KINDS: { name: string; open(srv: StorageNodeServer, timeoutMs?: number): Promise<NodeClient> }[] = [
  { name: 'network (StorageNodeClient)', open: (srv, timeoutMs = 5000) => StorageNodeClient.connect({ host: '127.0.0.1', port: srv.port, token: TOKEN, timeoutMs }) },
  { name: 'in-process (InProcessNodeClient)', open: async (srv, timeoutMs = 5000) => new InProcessNodeClient(srv, { timeoutMs }) },
];

for (const kind of KINDS) {
  describe(`NodeClient: ${kind.name}`, () => {
    const client = async (t: TestContext, srv: StorageNodeServer, timeoutMs?: number) => {
      const c = await kind.open(srv, timeoutMs);
      t.after(() => c.close());
      return c;
    };

    it('reads what it wrote: requests on one object in call order, pipelined, unaligned; zeros where nothing was written', async (t) => {
      const srv = await node(t);
      const c = await client(t, srv);
      const ids = Array.from({ length: 20 }, () => newObjectId());
      const expected = new Map<string, Buffer>();
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 500; i++) {
        const id = ids[i % ids.length];
        const data = randomBytes(4096 - 7);
        const offset = Math.floor(i / ids.length) * 4096 + 3;
        expected.set(`${id}:${offset}`, data);
        writes.push(c.write(id, offset, data));
      }
      assert.ok(c.inflight >= 400, `pipelined: ${c.inflight} in flight before any reply`);
      // Issued before the writes are answered: each sees the write called before it.
      const reads = [...expected].map(async ([key, data]) => {
        const [id, offset] = key.split(':');
        assert.deepEqual(await c.read(id, Number(offset), data.length), data);
      });
      await Promise.all([...writes, ...reads]);
      assert.equal(c.inflight, 0);
      assert.deepEqual(await c.read(ids[0], 0, 3), Buffer.alloc(3), 'the hole before an unaligned write');
      assert.deepEqual(await c.read(newObjectId(), 1000, 10), Buffer.alloc(10), 'a missing object');
      assert.ok((await c.ping()) >= 0);
      // A client that reads into the caller's buffer gives the same bytes (at once, or queued behind a write).
      if (c.readInto) {
        const target = Buffer.alloc(4096 + 10, 0xaa);
        await c.readInto(ids[1], 0, target);
        assert.deepEqual(target, await c.read(ids[1], 0, target.length));
        const queued = Buffer.alloc(100, 0xaa);
        const w = c.write(ids[2], 50, Buffer.alloc(20, 0x99), { fua: true });
        await Promise.all([w, c.readInto(ids[2], 0, queued)]);
        assert.deepEqual(queued.subarray(50, 70), Buffer.alloc(20, 0x99), 'the read called after the write sees it');
        assert.deepEqual(queued, await c.read(ids[2], 0, 100));
        const missing = Buffer.alloc(10, 0xaa);
        await c.readInto(newObjectId(), 0, missing);
        assert.deepEqual(missing, Buffer.alloc(10));
      }
    });

    it('FUA and FLUSH reach fdatasync before the reply; FLUSH covers what this client wrote', async (t) => {
      const srv = await node(t);
      const c = await client(t, srv);
      const other = await client(t, srv);
      const [a, b, x] = [newObjectId(), newObjectId(), newObjectId()];
      const s0 = srv.store.counters.syncs;
      await c.write(a, 0, Buffer.from('plain'));
      assert.equal(srv.store.counters.syncs, s0);
      await c.write(b, 0, Buffer.from('fua'), { fua: true });
      assert.equal(srv.store.counters.syncs, s0 + 1, 'the FUA write was synced before its reply');
      await other.write(x, 0, Buffer.from('other client'));
      // Also a write still in flight when the FLUSH is called.
      const big = c.write(a, 4096, Buffer.alloc(2 * MiB, 1));
      await c.flush();
      await big;
      assert.equal(srv.store.counters.syncs, s0 + 2, 'FLUSH synced object a (once, after both writes)');
      assert.equal(srv.store.dirtyObjects, 1, "the other client's write is still owed");
      await c.flush();
      assert.equal(srv.store.counters.syncs, s0 + 2, 'nothing new to flush');
      await other.flush(x);
      assert.equal(srv.store.dirtyObjects, 0);
      // Trims and deletes without FUA are owed to the next FLUSH too.
      await c.write(a, 0, Buffer.alloc(8192, 2), { fua: true });
      await c.trim(a, 0, 4096);
      assert.equal(srv.store.dirtyObjects, 1);
      await c.flush();
      assert.equal(srv.store.dirtyObjects, 0);
    });

    it('trims, deletes and stats', async (t) => {
      const srv = await node(t);
      const c = await client(t, srv);
      const id = newObjectId();
      await c.write(id, 0, Buffer.alloc(MiB, 4));
      let st = await c.stat(id);
      assert.deepEqual([st.exists, st.size], [true, MiB]);
      await c.trim(id, 4096, 64 * 1024, { fua: true });
      assert.deepEqual(await c.read(id, 4096, 64 * 1024), Buffer.alloc(64 * 1024));
      assert.deepEqual(await c.read(id, 0, 4096), Buffer.alloc(4096, 4));
      await c.delete(id);
      st = await c.stat(id);
      assert.equal(st.exists, false);
      assert.deepEqual(await c.read(id, 0, 100), Buffer.alloc(100));
      await c.delete(id); // a missing object is fine
    });

    it('copies an object from another node over TCP (COPY): holes kept, later writes land on the copy, source failures are NodeErrors', async (t) => {
      const [src, dst] = [await node(t), await node(t)];
      const cs = await client(t, src);
      const cd = await client(t, dst);
      const id = newObjectId();
      const data = randomBytes(300 * 1024);
      await cs.write(id, 3 * MiB, data);
      await cd.write(id, 0, Buffer.from('stale copy'));
      const copy = cd.copyObject(id, { host: '127.0.0.1', port: src.port });
      const after = cd.write(id, 100, Buffer.from('written during the copy'));
      assert.deepEqual(await copy, { size: 3 * MiB + data.length, bytesWritten: data.length });
      await after;
      assert.deepEqual(await cd.read(id, 3 * MiB, data.length), data);
      assert.equal((await cd.read(id, 0, 10)).toString(), '\0'.repeat(10), 'the stale content is gone');
      assert.equal((await cd.read(id, 100, 23)).toString(), 'written during the copy');
      assert.ok((await cd.stat(id)).allocatedBytes < 1.5 * MiB, 'holes kept');
      // A missing source object removes ours.
      await cs.delete(id);
      await cd.copyObject(id, { host: '127.0.0.1', port: src.port });
      assert.equal((await cd.stat(id)).exists, false);
      // The node answered: the source failed (sync then tries another source).
      await assert.rejects(cd.copyObject(id, { host: '127.0.0.1', port: src.port, token: 'wrong' }), (e: unknown) => isNodeError(e, 'EACCES') && e.op === 'COPY');
      await assert.rejects(cd.copyObject(id, { host: '127.0.0.1', port: 1 }), (e: unknown) => isNodeError(e, 'ECONNREFUSED'));
      await assert.rejects(cd.copyObject(id, { port: 1 } as never), (e: unknown) => isNodeError(e, 'EINVAL'));
    });

    it('refuses bad requests with NodeError(EINVAL) and stays usable', async (t) => {
      const srv = await node(t, { store: { maxObjectBytes: 4 * MiB } });
      const c = await client(t, srv);
      await assert.rejects(c.read(newObjectId(), 4 * MiB - 10, 20), (e: unknown) => isNodeError(e, 'EINVAL') && e.op === 'READ');
      await assert.rejects(c.write(newObjectId(), 4 * MiB, Buffer.from('x')), (e: unknown) => isNodeError(e, 'EINVAL') && e.op === 'WRITE');
      await assert.rejects(c.read('nope', 0, 1), (e: unknown) => isNodeError(e, 'EINVAL') && /not sent/.test((e as Error).message));
      await assert.rejects(c.read(newObjectId(), 0, 64 * MiB), (e: unknown) => isNodeError(e, 'EINVAL'));
      await assert.rejects(c.trim(newObjectId(), -1, 1), (e: unknown) => isNodeError(e, 'EINVAL'));
      assert.ok(c.isOpen);
      assert.equal((await c.read(newObjectId(), 0, 3)).length, 3);
    });

    it('times a request out with NodeTimeout and stays usable', async (t) => {
      const silent = await silentNode(t);
      const srv = await node(t);
      const c = await client(t, srv, 5000);
      const t0 = Date.now();
      await assert.rejects(c.copyObject(newObjectId(), { host: '127.0.0.1', port: silent.port }, { timeoutMs: 150 }),
        (e: unknown) => e instanceof NodeTimeout && e.timeoutMs === 150 && e.op === 'COPY');
      assert.ok(Date.now() - t0 < 2000);
      assert.equal(c.inflight, 0);
      assert.ok(c.isOpen);
      assert.equal((await c.read(newObjectId(), 0, 3)).length, 3);
    });

    it('close(): every request fails with NodeClosed; listeners hear "local"', async (t) => {
      const srv = await node(t);
      const c = await client(t, srv);
      const ended = closedInfo(c);
      await c.write(newObjectId(), 0, Buffer.from('x'));
      await c.close();
      assert.equal(c.isOpen, false);
      assert.equal((await ended).reason, 'local');
      await assert.rejects(c.read(newObjectId(), 0, 1), (e: unknown) => e instanceof NodeClosed && e.op === 'READ');
      await assert.rejects(c.flush(), NodeClosed);
      await assert.rejects(c.ping(), NodeClosed);
      assert.equal((await closedInfo(c)).reason, 'local', 'a listener that comes late hears it too');
    });

    it('the node stopping: a COPY stuck on a silent source and every later request fail with NodeClosed; listeners hear "remote"', async (t) => {
      const silent = await silentNode(t);
      const srv = await node(t);
      const c = await client(t, srv);
      const ended = closedInfo(c);
      const copy = assert.rejects(c.copyObject(newObjectId(), { host: '127.0.0.1', port: silent.port }, { timeoutMs: Infinity }), NodeClosed);
      while (silent.sockets.length === 0) await new Promise((r) => setTimeout(r, 5));
      const t0 = Date.now();
      await srv.stop();
      await copy;
      assert.ok(Date.now() - t0 < 1000, `stopped in ${Date.now() - t0} ms`);
      const info = await ended;
      assert.equal(info.reason, 'remote');
      assert.ok(info.error instanceof NodeClosed);
      assert.equal(c.isOpen, false);
      await assert.rejects(c.write(newObjectId(), 0, Buffer.from('x')), (e: unknown) => e instanceof NodeClosed && !(e instanceof NodeError));
    });
  });
}
