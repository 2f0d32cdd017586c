/**
 * kumo's NBD server against clients nobody here wrote: QEMU 7.2's qemu-io, qemu-img and qemu-nbd
 * (--list). Exports are FileBackends on temporary raw files, served over a unix socket and TCP.
 * Also NbdClient (ours) against qemu-nbd (theirs), so the client is checked by a real server.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileBackend, NbdClient, NbdServer, type BlockBackend } from '../../src/storage/nbd/index.js';
import { TFLAG } from '../../src/storage/nbd/protocol.js';
import { prng, qemuIo, randomWorkload, tool } from '../helpers/qemu-tools.js';

const MiB = 1024 * 1024;

/** Counts what reaches the backend, to see that QEMU's flushes and FUA writes arrive. */
class Counting implements BlockBackend {
  readonly calls = { write: 0, fuaWrite: 0, flush: 0, writeZeroes: 0, trim: 0 };
  constructor(private readonly b: FileBackend) {}
  get size() {
    return this.b.size;
  }
  get multiConn() {
    return this.b.multiConn;
  }
  read(o: number, l: number) {
    return this.b.read(o, l);
  }
  write(o: number, d: Buffer, fua: boolean) {
    this.calls.write++;
    if (fua) this.calls.fuaWrite++;
    return this.b.write(o, d, fua);
  }
  flush() {
    this.calls.flush++;
    return this.b.flush();
  }
  trim(o: number, l: number) {
    this.calls.trim++;
    return this.b.trim(o, l);
  }
  writeZeroes(o: number, l: number, fua: boolean) {
    this.calls.writeZeroes++;
    return this.b.writeZeroes(o, l, fua);
  }
}

describe('NBD server with QEMU clients', () => {
  let dir: string;
  let server: NbdServer;
  let tcp: NbdServer;
  let sock: string;
  let port: number;
  const backends: FileBackend[] = [];
  const counting: Record<string, Counting> = {};

  async function addVolume(name: string, size: number): Promise<string> {
    const path = join(dir, `${name}.raw`);
    const fb = await FileBackend.open(path, { create: true, size });
    backends.push(fb);
    counting[name] = new Counting(fb);
    server.addExport(name, counting[name]);
    tcp.addExport(name, counting[name]);
    return path;
  }
  const unixUri = (name: string) => `nbd+unix:///${name}?socket=${sock}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kumo-nbd-'));
    sock = join(dir, 'nbd.sock');
    server = new NbdServer();
    tcp = new NbdServer();
    await server.listen({ path: sock });
    const a = await tcp.listen({ host: '127.0.0.1', port: 0 });
    port = (a as { port: number }).port;
  });

  after(async () => {
    await server.close();
    await tcp.close();
    for (const b of backends) await b.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes patterns at many offsets, aligned and not, and reads them back (unix socket)', async () => {
    const path = await addVolume('patterns', 64 * MiB);
    const writes: { off: number; len: number; p: number }[] = [];
    let off = 0;
    const rnd = prng(1);
    for (let i = 0; i < 200; i++) {
      off += 1 + Math.floor(rnd() * 300_000);
      const aligned = i % 3 === 0;
      if (aligned) off = Math.ceil(off / 4096) * 4096;
      const len = aligned ? 4096 * (1 + Math.floor(rnd() * 16)) : 1 + Math.floor(rnd() * 70_000);
      if (off + len > 64 * MiB) break;
      writes.push({ off, len, p: 1 + Math.floor(rnd() * 254) });
      off += len;
    }
    writes.push({ off: 64 * MiB - 777, len: 777, p: 0xee }); // the very end of the export
    await qemuIo(unixUri('patterns'), writes.map((w) => `write -P 0x${w.p.toString(16)} ${w.off} ${w.len}`));
    await qemuIo(unixUri('patterns'), writes.map((w) => `read -P 0x${w.p.toString(16)} ${w.off} ${w.len}`));
    // The gaps between the writes still read as zeroes.
    await qemuIo(unixUri('patterns'), writes.slice(0, 50).map((w) => `read -P 0 ${w.off + w.len} 1`));
    // And the file itself holds exactly those bytes.
    const file = await readFile(path);
    for (const w of writes) assert.ok(file.subarray(w.off, w.off + w.len).every((b) => b === w.p), `bytes at ${w.off}+${w.len}`);
  });

  it('serves over TCP too (nbd://127.0.0.1:PORT/EXPORT)', async () => {
    await addVolume('tcp', 8 * MiB);
    const uri = `nbd://127.0.0.1:${port}/tcp`;
    await qemuIo(uri, ['write -P 0x5a 0 4096', 'write -P 0x33 4097 12345', 'write -P 0x77 8387000 1608']);
    await qemuIo(uri, ['read -P 0x5a 0 4096', 'read -P 0 4096 1', 'read -P 0x33 4097 12345', 'read -P 0x77 8387000 1608']);
    // Same data through the unix socket (one backend, two listeners).
    await qemuIo(unixUri('tcp'), ['read -P 0x33 4097 12345']);
  });

  it('answers qemu-img info and qemu-img convert copies the export byte for byte', async () => {
    const path = await addVolume('convert', 16 * MiB);
    const fh = await open(path, 'r+');
    const data = randomBytes(3 * MiB + 123);
    await fh.write(data, 0, data.length, 5 * MiB + 1);
    await fh.close();
    const info = JSON.parse(await tool('qemu-img', ['info', '--output=json', '-f', 'raw', unixUri('convert')]));
    assert.equal(info['virtual-size'], 16 * MiB);
    const copy = join(dir, 'convert-copy.raw');
    await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', unixUri('convert'), copy]);
    assert.ok((await readFile(copy)).equals(await readFile(path)));
    // And the other way: convert a local image into the export (QEMU as the writer).
    const src = join(dir, 'convert-src.raw');
    await writeFile(src, randomBytes(16 * MiB));
    await tool('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, unixUri('convert')]);
    await tool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', unixUri('convert'), src]);
  });

  it('a random workload leaves the export identical to a reference file (qemu-img compare)', async () => {
    const size = 32 * MiB;
    await addVolume('random', size);
    const refPath = join(dir, 'random-ref.raw');
    await randomWorkload(unixUri('random'), size, refPath);
    // The same check against the export over TCP.
    await tool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd://127.0.0.1:${port}/random`, refPath]);
  });

  it('FUA writes and flushes from QEMU reach the backend', async () => {
    await addVolume('durable', 4 * MiB);
    const c = counting.durable;
    await qemuIo(unixUri('durable'), ['write -f -P 0x11 0 65536', 'flush', 'write -P 0x22 65536 512', 'flush', 'read -P 0x11 0 65536']);
    assert.ok(c.calls.fuaWrite >= 1, `FUA writes: ${c.calls.fuaWrite}`);
    assert.ok(c.calls.flush >= 2, `flushes: ${c.calls.flush}`);
    await qemuIo(unixUri('durable'), ['write -z 4096 8192', 'read -P 0 4096 8192', 'discard 1048576 1048576']);
    assert.ok(c.calls.writeZeroes >= 1);
    assert.ok(c.calls.trim >= 1);
  });

  it('lists the exports to qemu-nbd --list and describes them', async () => {
    await addVolume('listed', 2 * MiB);
    const out = await tool('qemu-nbd', ['--list', '-k', sock]);
    assert.match(out, /export: 'listed'/);
    assert.match(out, /export: 'patterns'/);
    assert.match(out, /min block: 1/);
    assert.match(out, /max block: 33554432/);
    assert.match(out, /flush fua/);
    const names = await NbdClient.list({ path: sock });
    assert.ok(names.includes('listed'));
    const d = await NbdClient.describe({ path: sock }, 'listed');
    assert.equal(d.size, 2 * MiB);
    assert.deepEqual(d.blockSize, { min: 1, preferred: 4096, max: 32 * MiB });
    for (const f of [TFLAG.HAS_FLAGS, TFLAG.SEND_FLUSH, TFLAG.SEND_FUA, TFLAG.SEND_TRIM, TFLAG.SEND_WRITE_ZEROES, TFLAG.CAN_MULTI_CONN]) {
      assert.ok(d.flags & f, `flag ${f}`);
    }
  });

  it('keeps serving while a QEMU client is killed mid-run', async () => {
    await addVolume('killed', 64 * MiB);
    const child: ChildProcess = spawn('qemu-img', ['bench', '-w', '-f', 'raw', '-c', '1000000', '-d', '32', '-s', '65536', unixUri('killed')], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    await qemuIo(unixUri('killed'), ['write -P 0x42 0 4096', 'read -P 0x42 0 4096']);
    await qemuIo(unixUri('patterns'), ['read -P 0xee 67108087 777']);
  });
});

describe('NbdClient against qemu-nbd', () => {
  let dir: string;
  let qnbd: ChildProcess;
  let sock: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kumo-nbdc-'));
    sock = join(dir, 'q.sock');
    const img = join(dir, 'q.raw');
    await writeFile(img, '');
    await truncate(img, 8 * MiB);
    qnbd = spawn('qemu-nbd', ['-f', 'raw', '-t', '-x', 'qvol', '--socket', sock, img], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      const ok = await new Promise<boolean>((r) => {
        const s = connect(sock);
        s.once('connect', () => (s.destroy(), r(true)));
        s.once('error', () => r(false));
      });
      if (ok) break;
      if (i > 100) throw new Error('qemu-nbd did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  after(async () => {
    if (qnbd.exitCode === null) {
      const gone = new Promise((r) => qnbd.once('exit', r));
      qnbd.kill('SIGTERM');
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('negotiates with NBD_OPT_GO and does pipelined I/O', async () => {
    assert.deepEqual(await NbdClient.list({ path: sock }), ['qvol']);
    const c = await NbdClient.connect({ path: sock }, { exportName: 'qvol' });
    assert.equal(c.size, 8 * MiB);
    assert.ok(c.info.blockSize && c.info.blockSize.max >= MiB);
    const blocks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(4096, i + 1));
    await Promise.all(blocks.map((b, i) => c.write(i * 8192, b, { fua: i % 8 === 0 })));
    await c.flush();
    const back = await Promise.all(blocks.map((_, i) => c.read(i * 8192, 4096)));
    back.forEach((b, i) => assert.ok(b.equals(blocks[i]), `block ${i}`));
    await c.writeZeroes(0, 4096);
    assert.ok((await c.read(0, 4096)).equals(Buffer.alloc(4096)));
    await assert.rejects(c.read(8 * MiB, 1), { name: 'NbdRequestError', code: 'EINVAL' });
    await c.disconnect();
  });

  it('falls back to NBD_OPT_EXPORT_NAME when asked', async () => {
    const c = await NbdClient.connect({ path: sock }, { exportName: 'qvol', useExportName: true });
    assert.equal(c.size, 8 * MiB);
    assert.ok((await c.read(8192, 4096)).equals(Buffer.alloc(4096, 2)));
    await c.disconnect();
  });
});
