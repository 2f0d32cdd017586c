/**
 * FileBackend on its own: the same bytes land in the file whichever way the I/O is issued ('auto',
 * 'sync', 'async'), zeroing, FUA and flush, sizes and creation, and what 'auto' sends to the thread
 * pool. MemoryBackend is checked against the same script.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileBackend, MemoryBackend, type BlockBackend, type FileIoMode } from '../../src/storage/nbd/index.js';

const MiB = 1024 * 1024;

/** Applies the same writes to a backend and to a plain buffer, then compares both. */
async function script(b: BlockBackend, size: number): Promise<Buffer> {
  const model = Buffer.alloc(size);
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 200; i++) {
    const len = 1 + Math.floor(rnd() * (i % 20 === 0 ? 600_000 : 9000));
    const off = Math.floor(rnd() * (size - len));
    if (i % 9 === 0) {
      model.fill(0, off, off + len);
      await b.writeZeroes(off, len, i % 2 === 0);
    } else {
      const data = randomBytes(len);
      data.copy(model, off);
      await b.write(off, data, i % 5 === 0);
    }
  }
  await b.flush();
  for (const [off, len] of [[0, size], [1, 4095], [size - 1000, 1000], [123_456, 700_000]]) {
    assert.ok((await b.read(off, len)).equals(model.subarray(off, off + len)), `read ${off}+${len}`);
  }
  return model;
}

describe('FileBackend', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kumo-nbd-file-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const io of ['auto', 'sync', 'async'] as FileIoMode[]) {
    it(`io: '${io}' writes, zeroes, reads and flushes the bytes it is given`, async () => {
      const path = join(dir, `${io}.raw`);
      const b = await FileBackend.open(path, { create: true, size: 8 * MiB, io });
      assert.equal(b.size, 8 * MiB);
      const model = await script(b, 8 * MiB);
      await b.close();
      assert.ok((await readFile(path)).equals(model));
      if (io === 'auto') assert.ok(b.stats.syncOps > 0 && b.stats.poolOps > 0, JSON.stringify(b.stats)); // > 256 KiB: pool
      if (io === 'sync') assert.equal(b.stats.poolOps, 0);
      if (io === 'async') assert.equal(b.stats.syncOps, 0);
    });
  }

  it('MemoryBackend follows the same script', async () => {
    const m = new MemoryBackend(8 * MiB);
    await script(m, 8 * MiB);
    await m.trim(0, 8 * MiB);
    assert.equal(m.allocated, 0);
    assert.ok((await m.read(0, 100)).equals(Buffer.alloc(100)));
  });

  it('takes its size from the file, grows a file sparsely, and refuses what it cannot do', async () => {
    const path = join(dir, 'sized.raw');
    await writeFile(path, Buffer.alloc(12345, 1));
    const a = await FileBackend.open(path);
    assert.equal(a.size, 12345);
    await a.close();
    const b = await FileBackend.open(path, { size: 64 * MiB });
    assert.equal(b.size, 64 * MiB);
    assert.ok((await b.read(12340, 10)).equals(Buffer.from([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])));
    await b.close();
    const st = await stat(path);
    assert.equal(st.size, 64 * MiB);
    assert.ok(st.blocks * 512 < MiB, 'grown sparsely');
    const ro = await FileBackend.open(path, { readOnly: true });
    assert.equal(ro.readOnly, true);
    await ro.close();
    await assert.rejects(FileBackend.open(path, { readOnly: true, size: 128 * MiB }));
    await assert.rejects(FileBackend.open(join(dir, 'missing.raw')));
    await assert.rejects(FileBackend.open(join(dir, 'x.raw'), { create: true }));
    await assert.rejects(FileBackend.open(dir));
  });

  it('trim is a no-op: the data stays (TRIM is advisory)', async () => {
    const b = await FileBackend.open(join(dir, 'trim.raw'), { create: true, size: MiB });
    await b.write(0, Buffer.alloc(4096, 9), false);
    await b.trim(0, 4096);
    assert.equal((await b.read(0, 1))[0], 9);
    await b.close();
  });
});
