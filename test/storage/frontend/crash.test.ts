/**
 * Issue 4's acceptance: a storage node holding one of two replicas is killed with SIGKILL during a
 * write stream. Every acknowledged write reads back intact; each write that started after the kill
 * was acknowledged only after the map recorded the dead node's replica of its block out-of-sync;
 * the volume shows those blocks out-of-sync; after the node returns (same directory and port),
 * resync copies exactly those blocks — while writes go on — and the replicas compare equal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LogEntry } from './memory-map.js';
import { KiB, openVolume, readObject, startChildNode, tempDir } from './nodes.js';
import { WriteStream, type AckDetail } from './workload.js';

const BS = 64 * KiB;
const SIZE = 4 * 1024 * KiB;

describe('storage node killed with -9 under a write stream (2 replicas)', () => {
  it('loses no acknowledged write, marks the node out-of-sync before acknowledging, and resyncs only the stale blocks', async (t) => {
    const dirs = [await tempDir(t, 'kumo-fe-crash-0-'), await tempDir(t, 'kumo-fe-crash-1-')];
    const nodes = [];
    for (const i of [0, 1]) nodes.push(await startChildNode(t, { nodeId: `node-${i}`, dir: dirs[i], token: `token-${i}` }));
    const { session, map, pool } = await openVolume(t, { addrs: nodes.map((n) => n.addr), locations: ['node-0', 'node-1'], sizeBytes: SIZE, blockSize: BS });
    const stream = new WriteStream(session, map, { sizeBytes: SIZE, blockSize: BS, workers: 8, seed: Date.now() % 10_000, fuaEvery: 17 }).start();
    await stream.more(400);

    nodes[1].child.kill('SIGKILL');
    await nodes[1].exited;
    const killed = map.event('killed');
    stream.mark = killed;
    // Few enough writes that some blocks never see one: those must not be copied later.
    await stream.more(40);
    await stream.stop();
    assert.deepEqual(stream.failed.map(String), [], 'no write failed: node-0 took them all');
    assert.ok((await session.read(0, SIZE)).equals(stream.model), 'every acknowledged write reads back');

    // The map recorded node-1's replica out-of-sync before each write that started after the kill was acknowledged.
    const marked = new Map<number, number>();
    for (const e of map.log) {
      if (e.op !== 'update') continue;
      for (const c of e.changes) if (c.nodeId === 'node-1' && c.state === 'out-of-sync' && !marked.has(c.block)) marked.set(c.block, e.seq);
    }
    let checked = 0;
    for (const e of map.log as Extract<LogEntry, { op: 'event' }>[]) {
      if (e.op !== 'event' || e.name !== 'ack') continue;
      const d = e.detail as AckDetail;
      if (d.startedAfter !== killed) continue;
      const at = marked.get(d.block);
      assert.ok(at !== undefined && at < e.seq, `block ${d.block}: marked out-of-sync (seq ${at}) before the ack (seq ${e.seq})`);
      checked++;
    }
    assert.ok(checked >= 40, `${checked} acknowledgements after the kill checked`);
    const stale = map.counts('node-1').outOfSync;
    assert.equal(stale, marked.size);
    assert.ok(stale > 0 && stale < map.blocks.size, `${stale} of ${map.blocks.size} blocks out-of-sync`);
    t.diagnostic(`${stale} of ${map.blocks.size} blocks out-of-sync after the kill`);
    assert.deepEqual(session.locations().find((l) => l.nodeId === 'node-1'), { nodeId: 'node-1', inSync: map.blocks.size - stale, syncing: 0, outOfSync: stale });

    // The node returns on its old directory and port; resync runs while the guest keeps writing.
    const back = await startChildNode(t, { nodeId: 'node-1', dir: dirs[1], token: 'token-1', port: nodes[1].addr.port });
    assert.equal(back.addr.port, nodes[1].addr.port);
    // The frontend sees the node again (as the sync's own first step would) before the guest writes on:
    // a write in the pool's fail-fast window would mark one more block stale, which the sync would copy too.
    await pool.connect('node-1');
    stream.mark = map.event('restarted');
    stream.start();
    const progress: { done: number; total: number; copied: number }[] = [];
    const res = await session.sync('node-1', (p) => progress.push(p));
    await stream.more(100);
    await stream.stop();
    assert.deepEqual(stream.failed.map(String), []);
    assert.equal(res.copied, stale, 'only the out-of-sync blocks were copied');
    assert.equal(res.blocks, map.blocks.size);
    assert.deepEqual(progress.at(-1), { done: stale, total: stale, copied: stale });
    assert.deepEqual(map.counts('node-1'), { inSync: map.blocks.size, syncing: 0, outOfSync: 0, total: map.blocks.size });

    await session.flush();
    assert.ok((await session.read(0, SIZE)).equals(stream.model));
    for (const [block, b] of map.blocks) {
      const want = stream.model.subarray(block * BS, (block + 1) * BS);
      assert.ok((await readObject(nodes[0].addr, b.objectId, BS)).equals(want), `block ${block} on node-0`);
      assert.ok((await readObject(back.addr, b.objectId, BS)).equals(want), `block ${block} on node-1`);
    }
    await session.close();
  });
});
