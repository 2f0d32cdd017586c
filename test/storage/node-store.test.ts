/**
 * The storage node's ObjectStore on a real filesystem: data round trips at unaligned offsets,
 * sparseness (st_blocks), trim, durability calls (counted), copies, the open-file bound, and small
 * requests done at once (synchronously) without breaking the per-object order.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import fc from 'fast-check';
import { newObjectId, splitRange } from '../../src/storage/blockmap/index.js';
import { ObjectStore, type ObjectStoreOptions } from '../../src/storage/node/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function store(t: TestContext, opts: ObjectStoreOptions = {}): Promise<ObjectStore> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-objstore-'));
  const s = new ObjectStore(dir, opts);
  await s.open();
  t.after(async () => {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });
  return s;
}

/** A volume of `blocks` objects of `bs` bytes on the store, written and read through splitRange. */
function volume(s: ObjectStore, bs: number, blocks: number) {
  const ids = Array.from({ length: blocks }, () => newObjectId());
  return {
    ids,
    write: (offset: number, data: Buffer, fua = false) =>
      Promise.all(splitRange(offset, data.length, bs).map((g) => s.write(ids[g.block], g.offset, data.subarray(g.rangeOffset, g.rangeOffset + g.length), fua))),
    read: async (offset: number, length: number) => {
      const out = Buffer.alloc(length);
      await Promise.all(splitRange(offset, length, bs).map(async (g) => (await s.read(ids[g.block], g.offset, g.length)).copy(out, g.rangeOffset)));
      return out;
    },
  };
}

describe('ObjectStore', () => {
  it('reads back unaligned writes across object boundaries like a flat buffer would (property)', async (t) => {
    const s = await store(t);
    const bs = 64 * KiB;
    const blocks = 6;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 0, max: bs * blocks - 1 }), fc.integer({ min: 1, max: 3 * bs }), fc.boolean()), { minLength: 1, maxLength: 12 }),
      async (ops) => {
        const vol = volume(s, bs, blocks);
        const model = Buffer.alloc(bs * blocks);
        for (const [offset, len, isWrite] of ops) {
          const length = Math.min(len, model.length - offset);
          if (isWrite) {
            const data = randomBytes(length);
            data.copy(model, offset);
            await vol.write(offset, data);
          } else {
            assert.deepEqual(await vol.read(offset, length), model.subarray(offset, offset + length));
          }
        }
        assert.deepEqual(await vol.read(0, model.length), model);
        await Promise.all(vol.ids.map((id) => s.delete(id)));
      }), { numRuns: 40 });
  });

  it('is sparse: unwritten ranges use no space, a missing object reads as zeros', async (t) => {
    const s = await store(t);
    const id = newObjectId();
    assert.deepEqual(await s.read(id, 123, 4096), Buffer.alloc(4096));
    assert.equal((await s.stat(id)).exists, false);
    assert.deepEqual(await readdir(join(s.dir, 'objects')), [], 'reading creates nothing');

    await s.write(id, 4 * MiB - 4 * KiB, Buffer.alloc(4 * KiB, 7)); // the last 4 KiB of a 4 MiB block
    await s.write(id, 1 * MiB + 100, Buffer.from('hello'));
    const st = await s.stat(id);
    assert.equal(st.size, 4 * MiB);
    assert.ok(st.allocatedBytes <= 64 * KiB, `two small writes in a 4 MiB object use ${st.allocatedBytes} bytes`);
    const fsStat = await stat(s.path(id));
    assert.equal(fsStat.blocks * 512, st.allocatedBytes);
    assert.ok(fsStat.blocks * 512 < fsStat.size / 16);
    assert.equal(s.path(id), join(s.dir, 'objects', id.slice(0, 2), id));
    const all = await s.read(id, 0, 4 * MiB);
    assert.equal(all.subarray(1 * MiB + 100, 1 * MiB + 105).toString(), 'hello');
    assert.equal(all.subarray(4 * MiB - 4 * KiB).every((b) => b === 7), true);
    assert.equal(all.subarray(0, 1 * MiB).every((b) => b === 0), true);
    // Past the file's end, up to the object limit, is zeros too.
    assert.deepEqual(await s.read(id, 4 * MiB, 8192), Buffer.alloc(8192));
    assert.deepEqual(await s.list(), [id]);
  });

  it('trims: a middle range is punched, a tail cut, the whole object removed; all read as zeros after', async (t) => {
    const s = await store(t);
    const id = newObjectId();
    await s.write(id, 0, Buffer.alloc(2 * MiB, 9));
    const full = (await s.stat(id)).allocatedBytes;
    assert.ok(full >= 2 * MiB);

    await s.trim(id, 256 * KiB, 512 * KiB);
    const afterPunch = await s.stat(id);
    assert.equal(afterPunch.size, 2 * MiB, 'a punch keeps the size');
    if (s.punchesHoles) assert.ok(afterPunch.allocatedBytes <= full - 512 * KiB, `punched: ${afterPunch.allocatedBytes} of ${full}`);
    const data = await s.read(id, 0, 2 * MiB);
    assert.ok(data.subarray(256 * KiB, 768 * KiB).every((b) => b === 0));
    assert.ok(data.subarray(0, 256 * KiB).every((b) => b === 9) && data.subarray(768 * KiB).every((b) => b === 9));

    await s.trim(id, 1 * MiB, 4 * MiB); // beyond the end: the tail goes
    assert.equal((await s.stat(id)).size, 1 * MiB);
    assert.deepEqual(await s.read(id, 1 * MiB, 4096), Buffer.alloc(4096));

    await s.trim(id, 0, 4 * MiB, true);
    assert.equal((await s.stat(id)).exists, false, 'a whole-object trim removes the file');
    await s.trim(id, 0, 4 * MiB); // and a trim of a missing object is fine
  });

  it('trims by writing zeros where holes cannot be punched', async (t) => {
    const s = await store(t, { holes: 'zeros' });
    const id = newObjectId();
    await s.write(id, 0, Buffer.alloc(64 * KiB, 1));
    await s.trim(id, 4096, 8192);
    assert.equal(s.punchesHoles, false);
    const d = await s.read(id, 0, 64 * KiB);
    assert.ok(d.subarray(4096, 12288).every((b) => b === 0) && d[4095] === 1 && d[12288] === 1);
  });

  it('syncs on FUA and flush, only what is dirty, and new names with their directories', async (t) => {
    const s = await store(t);
    const [a, b, c] = [newObjectId(), newObjectId(), newObjectId()];
    await s.write(a, 0, Buffer.from('a'));
    assert.equal(s.counters.syncs, 0, 'a plain write does not sync');
    assert.equal(s.dirtyObjects, 1);
    await s.write(b, 0, Buffer.from('b'), true);
    assert.equal(s.counters.syncs, 1, 'a FUA write syncs its object');
    assert.ok(s.counters.dirSyncs >= 1, 'and the new name');
    assert.equal(s.dirtyObjects, 1, 'a FUA write leaves nothing owed');
    await s.write(c, 0, Buffer.from('c'));
    assert.equal(await s.flush([a]), 1, 'flush of one object syncs that one');
    assert.equal(await s.flush([a]), 0, 'nothing left to sync');
    assert.equal(await s.flush(), 1, 'flush of all syncs the remaining dirty object');
    assert.equal(s.dirtyObjects, 0);
    assert.equal(await s.flush(), 0);
    // A flush queued behind an in-flight write on the object covers it.
    const w = s.write(a, 10, Buffer.alloc(MiB, 1));
    const f = s.flush([a]);
    await w;
    assert.equal(await f, 1);
    await s.delete(a, true);
    assert.equal(await s.flush([a]), 0, 'a deleted object owes nothing');
  });

  for (const [io, open] of [['auto', false], ['auto', true], ['async', true]] as const) {
    it(`runs the operations on one object in call order (io ${io}, object ${open ? 'open' : 'new'})`, async (t) => {
      const s = await store(t, { io });
      const id = newObjectId();
      // An open, idle object: the first writes are done at once, the ones queued behind a trim wait.
      if (open) await s.write(id, 0, Buffer.alloc(8 * 4096, 0xff));
      const ps: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) ps.push(s.write(id, (i % 8) * 4096, Buffer.alloc(4096, i)));
      ps.push(s.trim(id, 8 * 4096, 4096), s.write(id, 0, Buffer.alloc(4096, 0xee), true));
      for (let i = 100; i < 200; i++) ps.push(s.write(id, (i % 8) * 4096, Buffer.alloc(4096, i)));
      const read = s.read(id, 0, 8 * 4096);
      ps.push(s.trim(id, 0, 4096));
      const after = s.read(id, 0, 4096);
      await Promise.all(ps);
      const d = await read;
      for (let k = 0; k < 8; k++) assert.equal(d[k * 4096], 192 + k, `slot ${k} holds the last write before the read`);
      assert.deepEqual(await after, Buffer.alloc(4096));
      if (io === 'async') assert.equal(s.io.stats.syncOps, 0);
      else if (open) assert.ok(s.io.stats.syncOps >= 100, `done at once: ${JSON.stringify(s.io.stats)}`);
    });
  }

  it('does a small read or write of an open idle object at once; FUA and queued requests go through the FIFO', async (t) => {
    const s = await store(t);
    const id = newObjectId();
    await s.write(id, 0, Buffer.alloc(8192, 1)); // opens (creates) it: through the FIFO
    const w = s.write(id, 0, Buffer.alloc(4096, 2));
    assert.equal(readFileSync(s.path(id))[0], 2, 'written before the call returned');
    await w;
    assert.equal(s.dirtyObjects, 1);
    const fua = s.write(id, 4096, Buffer.alloc(4096, 3), true);
    const behind = s.write(id, 4096, Buffer.alloc(4096, 4));
    assert.equal(readFileSync(s.path(id))[4096], 1, 'neither is done yet: the FUA write holds the FIFO');
    await Promise.all([fua, behind]);
    assert.equal((await s.read(id, 4096, 1))[0], 4);
    assert.equal(s.dirtyObjects, 1, 'the write after the FUA one is owed to the next flush');
    // The fast path on its own (the in-process client's): at once, or null/false when it must queue.
    assert.deepEqual(s.readNow(id, 4096, 2), Buffer.from([4, 4]));
    const into = Buffer.alloc(3, 9);
    assert.equal(s.readNowInto(id, 8191, into), true);
    assert.deepEqual(into, Buffer.from([4, 0, 0]));
    const queued = s.trim(id, 0, 10);
    assert.equal(s.readNow(id, 0, 1), null, 'behind the queued trim');
    assert.equal(s.writeNow(id, 0, Buffer.from([7])), false);
    assert.deepEqual(await s.readQueued(id, 0, 2), Buffer.from([0, 0]));
    await queued;
    assert.equal(s.readNow(newObjectId(), 0, 1), null, 'not open: queued');
    assert.equal(await s.flush(), 1);
    assert.deepEqual(await s.read(id, 8000, 400), Buffer.concat([Buffer.alloc(192, 4), Buffer.alloc(208)]), 'past the end reads as zeros');
    assert.ok(s.io.stats.syncOps >= 1);
  });

  it('copies from a source: zero chunks stay holes, the old content is replaced, a failure leaves it whole', async (t) => {
    const s = await store(t);
    const id = newObjectId();
    await s.write(id, 0, Buffer.alloc(4 * MiB, 5));
    const src = Buffer.alloc(3 * MiB + 5);
    src.fill(1, 0, 100);
    src.fill(2, 3 * MiB, 3 * MiB + 5);
    const source = { size: src.length, read: async (o: number, n: number) => src.subarray(o, o + n) };
    const r = await s.copyFrom(id, source);
    assert.deepEqual(r, { size: src.length, bytesWritten: MiB + 5 });
    assert.deepEqual(await s.read(id, 0, src.length), src);
    const st = await s.stat(id);
    assert.equal(st.size, src.length);
    assert.ok(st.allocatedBytes <= 1.2 * MiB, `zero chunks are holes: ${st.allocatedBytes}`);
    assert.ok(s.counters.syncs >= 1, 'a copy is synced before it replaces the object');

    const failing = { size: 2 * MiB, read: async (o: number) => { if (o > 0) throw new Error('source went away'); return Buffer.alloc(MiB, 3); } };
    await assert.rejects(s.copyFrom(id, failing, { parallel: 1 }), /source went away/);
    assert.deepEqual(await s.read(id, 0, src.length), src, 'the old content is whole');
    assert.deepEqual(await readdir(join(s.dir, 'tmp')), [], 'no temporary file left');

    await s.copyFrom(id, { size: 0, read: async () => Buffer.alloc(0) });
    assert.equal((await s.stat(id)).exists, false, 'copying an empty (missing) source removes the object');
  });

  it('keeps at most maxOpenFiles descriptors and still syncs what an evicted one wrote', async (t) => {
    const s = await store(t, { maxOpenFiles: 4 });
    const ids = Array.from({ length: 40 }, () => newObjectId());
    await Promise.all(ids.map((id, i) => s.write(id, i * 100, Buffer.from(`object ${i}`))));
    assert.ok(s.counters.evictions >= 36, `evictions: ${s.counters.evictions}`);
    for (const [i, id] of ids.entries()) assert.equal((await s.read(id, i * 100, 20)).toString().replace(/\0+$/, ''), `object ${i}`);
    assert.equal(await s.flush(), 40, 'every object written is synced, open or not');
  });

  it('refuses bad ids and ranges with EINVAL', async (t) => {
    const s = await store(t, { maxObjectBytes: 4 * MiB });
    assert.throws(() => s.read('../../etc/passwd', 0, 1), { code: 'EINVAL' });
    assert.throws(() => s.write(newObjectId(), 4 * MiB - 1, Buffer.alloc(2)), { code: 'EINVAL' });
    assert.throws(() => s.read(newObjectId(), -1, 1), { code: 'EINVAL' });
  });
});
