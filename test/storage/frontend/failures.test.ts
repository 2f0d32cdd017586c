/**
 * Replica failures: a node that stops answering is marked out-of-sync in the map before the write
 * that failed on it is acknowledged; with no in-sync replica left, or the map unreachable, the
 * guest gets EIO; a fenced session fails every request. In-process nodes, stopped on purpose.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockError } from '../../../src/storage/nbd/backend.js';
import type { LogEntry } from './memory-map.js';
import { KiB, openVolume, pattern, readObject, startNodes } from './nodes.js';

const BS = 64 * KiB;
const SIZE = 2 * 1024 * KiB;

const isEio = (e: unknown) => e instanceof BlockError && e.code === 'EIO';
const outOfSyncMarks = (log: LogEntry[], nodeId: string) =>
  log.filter((e): e is Extract<LogEntry, { op: 'update' }> => e.op === 'update')
    .flatMap((e) => e.changes.filter((c) => c.nodeId === nodeId && c.state === 'out-of-sync').map((c) => ({ seq: e.seq, block: c.block })));

describe('VolumeSession with failing replicas', () => {
  it('marks a failed replica out-of-sync durably before acknowledging, then skips it; resync copies only those blocks', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    const model = Buffer.alloc(SIZE);
    const first = pattern(8 * BS, 1);
    await session.write(0, first, false);
    first.copy(model);
    await session.flush();

    await nodes[1].server.stop();
    const data = pattern(3 * BS, 2);
    await session.write(2 * BS + 5, data, false);
    const ack = map.event('ack');
    data.copy(model, 2 * BS + 5);
    const marks = outOfSyncMarks(map.log, 'node-1');
    assert.deepEqual(marks.map((m) => m.block).sort(), [2, 3, 4, 5]);
    for (const m of marks) assert.ok(m.seq < ack, `block ${m.block} marked out-of-sync (seq ${m.seq}) before the ack (seq ${ack})`);
    assert.equal(map.replicaState(2, 'node-1'), 'out-of-sync');
    assert.equal(map.replicaState(0, 'node-1'), 'in-sync');
    assert.deepEqual(session.locations()[1], { nodeId: 'node-1', inSync: 4, syncing: 0, outOfSync: 4 });

    // Later writes to those blocks skip node-1 without another map call; reads use node-0.
    const updates = map.calls('update').length;
    await session.write(3 * BS, Buffer.alloc(100, 0x55), true);
    model.fill(0x55, 3 * BS, 3 * BS + 100);
    assert.equal(map.calls('update').length, updates);
    assert.deepEqual(await session.read(0, SIZE), model);

    // node-1 comes back on its old address and directory; resync copies exactly the stale blocks.
    const { StorageNodeServer } = await import('../../../src/storage/node/index.js');
    const again = new StorageNodeServer({ dir: nodes[1].dir, token: nodes[1].addr.token, host: '127.0.0.1', port: nodes[1].addr.port });
    await again.start();
    t.after(() => again.stop());
    const stale = map.counts('node-1').outOfSync;
    const progress: number[] = [];
    const res = await session.sync('node-1', (p) => progress.push(p.done));
    assert.deepEqual(res, { blocks: 8, copied: stale });
    assert.equal(progress.at(-1), stale);
    assert.deepEqual(map.counts('node-1'), { inSync: 8, syncing: 0, outOfSync: 0, total: 8 });
    for (const [block, b] of map.blocks) {
      const a = await readObject(nodes[0].addr, b.objectId, BS);
      assert.deepEqual(await readObject(nodes[1].addr, b.objectId, BS), a, `block ${block}: replicas equal`);
      assert.deepEqual(a, model.subarray(block * BS, (block + 1) * BS));
    }
    // A second sync has nothing to do.
    assert.deepEqual(await session.sync('node-1'), { blocks: 8, copied: 0 });
  });

  it('never records in-sync for a copied replica that missed a write before its batch was committed', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, {
      addrs: nodes.map((n) => n.addr), locations: ['node-0'], sizeBytes: SIZE, blockSize: BS,
      session: { syncParallel: 1, syncCommitMs: 60_000, syncCommitBlocks: 1000 },
    });
    await session.write(0, pattern(8 * BS, 1), false);
    let during: Promise<void> | null = null;
    const run = session.addLocation('node-1', (p) => {
      if (p.done !== 4) return;
      // Blocks 0-3 are copied (in-sync in memory, not yet in the map); node-1 dies and block 0 is written.
      during = (async () => {
        await nodes[1].server.stop();
        await session.write(100, Buffer.alloc(10, 0x77), false);
        map.event('ack');
      })();
    });
    await assert.rejects(run);
    await during;
    const ack = (map.calls('event')[0]).seq;
    const late = map.log.filter((e) => e.op === 'update' && e.seq > ack && e.changes.some((c) => c.block === 0 && c.nodeId === 'node-1' && c.state === 'in-sync'));
    assert.deepEqual(late, [], 'no in-sync mark for block 0 on node-1 after the write it missed');
    assert.equal(map.replicaState(0, 'node-1'), 'out-of-sync');
    assert.equal(map.counts('node-1').syncing, 0);
    assert.deepEqual((await session.read(100, 10)), Buffer.alloc(10, 0x77));
  });

  it('fails a write with EIO when no in-sync replica took it, without marking the last ones out-of-sync', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    await session.write(0, pattern(2 * BS, 1), false);
    await nodes[0].server.stop();
    await nodes[1].server.stop();
    await assert.rejects(session.write(100, Buffer.alloc(10, 1), false), isEio);
    await assert.rejects(session.read(0, 4096), isEio);
    await assert.rejects(session.write(BS + 100, Buffer.alloc(10, 1), true), isEio);
    assert.equal(map.calls('update').length, 0, 'the map still names both replicas in-sync');
    assert.equal(map.replicaState(0, 'node-0'), 'in-sync');
    // Unwritten blocks still read as zeros (no I/O needed).
    assert.deepEqual(await session.read(10 * BS, 10), Buffer.alloc(10));
  });

  it('fails a flush with EIO when no replica of a dirty block flushed; one that failed is marked out-of-sync', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    await session.write(0, pattern(BS, 1), false);
    await nodes[1].server.stop();
    await session.flush();
    assert.equal(map.replicaState(0, 'node-1'), 'out-of-sync');
    assert.equal(nodes[0].server.store.dirtyObjects, 0);
    await session.write(BS, pattern(BS, 2), false);
    await nodes[0].server.stop();
    await assert.rejects(session.flush(), isEio);
    assert.equal(map.replicaState(1, 'node-0'), 'in-sync', 'the last in-sync replica stays so');
  });

  it('fails the write with EIO when the map cannot record the failed replica, until it can', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    await session.write(0, pattern(2 * BS, 1), false);
    await nodes[1].server.stop();
    map.fail = (op) => (op === 'update' ? new Error('controller unreachable') : undefined);
    await assert.rejects(session.write(10, Buffer.alloc(10, 1), false), isEio);
    // node-1 is skipped now, but the map still says in-sync: no acknowledgement until it is recorded.
    await assert.rejects(session.write(20, Buffer.alloc(10, 1), false), isEio);
    assert.equal(map.replicaState(0, 'node-1'), 'in-sync');
    map.fail = null;
    await session.write(30, Buffer.alloc(10, 3), false);
    assert.equal(map.replicaState(0, 'node-1'), 'out-of-sync');
    assert.deepEqual(await session.read(30, 10), Buffer.alloc(10, 3));
  });

  it('a fenced session fails all I/O with EIO (another holder took the lease)', async (t) => {
    const nodes = await startNodes(t, 1);
    const { session, map } = await openVolume(t, { addrs: [nodes[0].addr], locations: ['node-0'], sizeBytes: SIZE, blockSize: BS });
    await session.write(0, Buffer.alloc(10, 1), false);
    map.takeOver();
    // The next map call (allocating a new block) learns it and fences the session.
    await assert.rejects(session.write(5 * BS, Buffer.alloc(10, 1), false), isEio);
    await assert.rejects(session.write(0, Buffer.alloc(10, 2), false), isEio);
    await assert.rejects(session.read(0, 10), isEio);
    await assert.rejects(session.flush(), isEio);
    await assert.rejects(session.trim(0, 10), isEio);
    await session.close();
    assert.equal(map.calls('release').length, 0, 'a fenced session does not touch the lease');
  });

  it('stops I/O while its lease has lapsed (renewals failing) and resumes once a renewal succeeds', async (t) => {
    const nodes = await startNodes(t, 1);
    const { session, map } = await openVolume(t, {
      addrs: [nodes[0].addr], locations: ['node-0'], sizeBytes: SIZE, blockSize: BS, leaseMs: 90, session: { renewEveryMs: 10 },
    });
    await session.write(0, Buffer.alloc(10, 1), false);
    map.fail = (op) => (op === 'renew' ? new Error('controller unreachable') : undefined);
    const until = async (want: boolean) => {
      for (;;) {
        const ok = await session.read(0, 10).then(() => true, (e) => { assert.ok(isEio(e), String(e)); return false; });
        if (ok === want) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await until(false);
    await assert.rejects(session.write(0, Buffer.alloc(10, 2), false), isEio);
    map.fail = null;
    await until(true);
    await session.write(0, Buffer.alloc(10, 3), false);
    assert.deepEqual(await session.read(0, 10), Buffer.alloc(10, 3));
  });

  it('is fenced by a renewal that finds the lease taken over', async (t) => {
    const nodes = await startNodes(t, 1);
    const { session, map } = await openVolume(t, {
      addrs: [nodes[0].addr], locations: ['node-0'], sizeBytes: SIZE, blockSize: BS, session: { renewEveryMs: 5 },
    });
    await session.write(0, Buffer.alloc(10, 1), false);
    while (map.calls('renew').length < 2) await new Promise((r) => setTimeout(r, 5));
    map.takeOver();
    for (;;) {
      const ok = await session.read(0, 10).then(() => true, (e) => { assert.ok(isEio(e)); return false; });
      if (!ok) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await assert.rejects(session.write(0, Buffer.alloc(10, 2), false), isEio);
  });
});
