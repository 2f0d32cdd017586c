/**
 * Relocation while the guest writes (UKAI fig. 4): one replica on node-0; add node-1 as a location
 * (its copies are made while writes go on, and writes reach it too) → in-sync; removing node-0 is
 * refused while it holds the only in-sync copy, and a refusal leaves writes going to it; then it
 * goes. No acknowledged write is lost and node-0 is gone from the map. Also between a node the
 * session reaches in process (a hyperconverged agent's own) and one over TCP, both ways: the other
 * node pulls from the in-process node's TCP listener, and the in-process node pulls over TCP.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Fault, KumoError } from '../../../src/core/errors.js';
import { InProcessNodeClient } from '../../../src/storage/node/index.js';
import { KiB, openVolume, readObject, startNodes } from './nodes.js';
import { WriteStream } from './workload.js';

const BS = 64 * KiB;
const SIZE = 4 * 1024 * KiB;

const invalidState = (e: unknown) => e instanceof KumoError && e.code === Fault.INVALID_STATE;

describe('relocation under writes', () => {
  for (const inProcess of [[], ['node-0'], ['node-1']]) {
    it(`moves a volume from node-0 to node-1 while it is written, losing nothing (in process: ${inProcess.join(', ') || 'none'})`, async (t) => {
      const nodes = await startNodes(t, 2);
      const { session, map, pool } = await openVolume(t, {
        addrs: nodes.map((n) => n.addr), locations: ['node-0'], sizeBytes: SIZE, blockSize: BS, inProcess: nodes.filter((n) => inProcess.includes(n.nodeId)),
      });
      // The writers cover 48 of the 64 blocks at first, so blocks are allocated during the copy too.
      const stream = new WriteStream(session, map, { sizeBytes: SIZE, blockSize: BS, workers: 4, blocks: 48, seed: 7, fuaEvery: 23 }).start();
      await stream.more(200);

      await assert.rejects(session.removeLocation('node-0'), invalidState, 'the only copy cannot go');
      await stream.more(20);

      const progress: { done: number; total: number; copied: number }[] = [];
      const res = await session.addLocation('node-1', (p) => progress.push(p));
      assert.ok(res.copied > 0 && res.copied <= res.blocks, `copied ${res.copied} of ${res.blocks}`);
      assert.deepEqual(progress.at(-1), { done: res.copied, total: res.copied, copied: res.copied });
      await stream.more(50);
      assert.deepEqual(map.locations, ['node-0', 'node-1']);
      assert.deepEqual(map.counts('node-1'), { inSync: map.blocks.size, syncing: 0, outOfSync: 0, total: map.blocks.size });
      assert.deepEqual(map.counts('node-0'), { inSync: map.blocks.size, syncing: 0, outOfSync: 0, total: map.blocks.size });

      // A refusal by the map (here: it cannot be reached) gives node-0 the writes again; its blocks
      // that missed a write meanwhile are out-of-sync, and a sync brings them back.
      map.fail = (op) => (op === 'removeLocation' ? new Error('controller unreachable') : undefined);
      await assert.rejects(session.removeLocation('node-0'), /controller unreachable/);
      map.fail = null;
      const missed = map.counts('node-0').outOfSync;
      assert.equal(session.locations().find((l) => l.nodeId === 'node-0')!.outOfSync, missed);
      assert.equal((await session.sync('node-0')).copied, missed);
      await stream.more(50);
      await stream.stop(); // a moment without writes in flight, to compare node-0 with what was acknowledged
      assert.deepEqual(map.counts('node-0').inSync, map.blocks.size, 'node-0 took every write since');
      for (const [block, b] of map.blocks) {
        const want = stream.model.subarray(block * BS, (block + 1) * BS);
        assert.ok((await readObject(nodes[0].addr, b.objectId, BS)).equals(want), `node-0 block ${block} current after the refusal`);
      }
      stream.start();
      await stream.more(20);

      await session.removeLocation('node-0');
      assert.deepEqual(map.locations, ['node-1']);
      assert.deepEqual(session.locations().map((l) => l.nodeId), ['node-1']);
      await stream.more(100);
      await stream.stop();
      assert.deepEqual(stream.failed.map(String), []);

      for (const b of map.blocks.values()) assert.deepEqual(b.replicas.map((r) => r.nodeId), ['node-1']);
      assert.ok((await session.read(0, SIZE)).equals(stream.model), 'no acknowledged write lost');
      await session.flush();
      for (const [block, b] of map.blocks) {
        assert.ok((await readObject(nodes[1].addr, b.objectId, BS)).equals(stream.model.subarray(block * BS, (block + 1) * BS)), `node-1 block ${block}`);
      }
      for (const n of nodes) {
        assert.equal(pool.client(n.nodeId) instanceof InProcessNodeClient, inProcess.includes(n.nodeId), `${n.nodeId} reached ${inProcess.includes(n.nodeId) ? 'in process' : 'over TCP'}`);
      }
    });
  }

  it('a sync can be cancelled; the blocks it did not reach stay out-of-sync and a later sync finishes them', async (t) => {
    const nodes = await startNodes(t, 2);
    const { session, map } = await openVolume(t, {
      addrs: nodes.map((n) => n.addr), locations: ['node-0'], sizeBytes: SIZE, blockSize: BS, session: { syncParallel: 1 },
    });
    await session.write(0, Buffer.alloc(SIZE, 0x3c), false);
    const abort = new AbortController();
    const run = session.addLocation('node-1', (p) => { if (p.done === 10) abort.abort(new Error('operator cancelled')); }, abort.signal);
    await assert.rejects(run, /operator cancelled/);
    const c = map.counts('node-1');
    assert.equal(c.syncing, 0, 'nothing left syncing');
    assert.ok(c.inSync >= 10 && c.outOfSync > 0, JSON.stringify(c));
    const res = await session.sync('node-1');
    assert.equal(res.copied, c.outOfSync);
    assert.deepEqual(map.counts('node-1'), { inSync: 64, syncing: 0, outOfSync: 0, total: 64 });
  });
});
