/**
 * Issue 4's acceptance with QEMU's own clients: a volume session exported by NbdServer on a unix
 * socket, on one and on two replicas (real storage nodes), the first node reached over TCP or in
 * process (a hyperconverged agent's own node). qemu-io writes patterns at many
 * offsets (unaligned too) and reads them back; a random workload (writes, FUA writes, write-zeroes,
 * discards, flushes) leaves the export identical to a reference raw file (qemu-img compare), and
 * both replicas identical to each other.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { NbdServer } from '../../../src/storage/nbd/index.js';
import { prng, qemuIo, randomWorkload, tool } from '../../helpers/qemu-tools.js';
import { defer, KiB, MiB, openVolume, readObject, startNodes, tempDir, type TestNode, type Volume } from './nodes.js';

type Reach = 'network' | 'in-process';

/** `reach`: how the session reaches node-0 (any other node is over TCP). */
async function exported(t: TestContext, replicas: number, sizeBytes: number, blockSize: number, reach: Reach): Promise<{ uri: string; vol: Volume; nodes: TestNode[]; dir: string }> {
  const nodes = await startNodes(t, replicas);
  const vol = await openVolume(t, {
    addrs: nodes.map((n) => n.addr), locations: nodes.map((n) => n.nodeId), sizeBytes, blockSize, inProcess: reach === 'in-process' ? [nodes[0]] : [],
  });
  const dir = await tempDir(t, 'kumo-fe-nbd-');
  const sock = join(dir, 'nbd.sock');
  const server = new NbdServer();
  server.addExport('vol', vol.session);
  await server.listen({ path: sock });
  defer(t, () => server.close());
  return { uri: `nbd+unix:///vol?socket=${sock}`, vol, nodes, dir };
}

/** In process means no TCP at all: the node saw no connection (checked before readObject makes one). */
function checkReach(nodes: TestNode[], reach: Reach): void {
  if (reach === 'in-process') assert.equal(nodes[0].server.connections, 0, 'node-0 was reached in process');
  else assert.equal(nodes[0].server.connections, 1, 'node-0 was reached over TCP');
}

/** Every block's object is the same on every node. */
async function replicasEqual(vol: Volume, nodes: TestNode[], blockSize: number): Promise<void> {
  for (const [block, b] of vol.map.blocks) {
    const first = await readObject(nodes[0].addr, b.objectId, blockSize);
    for (const n of nodes.slice(1)) assert.ok((await readObject(n.addr, b.objectId, blockSize)).equals(first), `block ${block}: ${n.nodeId} equals ${nodes[0].nodeId}`);
  }
}

describe('a volume session exported over NBD, driven by qemu-io and qemu-img', () => {
  for (const [replicas, reach] of [[1, 'network'], [2, 'network'], [1, 'in-process'], [2, 'in-process']] as const) {
    it(`writes patterns at many offsets and reads them back (${replicas} replica${replicas > 1 ? 's' : ''}, node-0 ${reach})`, async (t) => {
      const size = 48 * MiB;
      const { uri, vol, nodes } = await exported(t, replicas, size, 1 * MiB, reach);
      const writes: { off: number; len: number; p: number }[] = [];
      let off = 0;
      const rnd = prng(replicas);
      for (let i = 0; i < 200; i++) {
        off += 1 + Math.floor(rnd() * 200_000);
        const aligned = i % 3 === 0;
        if (aligned) off = Math.ceil(off / 4096) * 4096;
        const len = aligned ? 4096 * (1 + Math.floor(rnd() * 64)) : 1 + Math.floor(rnd() * 70_000);
        if (off + len > size) break;
        writes.push({ off, len, p: 1 + Math.floor(rnd() * 254) });
        off += len;
      }
      writes.push({ off: size - 777, len: 777, p: 0xee });
      await qemuIo(uri, writes.map((w) => `write -P 0x${w.p.toString(16)} ${w.off} ${w.len}`));
      await qemuIo(uri, writes.map((w) => `read -P 0x${w.p.toString(16)} ${w.off} ${w.len}`));
      await qemuIo(uri, writes.slice(0, 60).map((w) => `read -P 0 ${w.off + w.len} 1`));
      // Blocks nothing was written to are not allocated.
      for (const block of vol.map.blocks.keys()) {
        assert.ok(writes.some((w) => w.off < (block + 1) * MiB && w.off + w.len > block * MiB), `block ${block} allocated without a write`);
      }
      checkReach(nodes, reach);
      if (replicas > 1) await replicasEqual(vol, nodes, MiB);
    });
  }

  for (const [replicas, reach] of [[2, 'network'], [1, 'in-process'], [2, 'in-process']] as const) {
    it(`a random workload leaves the export identical to a reference file (qemu-img compare), replicas equal (${replicas} replica${replicas > 1 ? 's' : ''}, node-0 ${reach})`, async (t) => {
      const size = 32 * MiB;
      const bs = 512 * KiB;
      const { uri, vol, nodes, dir } = await exported(t, replicas, size, bs, reach);
      const refPath = join(dir, 'ref.raw');
      await randomWorkload(uri, size, refPath, { discardBlock: bs });
      assert.ok(vol.map.calls('discard').length > 0, 'whole blocks were discarded');
      checkReach(nodes, reach);
      if (replicas > 1) await replicasEqual(vol, nodes, bs);
      // qemu-img convert reads the export back byte for byte as well.
      const copy = join(dir, 'copy.raw');
      await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy]);
      await tool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', copy, refPath]);
    });
  }
});
