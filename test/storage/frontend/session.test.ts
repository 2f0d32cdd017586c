/**
 * VolumeSession basics on real storage nodes (in-process, 127.0.0.1): round trips on one and two
 * replicas (aligned, unaligned, across blocks), unallocated blocks, allocation coalescing,
 * trim/write-zeroes, flush/FUA reaching fdatasync on every replica, location counts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KiB, openVolume, pattern, prng, readObject, startNodes } from './nodes.js';

const BS = 64 * KiB;
const SIZE = 4 * 1024 * KiB; // 64 blocks

describe('VolumeSession', () => {
  for (const replicas of [1, 2]) {
    it(`round-trips aligned, unaligned and cross-block writes (${replicas} replica${replicas > 1 ? 's' : ''})`, async (t) => {
      const nodes = await startNodes(t, replicas);
      const { session, map } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: nodes.map((n) => n.nodeId), sizeBytes: SIZE, blockSize: BS });
      assert.equal(session.size, SIZE);
      assert.equal(session.multiConn, true);
      const model = Buffer.alloc(SIZE);
      const writes: [number, number][] = [
        [0, 4096], [4096, 512], [BS - 100, 300], [3 * BS + 7, 2 * BS + 11], [SIZE - 4096, 4096], [SIZE - 1, 1],
        [10 * BS, BS], [20 * BS + 1, 1], [30 * BS - 1, 2], [40 * BS + 333, 5 * BS],
      ];
      let tag = 1;
      for (const [off, len] of writes) {
        const data = pattern(len, tag++);
        await session.write(off, data, false);
        data.copy(model, off);
      }
      // Random small writes, many concurrently (disjoint: each 4 KiB slot written at most once at a time).
      const rnd = prng(42);
      const batch: Promise<void>[] = [];
      const used = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const slot = Math.floor(rnd() * (SIZE / 4096));
        if (used.has(slot)) continue;
        used.add(slot);
        const off = slot * 4096 + Math.floor(rnd() * 100);
        const len = 1 + Math.floor(rnd() * (4096 - 100));
        const data = pattern(len, tag++);
        data.copy(model, off);
        batch.push(session.write(off, data, false));
      }
      await Promise.all(batch);
      assert.deepEqual(await session.read(0, SIZE), model, 'whole volume');
      for (const [off, len] of [...writes, [BS - 1, 2], [5, 3 * BS]] as [number, number][]) {
        assert.deepEqual(await session.read(off, len), model.subarray(off, off + len), `read ${off}+${len}`);
        const into = Buffer.alloc(len, 0xaa);
        await session.readInto(off, into);
        assert.deepEqual(into, model.subarray(off, off + len), `readInto ${off}+${len}`);
      }
      // Every replica holds the same bytes.
      for (const [block, b] of map.blocks) {
        const want = model.subarray(block * BS, (block + 1) * BS);
        assert.equal(b.replicas.length, replicas);
        for (const n of nodes) assert.deepEqual(await readObject(n.addr, b.objectId, BS), want, `block ${block} on ${n.nodeId}`);
      }
      await session.close();
      assert.equal(map.held, false, 'lease given back');
    });
  }

  it('reads unallocated blocks as zeros without any node I/O', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map, pool } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    assert.deepEqual(await session.read(0, SIZE), Buffer.alloc(SIZE));
    const into = Buffer.alloc(3 * BS, 1);
    await session.readInto(BS - 5, into);
    assert.deepEqual(into, Buffer.alloc(3 * BS));
    assert.deepEqual(await session.read(SIZE - 1, 1), Buffer.alloc(1));
    assert.equal(map.calls('allocate').length, 0);
    assert.equal(pool.client('node-0'), undefined, 'never connected');
    for (const n of nodes) assert.equal(n.server.connections, 0);
    // A written block next to unwritten ones: only the written part is read from a node.
    await session.write(2 * BS + 10, Buffer.from('hello'), false);
    const r = await session.read(BS, 3 * BS);
    assert.equal(r.subarray(BS + 10, BS + 15).toString(), 'hello');
    assert.equal(r.filter((b) => b !== 0).length, 5);
  });

  it('coalesces concurrent allocations into one map call, and commits them before the write is acknowledged', async (t) => {
    const nodes = await startNodes(t, 1);
    const { session, map } = await openVolume(t, { addrs: [nodes[0].addr], locations: ['node-0'], sizeBytes: SIZE, blockSize: BS });
    await Promise.all(Array.from({ length: 16 }, (_, i) => session.write(i * BS + 100, Buffer.alloc(100, i + 1), false)));
    const allocs = map.calls('allocate');
    assert.equal(allocs.length, 1);
    assert.deepEqual((allocs[0] as { blocks: number[] }).blocks, Array.from({ length: 16 }, (_, i) => i));
    // One write across 5 new blocks: one call.
    await session.write(20 * BS + 1, Buffer.alloc(4 * BS, 7), false);
    assert.deepEqual((map.calls('allocate')[1] as { blocks: number[] }).blocks, [20, 21, 22, 23, 24]);
    // While an allocation is in flight, the blocks wanted meanwhile go out together in the next one.
    map.allocateDelayMs = 20;
    const first = session.write(30 * BS, Buffer.alloc(10, 1), false).then(() => map.event('ack', 30));
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 10 }, (_, i) => session.write((31 + i) * BS, Buffer.alloc(10, 2), false).then(() => map.event('ack', 31 + i)));
    await Promise.all([first, ...rest]);
    const later = map.calls('allocate').slice(2) as { seq: number; blocks: number[] }[];
    assert.equal(later.length, 2);
    assert.deepEqual(later[0].blocks, [30]);
    assert.deepEqual(later[1].blocks, Array.from({ length: 10 }, (_, i) => 31 + i));
    for (const e of map.calls('event') as { seq: number; detail: number }[]) {
      const alloc = later.find((a) => a.blocks.includes(e.detail))!;
      assert.ok(alloc.seq < e.seq, `block ${e.detail} allocated before its write was acknowledged`);
    }
    // Rewriting allocated blocks calls nothing.
    await session.write(0, Buffer.alloc(BS, 9), false);
    assert.equal(map.calls('allocate').length, 4);
  });

  it('trims and writes zeroes: parts of blocks on every replica, whole blocks in the map', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    const data = pattern(8 * BS, 3);
    await session.write(0, data, false);
    const model = Buffer.alloc(SIZE);
    data.copy(model);
    await session.writeZeroes(100, 5000, false);
    model.fill(0, 100, 5100);
    await session.trim(BS - 10, BS + 20); // a tail, a whole block, a head
    model.fill(0, BS - 10, 2 * BS + 10);
    await session.writeZeroes(3 * BS, 2 * BS, true); // two whole blocks, durably
    model.fill(0, 3 * BS, 5 * BS);
    await session.trim(40 * BS, 3 * BS); // never written: nothing to do
    assert.deepEqual(await session.read(0, SIZE), model);
    const discards = map.calls('discard') as { blocks: number[] }[];
    assert.deepEqual(discards.map((d) => d.blocks), [[1], [3, 4]]);
    assert.deepEqual([...map.blocks.keys()].sort((a, b) => a - b), [0, 2, 5, 6, 7]);
    // Both replicas of the partly trimmed blocks read zeros there.
    for (const block of [0, 2]) {
      const b = map.blocks.get(block)!;
      for (const n of nodes) assert.deepEqual(await readObject(n.addr, b.objectId, BS), model.subarray(block * BS, (block + 1) * BS));
    }
    // A discarded block is allocated afresh by its next write.
    const old = map.calls('allocate').length;
    await session.write(3 * BS + 5, Buffer.from('again'), false);
    assert.equal(map.calls('allocate').length, old + 1);
    assert.equal((await session.read(3 * BS, 10)).toString('latin1'), '\0\0\0\0\0again');
  });

  it('FLUSH and FUA reach fdatasync on every replica written', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    const syncs = () => nodes.map((n) => n.server.store.counters.syncs);
    await session.write(0, Buffer.alloc(3 * BS, 1), false);
    const before = syncs();
    for (const n of nodes) assert.ok(n.server.store.dirtyObjects >= 3);
    await session.flush();
    const after = syncs();
    for (let i = 0; i < nodes.length; i++) {
      assert.ok(after[i] >= before[i] + 3, `node-${i}: ${before[i]} → ${after[i]} fdatasyncs`);
      assert.equal(nodes[i].server.store.dirtyObjects, 0);
    }
    // Nothing written since: a flush sends nothing.
    await session.flush();
    assert.deepEqual(syncs(), after);
    await session.write(10 * BS, Buffer.alloc(100, 2), true);
    const fua = syncs();
    for (let i = 0; i < nodes.length; i++) assert.equal(fua[i], after[i] + 1, `FUA write synced on node-${i}`);
    // Concurrent flushes each cover what was written before them.
    await session.write(20 * BS, Buffer.alloc(100, 3), false);
    await Promise.all([session.flush(), session.flush()]);
    for (const n of nodes) assert.equal(n.server.store.dirtyObjects, 0);
  });

  it('counts replicas per location', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    assert.deepEqual(session.locations(), [
      { nodeId: 'node-0', inSync: 0, syncing: 0, outOfSync: 0 }, { nodeId: 'node-1', inSync: 0, syncing: 0, outOfSync: 0 },
    ]);
    await session.write(0, Buffer.alloc(5 * BS, 1), false);
    assert.deepEqual(session.locations(), [
      { nodeId: 'node-0', inSync: 5, syncing: 0, outOfSync: 0 }, { nodeId: 'node-1', inSync: 5, syncing: 0, outOfSync: 0 },
    ]);
  });

  it('opens a map with blocks already written (a reopened volume) and reads them', async (t) => {
    const nodes = await startNodes(t, 2);
    const first = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    const data = pattern(5 * BS + 77, 9);
    await first.session.write(BS / 2, data, true);
    await first.session.close();
    const { VolumeSession } = await import('../../../src/storage/frontend/session.js');
    const again = await VolumeSession.open({ map: first.map, volumeId: first.map.volumeId, pool: first.pool });
    assert.equal(again.epoch, 2);
    assert.deepEqual(await again.read(BS / 2, data.length), data);
    await again.close();
  });
});
