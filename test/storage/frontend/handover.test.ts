/**
 * Live migration's switch-over at the session level: a source session on real storage nodes
 * (in-process, 127.0.0.1) hands its lease over through the controller's block map (BlockMaps on
 * SQLite and PostgreSQL, one LocalMapSource per holder), and the destination's DeferredBackend —
 * exported before the lease was there — serves the destination's session once it is opened.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it, type TestContext } from 'node:test';
import { BlockMaps } from '../../../src/services/blockmaps.js';
import { LocalMapSource } from '../../../src/services/local-map.js';
import type { Principal } from '../../../src/services/principal.js';
import { DeferredBackend } from '../../../src/storage/frontend/deferred.js';
import type { MapSource } from '../../../src/storage/frontend/map.js';
import { NodePool } from '../../../src/storage/frontend/pool.js';
import { VolumeSession } from '../../../src/storage/frontend/session.js';
import { BlockError } from '../../../src/storage/nbd/backend.js';
import { MemoryBackend } from '../../../src/storage/nbd/memory-backend.js';
import { StorageNodeServer } from '../../../src/storage/node/index.js';
import { forEachDb, newTenant } from '../../helpers/db.js';
import { registerNode } from '../../services/storage-fixtures.js';
import { defer, pattern, prng } from './nodes.js';

const MiB = 1024 * 1024;
const SRC = 'host-aaaaaaaaaaaa';
const DST = 'host-bbbbbbbbbbbb';

const isEio = (e: unknown) => e instanceof BlockError && e.code === 'EIO';
const pending = async (p: Promise<unknown>) => (await Promise.race([p.then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(r, 50, 'pending'))])) === 'pending';

forEachDb('live migration: the session hands its lease over', (env) => {
  let tenant: Principal;
  let maps: BlockMaps;
  const servers: StorageNodeServer[] = [];
  const dirs: string[] = [];

  before(async () => {
    tenant = await newTenant(env.services, 'handover');
    maps = new BlockMaps(env.db);
    for (let i = 0; i < 2; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'kumo-handover-'));
      dirs.push(dir);
      const server = new StorageNodeServer({ dir, token: 'not-registered-yet', host: '127.0.0.1', port: 0 });
      servers.push(server);
      const { port } = await server.start();
      server.setToken((await registerNode(env.services, `sn-ho-${i}`, 'zone-a', { port })).nodeToken);
    }
  });
  after(async () => {
    for (const s of servers) await s.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** A session of `holder` with a pool of its own (a host of its own). */
  async function open(t: TestContext, volumeId: string, map: MapSource): Promise<VolumeSession> {
    const pool = new NodePool({ client: 'handover-test' });
    defer(t, () => pool.close());
    const s = await VolumeSession.open({ map, volumeId, pool });
    defer(t, () => s.close().catch(() => {}));
    return s;
  }

  /** Writes of every shape (within a block, across blocks, FUA or not), recorded in `model`. */
  async function scribble(s: VolumeSession, model: Buffer, seed: number): Promise<void> {
    const rnd = prng(seed);
    let tag = seed * 1000;
    for (const [off, len, fua] of [[0, 4096, false], [4 * MiB - 100, 300, true], [9 * MiB + 7, 5 * MiB, false]] as [number, number, boolean][]) {
      const data = pattern(len, tag++);
      await s.write(off, data, fua);
      data.copy(model, off);
    }
    const batch: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) {
      const off = i * 256 * 1024 + Math.floor(rnd() * 4096);
      const data = pattern(1 + Math.floor(rnd() * 8192), tag++);
      data.copy(model, off);
      batch.push(s.write(off, data, false));
    }
    await Promise.all(batch);
  }

  it('the destination reads every acknowledged byte; the source fails with EIO; held I/O runs once served', async (t) => {
    const vol = await env.services.volumes.allocate(tenant, { sizeGiB: 1 });
    const src = await open(t, vol, new LocalMapSource(maps, SRC));
    const model = Buffer.alloc(20 * MiB);
    await scribble(src, model, 1);

    const exported = new DeferredBackend(src.size);
    const heldRead = exported.read(4 * MiB - 200, 1000);
    const heldWrite = exported.write(18 * MiB, pattern(4096, 77), true);
    const heldFlush = exported.flush();
    assert.ok(await pending(heldRead), 'I/O waits until the export is served');

    await src.handOver(DST);
    await src.handOver(DST); // again: nothing to do
    await assert.rejects(src.write(0, Buffer.alloc(512, 1), false), isEio);
    await assert.rejects(src.write(19 * MiB, Buffer.alloc(512, 1), true), isEio);
    await assert.rejects(src.read(0, 512), isEio);
    await assert.rejects(src.flush(), isEio);
    await assert.rejects(src.handOver('host-cccccccccccc'), isEio);
    assert.deepEqual(await maps.leaseOf(vol).then((l) => l?.holder), DST);

    const dst = await open(t, vol, new LocalMapSource(maps, DST));
    assert.equal(dst.epoch, src.epoch + 2);
    exported.serve(dst);
    assert.deepEqual(await heldRead, model.subarray(4 * MiB - 200, 4 * MiB + 800));
    await heldWrite;
    await heldFlush;
    pattern(4096, 77).copy(model, 18 * MiB);
    assert.deepEqual(await exported.read(0, model.length), model);
    const into = Buffer.alloc(5 * MiB);
    await exported.readInto(9 * MiB, into);
    assert.deepEqual(into, model.subarray(9 * MiB, 14 * MiB));
    // The destination writes on, the source never did after the hand-over.
    await scribble(dst, model, 2);
    assert.deepEqual(await dst.read(0, model.length), model);
  });

  it('writes in flight when the hand-over starts end before the lease moves; each is acknowledged or fails, none is lost', async (t) => {
    const vol = await env.services.volumes.allocate(tenant, { sizeGiB: 1 });
    const src = await open(t, vol, new LocalMapSource(maps, SRC));
    // Block 0 is allocated, block 1 not: writes there wait for their allocation, and fail once it comes.
    const before = Buffer.alloc(8 * MiB);
    before.fill(0x11, 0, 4 * MiB);
    await src.write(0, before.subarray(0, 4 * MiB), false);
    const writes = Array.from({ length: 64 }, (_, i) => {
      const data = Buffer.alloc(64 * 1024, i + 1);
      return { off: i * 128 * 1024, data, done: src.write(i * 128 * 1024, data, false).then(() => true, (e) => { assert.ok(isEio(e)); return false; }) };
    });
    await src.handOver(DST);
    const acked = await Promise.all(writes.map((w) => w.done));
    assert.deepEqual(acked, writes.map((w) => w.off < 4 * MiB), 'the writes under way were acknowledged, the waiting ones failed');
    const dst = await open(t, vol, new LocalMapSource(maps, DST));
    for (const [i, w] of writes.entries()) {
      const got = await dst.read(w.off, w.data.length);
      if (acked[i]) assert.deepEqual(got, w.data, `acknowledged write ${i}`);
      else assert.ok(got.equals(w.data) || got.equals(before.subarray(w.off, w.off + w.data.length)), `failed write ${i} is all or nothing`);
    }
  });

  it('a hand-over the map refused leaves the source serving; one whose answer was lost fences it', async (t) => {
    const vol = await env.services.volumes.allocate(tenant, { sizeGiB: 1 });
    const local = new LocalMapSource(maps, SRC);
    let mode: 'refuse' | 'lose' = 'refuse';
    const flaky: MapSource = Object.assign(Object.create(local) as LocalMapSource, {
      async handover(volumeId: string, epoch: number, toHolder: string) {
        if (mode === 'lose') await local.handover(volumeId, epoch, toHolder);
        throw new Error('the controller cannot be reached');
      },
    });
    const src = await open(t, vol, flaky);
    await src.write(0, Buffer.alloc(4096, 5), true);
    await assert.rejects(src.handOver(DST), /cannot be reached/);
    await src.write(4096, Buffer.alloc(4096, 6), true);
    assert.deepEqual(await src.read(0, 8192), Buffer.concat([Buffer.alloc(4096, 5), Buffer.alloc(4096, 6)]));
    assert.equal((await maps.leaseOf(vol))?.holder, SRC);

    mode = 'lose';
    await assert.rejects(src.handOver(DST), /cannot be reached/);
    assert.equal(src.isFenced, true);
    await assert.rejects(src.write(0, Buffer.alloc(512), false), isEio);
    const dst = await open(t, vol, new LocalMapSource(maps, DST));
    assert.deepEqual(await dst.read(0, 8192), Buffer.concat([Buffer.alloc(4096, 5), Buffer.alloc(4096, 6)]));
    await assert.rejects(open(t, vol, local), /held by/);
  });
});

it('DeferredBackend: fail() fails held and later I/O; serve() after it serves again; the size must match', async () => {
  const held = new DeferredBackend(1 * MiB);
  const r = held.read(0, 10);
  const w = held.write(0, Buffer.alloc(10), false);
  held.fail(new BlockError('EIO', 'detached'));
  await assert.rejects(r, isEio);
  await assert.rejects(w, isEio);
  await assert.rejects(held.writeZeroes(0, 10, false), isEio);
  assert.equal(held.serving, false);
  assert.throws(() => held.serve(new MemoryBackend(2 * MiB)), /2097152 bytes/);
  const mem = new MemoryBackend(1 * MiB);
  held.serve(mem);
  assert.equal(held.serving, true);
  await held.write(100, Buffer.alloc(10, 9), false);
  await held.trim(100, 5);
  assert.deepEqual(await held.read(100, 10), Buffer.from([0, 0, 0, 0, 0, 9, 9, 9, 9, 9]));
});
