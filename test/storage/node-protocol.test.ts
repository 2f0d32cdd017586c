/**
 * The storage node protocol end to end over loopback TCP: authentication, pipelining, durability
 * calls, copies between nodes, error replies, and what happens to garbage, silence and version
 * mismatch. Raw sockets stand in for misbehaving peers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { once } from 'node:events';
import fc from 'fast-check';
import { newObjectId } from '../../src/storage/blockmap/index.js';
import {
  FrameDecoder, HEADER_BYTES, NO_OBJECT, NodeClosed, NodeError, NodeProtocolError, NodeTimeout, Op, REPLY_MAGIC, REQUEST_MAGIC,
  StorageNodeClient, decodeHeader, encodeHeader, isNodeError,
} from '../../src/storage/node/index.js';
import { node, TOKEN } from './node-server.js';

const MiB = 1024 * 1024;


async function client(t: TestContext, srv: { port: number }, token = TOKEN): Promise<StorageNodeClient> {
  const c = await StorageNodeClient.connect({ host: '127.0.0.1', port: srv.port, token, timeoutMs: 5000 });
  t.after(() => c.close());
  return c;
}

/** A raw socket to the node and the frames it receives. */
async function raw(port: number): Promise<{ s: Socket; frames: ReturnType<FrameDecoder['push']>; closed: Promise<void> }> {
  const s = connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  const frames: ReturnType<FrameDecoder['push']> = [];
  const dec = new FrameDecoder(REPLY_MAGIC);
  s.on('data', (c: Buffer) => frames.push(...dec.push(c)));
  s.on('error', () => {});
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
  return { s, frames, closed };
}

const frame = (op: Op, payload: Buffer = Buffer.alloc(0), over: Partial<Parameters<typeof encodeHeader>[0]> = {}) =>
  Buffer.concat([encodeHeader({ magic: REQUEST_MAGIC, op, flags: 0, requestId: 7, payloadLength: payload.length, objectId: NO_OBJECT, offset: 0, length: 0, status: 0, ...over }), payload]);

describe('storage node protocol', () => {
  it('authenticates: a wrong token gets EACCES and a closed connection', async (t) => {
    const srv = await node(t);
    await assert.rejects(StorageNodeClient.connect({ host: '127.0.0.1', port: srv.port, token: 'wrong' }),
      (e: unknown) => isNodeError(e, 'EACCES') && /bad node token/.test((e as NodeError).detail));
    // Requests before HELLO: an error reply, then the hang-up.
    const r = await raw(srv.port);
    r.s.write(frame(Op.READ, Buffer.alloc(0), { objectId: newObjectId(), length: 10 }));
    await r.closed;
    assert.equal(r.frames.length, 1);
    assert.equal(r.frames[0].header.status, 13 /* EACCES */);
    assert.match(r.frames[0].payload.toString(), /READ before HELLO/);
    // The right token works, and the node says who it is.
    const c = await client(t, srv);
    assert.equal(c.hello.server, 'kumo-storage-node');
    assert.equal(c.hello.version, 1);
    // A new token applies to new connections; open ones stay.
    srv.setToken('rotated');
    await assert.rejects(StorageNodeClient.connect({ host: '127.0.0.1', port: srv.port, token: TOKEN }), { code: 'EACCES' });
    assert.ok((await c.ping()) >= 0);
    await client(t, srv, 'rotated');
  });

  it('refuses to connect where nobody listens, with NodeClosed', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await assert.rejects(StorageNodeClient.connect({ host: '127.0.0.1', port, token: TOKEN }),
      (e: unknown) => e instanceof NodeClosed && e.code === 'ECONNREFUSED');
  });

  it('answers bad requests with an error reply and keeps the connection', async (t) => {
    const srv = await node(t, { store: { maxObjectBytes: 4 * MiB } });
    const c = await client(t, srv);
    await assert.rejects(c.read(newObjectId(), 4 * MiB - 10, 20), (e: unknown) => isNodeError(e, 'EINVAL') && e.op === 'READ');
    await assert.rejects(c.read('nope', 0, 1), (e: unknown) => isNodeError(e, 'EINVAL') && /not sent/.test((e as Error).message));
    await assert.rejects(c.read(newObjectId(), 0, 64 * MiB), { code: 'EINVAL' });
    // Raw: an unknown opcode and a data op without an object id.
    const r = await raw(srv.port);
    r.s.write(frame(Op.HELLO, Buffer.from(JSON.stringify({ token: TOKEN }))));
    r.s.write(frame(99 as Op, Buffer.alloc(0), { requestId: 8 }));
    r.s.write(frame(Op.WRITE, Buffer.from('x'), { requestId: 9, length: 1 }));
    r.s.write(frame(Op.PING, Buffer.from('still here'), { requestId: 10 }));
    while (r.frames.length < 4) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(r.frames.map((f) => [f.header.requestId, f.header.status]), [[7, 0], [8, 95 /* EOPNOTSUPP */], [9, 22 /* EINVAL */], [10, 0]]);
    assert.equal(r.frames[3].payload.toString(), 'still here');
    r.s.destroy();
    assert.equal((await c.read(newObjectId(), 0, 3)).length, 3);
  });

  it('drops a connection that sends garbage or a wrong magic, and only that one', async (t) => {
    const srv = await node(t);
    const c = await client(t, srv);
    const id = newObjectId();
    await c.write(id, 0, Buffer.from('survives'));

    const garbage = await raw(srv.port);
    garbage.s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await garbage.closed;
    assert.equal(garbage.frames.length, 0, 'no reply to garbage');

    const wrongMagic = await raw(srv.port);
    wrongMagic.s.write(frame(Op.HELLO, Buffer.from(JSON.stringify({ token: TOKEN })), { magic: 0xdeadbeef }));
    await wrongMagic.closed;

    // An authenticated connection that turns bad mid-stream, and one announcing a huge frame.
    const midway = await raw(srv.port);
    midway.s.write(frame(Op.HELLO, Buffer.from(JSON.stringify({ token: TOKEN }))));
    midway.s.write(frame(Op.PING, Buffer.alloc(0), { requestId: 8 }));
    midway.s.write(Buffer.alloc(HEADER_BYTES, 0x41));
    await midway.closed;
    assert.deepEqual(midway.frames.map((f) => f.header.requestId), [7, 8]);
    const huge = await raw(srv.port);
    huge.s.write(frame(Op.HELLO, Buffer.alloc(0)).subarray(0, HEADER_BYTES).fill(0xff, 12, 16));
    await huge.closed;

    // A future version gets told, then dropped.
    const v2 = await raw(srv.port);
    v2.s.write(frame(Op.HELLO, Buffer.from(JSON.stringify({ token: TOKEN })), { version: 2 }));
    await v2.closed;
    assert.equal(v2.frames[0].header.status, 93 /* EPROTONOSUPPORT */);

    assert.equal((await c.read(id, 0, 8)).toString(), 'survives', 'the good connection is unaffected');
    while (srv.connections > 1) await new Promise((resolve) => setTimeout(resolve, 5));
  });

  it('times a request out with NodeTimeout, drops its late reply, and fails everything with NodeClosed on close', async (t) => {
    // A fake node: answers HELLO, holds PINGs until told, never answers READs.
    const held: Array<() => void> = [];
    const sockets: Socket[] = [];
    const fake = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      const dec = new FrameDecoder(REQUEST_MAGIC);
      s.on('data', (chunk: Buffer) => {
        for (const f of dec.push(chunk)) {
          const reply = () => s.write(encodeHeader({ ...f.header, magic: REPLY_MAGIC, payloadLength: f.header.op === Op.HELLO ? 2 : 0 }));
          if (f.header.op === Op.HELLO) { reply(); s.write('{}'); }
          if (f.header.op === Op.PING) held.push(reply);
        }
      });
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    t.after(() => { for (const s of sockets) s.destroy(); fake.close(); });
    const c = await StorageNodeClient.connect({ host: '127.0.0.1', port: (fake.address() as { port: number }).port, token: TOKEN, timeoutMs: 100 });
    const t0 = Date.now();
    await assert.rejects(c.ping(), (e: unknown) => e instanceof NodeTimeout && e.sent === true && e.timeoutMs === 100);
    assert.ok(Date.now() - t0 < 1000);
    held.shift()!(); // the late reply: dropped, the connection stays up
    const p = c.ping({ timeoutMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(c.isOpen);
    held.shift()!();
    assert.ok((await p) >= 0);
    const pending = assert.rejects(c.read(newObjectId(), 0, 10, { timeoutMs: Infinity }), (e: unknown) => e instanceof NodeClosed && e.op === 'READ');
    await c.close();
    await pending;
    await assert.rejects(c.ping(), NodeClosed);
    assert.equal((await c.closed).reason, 'local');
  });

  it('drops a node that answers with garbage (NodeProtocolError)', async (t) => {
    const fake = createServer((s) => { s.on('error', () => {}); s.once('data', () => s.write(Buffer.alloc(HEADER_BYTES, 0x42))); });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    t.after(() => fake.close());
    await assert.rejects(StorageNodeClient.connect({ host: '127.0.0.1', port: (fake.address() as { port: number }).port, token: TOKEN }), NodeProtocolError);
  });

  it('stops promptly with a COPY stuck on a silent source; its client sees NodeClosed', async (t) => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => { sockets.push(s); s.on('error', () => {}); });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    t.after(() => { for (const s of sockets) s.destroy(); silent.close(); });
    const srv = await node(t);
    const c = await client(t, srv);
    const copy = assert.rejects(c.copyObject(newObjectId(), { host: '127.0.0.1', port: (silent.address() as { port: number }).port }), NodeClosed);
    while (sockets.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const t0 = Date.now();
    await srv.stop();
    await copy;
    assert.ok(Date.now() - t0 < 1000, `stopped in ${Date.now() - t0} ms`);
  });

  it('drops a connection that never says HELLO', async (t) => {
    const srv = await node(t, { helloTimeoutMs: 100 });
    const r = await raw(srv.port);
    await r.closed;
    while (srv.connections > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  });
});

describe('frame codec', () => {
  it('decodes any chunking of a frame stream into the frames sent (property)', () => {
    const headerArb = fc.record({
      op: fc.integer({ min: 1, max: 9 }), flags: fc.integer({ min: 0, max: 0xffff }), requestId: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      objectId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
      offset: fc.integer({ min: 0, max: 2 ** 53 - 1 }), length: fc.integer({ min: 0, max: 2 ** 32 - 1 }), status: fc.integer({ min: 0, max: 200 }),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(fc.property(fc.array(headerArb, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 10 }), (frames, cuts) => {
      const wire = Buffer.concat(frames.map(({ payload, ...h }) => Buffer.concat([encodeHeader({ ...h, magic: REQUEST_MAGIC, payloadLength: payload.length }), payload])));
      const dec = new FrameDecoder(REQUEST_MAGIC);
      const got: ReturnType<FrameDecoder['push']> = [];
      for (let at = 0, i = 0; at < wire.length; i++) {
        const n = cuts[i % cuts.length];
        got.push(...dec.push(wire.subarray(at, at + n)));
        at += n;
      }
      assert.equal(got.length, frames.length);
      got.forEach((f, i) => {
        const { payload, ...h } = frames[i];
        assert.deepEqual(f.header, { ...h, magic: REQUEST_MAGIC, version: 1, payloadLength: payload.length });
        assert.deepEqual(new Uint8Array(f.payload), payload);
      });
      assert.equal(dec.buffered, 0);
    }));
    assert.equal(decodeHeader(encodeHeader({ magic: REPLY_MAGIC, op: 2, flags: 1, requestId: 1, payloadLength: 0, objectId: NO_OBJECT, offset: 2 ** 40 + 3, length: 5, status: 0 })).offset, 2 ** 40 + 3);
  });

  it('rejects a wrong magic from its first bytes', () => {
    const dec = new FrameDecoder(REQUEST_MAGIC);
    assert.deepEqual(dec.push(Buffer.from([0x4b, 0x55])), []);
    assert.throws(() => new FrameDecoder(REQUEST_MAGIC).push(Buffer.from([0x4b, 0x00])), NodeProtocolError);
  });
});
