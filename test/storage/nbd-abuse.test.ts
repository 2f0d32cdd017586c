/**
 * The NBD server against clients that misbehave, written byte by byte on raw sockets: garbage in
 * the handshake, wrong magics, requests past the end or too long, unknown commands and flags,
 * disconnects in the middle of a WRITE. Each time the server answers with the NBD error proto.md
 * asks for or drops that one connection, and other connections and exports carry on.
 * Also: pipelining with out-of-order completion, FLUSH ordering, error mapping, read-only exports,
 * removeExport/close with clients attached, the handshake timeout, NBD_FLAG_C_NO_ZEROES.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  BlockError, FileBackend, MemoryBackend, NbdClient, NbdHandshakeError, NbdServer, type BlockBackend,
} from '../../src/storage/nbd/index.js';
import {
  CMD, CMD_FLAG, INFO, NBD_ERR, OPT, REP, TFLAG, decodeOptionReplyHeader, decodeSimpleReply, encodeInfoRequest,
  encodeOption, encodeRequest, readU64,
} from '../../src/storage/nbd/protocol.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw client socket with exact-length reads (independent of the server's byte plumbing). */
class Raw {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((r) =>
      socket.on('close', () => {
        this.ended = true;
        this.wake?.();
        r();
      }),
    );
  }

  static connect(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }

  async read(n: number, timeoutMs = 3000): Promise<Buffer> {
    const until = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buf.length}/${n} bytes`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
      this.wake = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** Resolves true when the server closes the connection within the time. */
  async closedWithin(ms: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(ms).then(() => false)]);
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ------------------------------------------------------------------------------ protocol steps
  /** Reads the greeting and sends client flags (fixed newstyle + no zeroes by default). */
  async greet(clientFlags = 3): Promise<number> {
    const g = await this.read(18);
    assert.equal(g.subarray(0, 16).toString('latin1'), 'NBDMAGICIHAVEOPT');
    const b = Buffer.alloc(4);
    b.writeUInt32BE(clientFlags);
    this.write(b);
    return g.readUInt16BE(16);
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = decodeOptionReplyHeader(await this.read(20));
    assert.ok(h, 'option reply magic');
    return { option: h.option, type: h.type, data: await this.read(h.length) };
  }

  /** NBD_OPT_GO on `name`; resolves with the export's size and transmission flags. */
  async go(name: string): Promise<{ size: number; flags: number }> {
    this.write(encodeOption(OPT.GO, encodeInfoRequest({ name, requests: [INFO.BLOCK_SIZE] })));
    let out: { size: number; flags: number } | undefined;
    for (;;) {
      const r = await this.optionReply();
      if (r.type === REP.ACK) break;
      assert.equal(r.type, REP.INFO, `GO refused: 0x${r.type.toString(16)} ${r.data}`);
      if (r.data.readUInt16BE(0) === INFO.EXPORT) out = { size: readU64(r.data, 2), flags: r.data.readUInt16BE(10) };
    }
    assert.ok(out);
    return out;
  }

  request(type: number, handle: bigint, offset: number, length: number, flags = 0, payload?: Buffer): void {
    this.write(encodeRequest({ type, flags, handle, offset, length }));
    if (payload) this.write(payload);
  }

  async reply(): Promise<{ error: number; handle: bigint }> {
    const r = decodeSimpleReply(await this.read(16));
    assert.ok(r, 'simple reply magic');
    return r;
  }
}

/** Records the order in which operations start and end; writes take `writeDelayMs`. */
class Slow implements BlockBackend {
  readonly events: string[] = [];
  writeDelayMs = 0;
  randomDelayMs = 0;
  constructor(private readonly m: MemoryBackend) {}
  get size() {
    return this.m.size;
  }
  private async delay(ms: number) {
    const d = ms + Math.random() * this.randomDelayMs;
    if (d > 0) await sleep(d);
  }
  async read(o: number, l: number) {
    await this.delay(0);
    return this.m.read(o, l);
  }
  async write(o: number, d: Buffer, fua: boolean) {
    this.events.push(`write-start ${o}`);
    await this.delay(this.writeDelayMs);
    await this.m.write(o, d, fua);
    this.events.push(`write-end ${o}`);
  }
  async flush() {
    this.events.push('flush');
  }
  trim(o: number, l: number) {
    return this.m.trim(o, l);
  }
  writeZeroes(o: number, l: number, fua: boolean) {
    return this.m.writeZeroes(o, l, fua);
  }
}

/** Throws what it is told to. */
class Failing implements BlockBackend {
  next: unknown = null;
  readonly size = 1 * MiB;
  private fail(): void {
    if (this.next) throw this.next;
  }
  async read(_o: number, l: number) {
    this.fail();
    return Buffer.alloc(l);
  }
  async write() {
    this.fail();
  }
  async flush() {
    this.fail();
  }
  async trim() {
    this.fail();
  }
  async writeZeroes() {
    this.fail();
  }
}

describe('NBD server under abuse', () => {
  let dir: string;
  let sock: string;
  let server: NbdServer;
  let mem: MemoryBackend;
  let other: MemoryBackend;
  let file: FileBackend;
  let filePath: string;
  let slow: Slow;
  let failing: Failing;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kumo-nbd-abuse-'));
    sock = join(dir, 'nbd.sock');
    server = new NbdServer({ handshakeTimeoutMs: 500 });
    mem = new MemoryBackend(4 * MiB);
    other = new MemoryBackend(4 * MiB);
    filePath = join(dir, 'file.raw');
    file = await FileBackend.open(filePath, { create: true, size: 4 * MiB });
    slow = new Slow(new MemoryBackend(4 * MiB));
    failing = new Failing();
    server.addExport('mem', mem);
    server.addExport('other', other);
    server.addExport('file', file);
    server.addExport('slow', slow);
    server.addExport('failing', failing);
    server.addExport('ro', new MemoryBackend(1 * MiB, true));
    await server.listen({ path: sock });
  });

  after(async () => {
    await server.close();
    await file.close();
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    slow.writeDelayMs = 0;
    slow.randomDelayMs = 0;
    failing.next = null;
  });

  /** Another export still works: the misbehaving connection was the only casualty. */
  async function othersUnaffected(): Promise<void> {
    const c = await NbdClient.connect({ path: sock }, { exportName: 'other' });
    const data = Buffer.from(`still here ${Math.random()}`);
    await c.write(1000, data);
    assert.ok((await c.read(1000, data.length)).equals(data));
    await c.disconnect();
  }

  // ---------------------------------------------------------------------------------- handshake
  it('drops a client that answers the greeting with garbage (unknown client flags)', async () => {
    const r = await Raw.connect(sock);
    await r.read(18);
    r.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.ok(await r.closedWithin(2000));
    await othersUnaffected();
  });

  it('drops a client whose option has the wrong magic', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    r.write(Buffer.from('IHAVEOPX\0\0\0\x07\0\0\0\0'));
    assert.ok(await r.closedWithin(2000));
    await othersUnaffected();
  });

  it('answers unknown options, STRUCTURED_REPLY and STARTTLS with ERR_UNSUP and keeps negotiating', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    for (const opt of [OPT.STRUCTURED_REPLY, OPT.STARTTLS, OPT.SET_META_CONTEXT, 0x4242]) {
      r.write(encodeOption(opt, opt === 0x4242 ? Buffer.alloc(100, 1) : undefined));
      const rep = await r.optionReply();
      assert.equal(rep.option, opt);
      assert.equal(rep.type, REP.ERR_UNSUP);
    }
    const { size } = await r.go('mem');
    assert.equal(size, 4 * MiB);
    r.destroy();
  });

  it('answers bad INFO/GO/LIST options with the right errors', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    r.write(encodeOption(OPT.GO, encodeInfoRequest({ name: 'nope', requests: [] })));
    assert.equal((await r.optionReply()).type, REP.ERR_UNKNOWN);
    r.write(encodeOption(OPT.INFO, Buffer.from([0, 0, 0, 9, 1]))); // name longer than the data
    assert.equal((await r.optionReply()).type, REP.ERR_INVALID);
    r.write(encodeOption(OPT.LIST, Buffer.from('x')));
    assert.equal((await r.optionReply()).type, REP.ERR_INVALID);
    r.write(encodeOption(OPT.LIST));
    const names: string[] = [];
    for (;;) {
      const rep = await r.optionReply();
      if (rep.type === REP.ACK) break;
      assert.equal(rep.type, REP.SERVER);
      names.push(rep.data.toString('utf8', 4, 4 + rep.data.readUInt32BE(0)));
    }
    assert.deepEqual(names.sort(), ['failing', 'file', 'mem', 'other', 'ro', 'slow']);
    // INFO does not end the handshake; GO after it does.
    r.write(encodeOption(OPT.INFO, encodeInfoRequest({ name: 'mem', requests: [INFO.NAME] })));
    const infos: number[] = [];
    for (;;) {
      const rep = await r.optionReply();
      if (rep.type === REP.ACK) break;
      infos.push(rep.data.readUInt16BE(0));
    }
    assert.deepEqual(infos.sort(), [INFO.EXPORT, INFO.NAME, INFO.BLOCK_SIZE].sort());
    await r.go('mem');
    r.request(CMD.READ, 7n, 0, 16);
    assert.deepEqual(await r.reply(), { error: 0, handle: 7n });
    r.destroy();
  });

  it('terminates the session for EXPORT_NAME of an unknown export', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    r.write(encodeOption(OPT.EXPORT_NAME, Buffer.from('nope')));
    assert.ok(await r.closedWithin(2000));
    await othersUnaffected();
  });

  it('honours NBD_FLAG_C_NO_ZEROES on EXPORT_NAME', async () => {
    for (const [clientFlags, expected] of [[3, 10], [1, 134]] as const) {
      const r = await Raw.connect(sock);
      const hs = await r.greet(clientFlags);
      assert.equal(hs, 3, 'FIXED_NEWSTYLE | NO_ZEROES');
      r.write(encodeOption(OPT.EXPORT_NAME, Buffer.from('mem')));
      const b = await r.read(expected);
      assert.equal(readU64(b, 0), 4 * MiB);
      if (expected === 134) assert.ok(b.subarray(10).every((x) => x === 0));
      r.request(CMD.READ, 1n, 0, 1);
      const rep = await r.reply(); // the next bytes are the reply: no stray zeroes
      assert.deepEqual(rep, { error: 0, handle: 1n });
      r.destroy();
    }
  });

  it('acknowledges NBD_OPT_ABORT and closes', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    r.write(encodeOption(OPT.ABORT));
    assert.equal((await r.optionReply()).type, REP.ACK);
    assert.ok(await r.closedWithin(2000));
  });

  it('drops a client that never finishes the handshake', async () => {
    const r = await Raw.connect(sock);
    await r.read(18);
    assert.ok(await r.closedWithin(3000));
  });

  // ------------------------------------------------------------------------------- transmission
  it('advertises the transmission flags', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    const { flags } = await r.go('mem');
    for (const f of [TFLAG.HAS_FLAGS, TFLAG.SEND_FLUSH, TFLAG.SEND_FUA, TFLAG.SEND_TRIM, TFLAG.SEND_WRITE_ZEROES, TFLAG.CAN_MULTI_CONN]) assert.ok(flags & f);
    assert.equal(flags & TFLAG.READ_ONLY, 0);
    r.destroy();
  });

  it('drops the connection on a bad request magic; other connections to the same export go on', async () => {
    const keep = await NbdClient.connect({ path: sock }, { exportName: 'mem' });
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('mem');
    r.write(Buffer.from('\x25\x60\x95\x14' + '\0'.repeat(24), 'latin1'));
    assert.ok(await r.closedWithin(2000));
    await keep.write(0, Buffer.from('ok'));
    assert.equal((await keep.read(0, 2)).toString(), 'ok');
    await keep.disconnect();
    await othersUnaffected();
  });

  it('answers requests past the end with EINVAL/ENOSPC, the right handle, and keeps the connection', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('mem');
    const size = 4 * MiB;
    r.request(CMD.READ, 0xdeadbeefcafef00dn, size - 10, 11);
    assert.deepEqual(await r.reply(), { error: NBD_ERR.EINVAL, handle: 0xdeadbeefcafef00dn });
    r.request(CMD.READ, 2n, 2 ** 60, 1); // far beyond, and beyond 2^53
    assert.deepEqual(await r.reply(), { error: NBD_ERR.EINVAL, handle: 2n });
    // A WRITE past the end: ENOSPC, and its payload is consumed, not parsed as requests.
    const payload = encodeRequest({ type: CMD.READ, flags: 0, handle: 666n, offset: 0, length: 1 });
    r.request(CMD.WRITE, 3n, size - 10, payload.length, 0, payload);
    assert.deepEqual(await r.reply(), { error: NBD_ERR.ENOSPC, handle: 3n });
    r.request(CMD.WRITE_ZEROES, 4n, size, 1);
    assert.deepEqual(await r.reply(), { error: NBD_ERR.ENOSPC, handle: 4n });
    r.request(CMD.TRIM, 5n, size - 1, 2);
    assert.deepEqual(await r.reply(), { error: NBD_ERR.EINVAL, handle: 5n });
    // Still alive: a valid write and read.
    r.request(CMD.WRITE, 6n, size - 3, 3, 0, Buffer.from('end'));
    assert.deepEqual(await r.reply(), { error: 0, handle: 6n });
    r.request(CMD.READ, 7n, size - 3, 3);
    assert.deepEqual(await r.reply(), { error: 0, handle: 7n });
    assert.equal((await r.read(3)).toString(), 'end');
    r.destroy();
  });

  it('answers oversized requests with EINVAL, reading and discarding a WRITE payload', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('mem');
    const big = 32 * MiB + 1;
    r.request(CMD.READ, 1n, 0, big);
    assert.deepEqual(await r.reply(), { error: NBD_ERR.EINVAL, handle: 1n });
    r.request(CMD.WRITE_ZEROES, 2n, 0, big);
    assert.deepEqual(await r.reply(), { error: NBD_ERR.EINVAL, handle: 2n });
    r.request(CMD.WRITE, 3n, 0, big, 0, Buffer.alloc(big, 0x25)); // 0x25 bytes could look like a request magic
    assert.deepEqual(await r.reply(), { error: NBD_ERR.EINVAL, handle: 3n });
    r.request(CMD.READ, 4n, 0, 4);
    assert.deepEqual(await r.reply(), { error: 0, handle: 4n });
    await r.read(4);
    r.destroy();
  });

  it('answers unknown commands and flags with EINVAL', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('mem');
    r.request(CMD.BLOCK_STATUS, 1n, 0, 512);
    r.request(CMD.CACHE, 2n, 0, 512);
    r.request(99, 3n, 0, 0);
    r.request(CMD.READ, 4n, 0, 512, CMD_FLAG.DF);
    r.request(CMD.WRITE_ZEROES, 5n, 0, 512, CMD_FLAG.FAST_ZERO);
    r.request(CMD.WRITE, 6n, 0, 4, 0x8000, Buffer.from('nope'));
    const replies = await Promise.all([1, 2, 3, 4, 5, 6].map(() => r.reply()));
    assert.deepEqual(replies.map((x) => x.error), Array(6).fill(NBD_ERR.EINVAL));
    assert.deepEqual(replies.map((x) => x.handle).sort(), [1n, 2n, 3n, 4n, 5n, 6n]);
    // FUA on a read, NO_HOLE on write-zeroes, FUA on a flush: accepted.
    r.request(CMD.READ, 7n, 2 * MiB, 4, CMD_FLAG.FUA);
    assert.deepEqual(await r.reply(), { error: 0, handle: 7n });
    assert.equal((await r.read(4)).toString(), '\0\0\0\0');
    r.request(CMD.WRITE_ZEROES, 8n, 0, 4, CMD_FLAG.NO_HOLE | CMD_FLAG.FUA);
    r.request(CMD.FLUSH, 9n, 0, 0, CMD_FLAG.FUA);
    assert.deepEqual([await r.reply(), await r.reply()].map((x) => x.error), [0, 0]);
    r.destroy();
  });

  it('a client vanishing in the middle of a WRITE payload ends only its connection; the write is not applied', async () => {
    const before = await readFile(filePath);
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('file');
    r.request(CMD.WRITE, 1n, 0, 65536, 0, Buffer.alloc(30000, 0x77)); // 30000 of 65536 bytes, then gone
    await sleep(50);
    r.destroy();
    await sleep(50);
    assert.ok((await readFile(filePath)).equals(before));
    const c = await NbdClient.connect({ path: sock }, { exportName: 'file' });
    await c.write(0, Buffer.from('after'), { fua: true });
    assert.equal((await readFile(filePath)).toString('utf8', 0, 5), 'after');
    await c.disconnect();
    await othersUnaffected();
  });

  it('a half-closed client gets the answers to what it sent', async () => {
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('mem');
    for (let i = 1; i <= 20; i++) r.request(CMD.READ, BigInt(i), i * 100, 100);
    r.socket.end();
    for (let i = 1; i <= 20; i++) {
      const rep = await r.reply();
      assert.equal(rep.error, 0);
      await r.read(100);
    }
    assert.ok(await r.closedWithin(2000));
  });

  it('NBD_CMD_DISC answers what is in flight, then closes', async () => {
    slow.writeDelayMs = 100;
    const r = await Raw.connect(sock);
    await r.greet();
    await r.go('slow');
    r.request(CMD.WRITE, 1n, 0, 4, 0, Buffer.from('disc'));
    r.request(CMD.DISC, 2n, 0, 0);
    assert.deepEqual(await r.reply(), { error: 0, handle: 1n });
    assert.ok(await r.closedWithin(2000));
  });

  // ----------------------------------------------------------------------------- concurrency
  it('pipelines: many requests in flight, answered out of order, each reply whole', async () => {
    slow.randomDelayMs = 20;
    const c = await NbdClient.connect({ path: sock }, { exportName: 'slow' });
    const n = 300;
    const bufs = Array.from({ length: n }, (_, i) => Buffer.alloc(1000 + (i % 7) * 1800, i % 251));
    const order: number[] = [];
    await Promise.all(bufs.map((b, i) => c.write(i * 12288, b).then(() => order.push(i))));
    assert.notDeepEqual(order, [...order].sort((a, b) => a - b), 'replies came back in request order: no concurrency?');
    const back = await Promise.all(bufs.map((b, i) => c.read(i * 12288, b.length)));
    back.forEach((b, i) => assert.ok(b.equals(bufs[i]), `block ${i}`));
    await c.disconnect();
  });

  it('FLUSH is answered only after the writes sent before it have completed', async () => {
    slow.writeDelayMs = 80;
    slow.events.length = 0;
    const c = await NbdClient.connect({ path: sock }, { exportName: 'slow' });
    const w1 = c.write(0, Buffer.from('one'));
    const w2 = c.write(4096, Buffer.from('two'));
    await c.flush();
    assert.deepEqual(slow.events.slice(-1), ['flush']);
    assert.ok(slow.events.indexOf('write-end 0') < slow.events.indexOf('flush'));
    assert.ok(slow.events.indexOf('write-end 4096') < slow.events.indexOf('flush'));
    await Promise.all([w1, w2]);
    await c.disconnect();
  });

  it('maps backend errors to NBD errors', async () => {
    const c = await NbdClient.connect({ path: sock }, { exportName: 'failing' });
    const cases: [unknown, string][] = [
      [new BlockError('ENOSPC'), 'ENOSPC'],
      [Object.assign(new Error('quota'), { code: 'EDQUOT' }), 'ENOSPC'],
      [Object.assign(new Error('ro fs'), { code: 'EROFS' }), 'EPERM'],
      [new BlockError('EINVAL'), 'EINVAL'],
      [new Error('anything else'), 'EIO'],
    ];
    for (const [err, code] of cases) {
      failing.next = err;
      await assert.rejects(c.write(0, Buffer.from('x')), { code });
      await assert.rejects(c.read(0, 1), { code });
      await assert.rejects(c.flush(), { code });
    }
    failing.next = null;
    assert.equal((await c.read(0, 3)).length, 3);
    await c.disconnect();
  });

  it('read-only exports advertise it and refuse writes with EPERM', async () => {
    const c = await NbdClient.connect({ path: sock }, { exportName: 'ro' });
    assert.ok(c.readOnly);
    assert.equal(c.flags & TFLAG.SEND_TRIM, 0);
    await assert.rejects(c.write(0, Buffer.from('x')), { code: 'EPERM' });
    await assert.rejects(c.trim(0, 512), { code: 'EPERM' });
    await assert.rejects(c.writeZeroes(0, 512), { code: 'EPERM' });
    assert.equal((await c.read(0, 4)).length, 4);
    await c.flush();
    await c.disconnect();
  });

  it('removeExport answers what is in flight, disconnects its clients and hides the export', async () => {
    const m = new MemoryBackend(MiB);
    const s = new Slow(m);
    s.writeDelayMs = 100;
    server.addExport('doomed', s);
    const c = await NbdClient.connect({ path: sock }, { exportName: 'doomed' });
    const w = c.write(0, Buffer.from('last'));
    await sleep(20);
    await server.removeExport('doomed');
    await w; // answered before the disconnect
    assert.equal((await m.read(0, 4)).toString(), 'last');
    await c.closed;
    await assert.rejects(c.read(0, 1));
    await assert.rejects(NbdClient.connect({ path: sock }, { exportName: 'doomed' }), NbdHandshakeError);
    assert.ok(!server.exportNames().includes('doomed'));
    await othersUnaffected();
  });

  it('close() lets attached clients have their answers, then disconnects them', async () => {
    const s2 = new NbdServer();
    const path = join(dir, 'close.sock');
    const m = new MemoryBackend(MiB);
    const s = new Slow(m);
    s.writeDelayMs = 100;
    s2.addExport('x', s);
    await s2.listen({ path });
    const c = await NbdClient.connect({ path }, { exportName: 'x' });
    const w = c.write(0, Buffer.from('bye'));
    await sleep(20);
    await s2.close();
    await w;
    await c.closed;
    await assert.rejects(Raw.connect(path));
    // A stale socket file left behind is replaced by the next listen().
    const s3 = new NbdServer();
    s3.addExport('x', m);
    await s3.listen({ path });
    const c3 = await NbdClient.connect({ path }, { exportName: 'x' });
    assert.equal((await c3.read(0, 3)).toString(), 'bye');
    await c3.disconnect();
    await s3.close();
  });
});
