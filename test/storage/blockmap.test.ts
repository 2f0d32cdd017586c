/**
 * The block map's pure core: block arithmetic, replica bookkeeping and placement, by property
 * (fast-check) plus a few worked examples that pin the readable failures.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_BLOCK_SIZE, blockCount, blockSpan, blocksTouched, coveredRange, coversBlock, isObjectId, isPowerOfTwo, lastInSyncCopies,
  newObjectId, objectsOf, placeObjects, placeReplicas, readableReplicas, removesLastInSyncCopy, replicaProblems, replicaSummary,
  splitRange, writeTargets, type NodeCandidate, type ObjectReplicas, type ReplicaState,
} from '../../src/storage/blockmap/index.js';

const MiB = 1024 * 1024;
const blockSizeArb = fc.integer({ min: 0, max: 26 }).map((k) => 2 ** k);
/** Ranges anywhere in a large volume (up to 2^44 bytes), up to 64 blocks long for small blocks. */
const rangeArb = (bs: number) => fc.tuple(
  fc.integer({ min: 0, max: 2 ** 44 }),
  fc.integer({ min: 0, max: Math.min(64 * bs, 2 ** 28) }),
);
const caseArb = blockSizeArb.chain((bs) => rangeArb(bs).map(([offset, length]) => ({ bs, offset, length })));

describe('block arithmetic', () => {
  it('segments tile the range exactly, in order, without overlap, and never cross a block boundary', () => {
    fc.assert(fc.property(caseArb, ({ bs, offset, length }) => {
      const segs = splitRange(offset, length, bs);
      let pos = offset;
      let rangeOffset = 0;
      for (const s of segs) {
        assert.ok(s.length > 0);
        assert.ok(s.offset >= 0 && s.offset + s.length <= bs, 'inside one block');
        assert.equal(s.block * bs + s.offset, pos, 'contiguous, no gap, no overlap');
        assert.equal(s.rangeOffset, rangeOffset);
        pos += s.length;
        rangeOffset += s.length;
      }
      assert.equal(pos, offset + length, 'covers the whole range');
      // Only the first and last segment may be partial; the blocks are consecutive.
      segs.forEach((s, i) => {
        if (i > 0) assert.equal(s.block, segs[i - 1].block + 1);
        if (i > 0 && i < segs.length - 1) assert.ok(coversBlock(s, bs));
      });
    }), { numRuns: 500 });
  });

  it('coveredRange inverts splitRange; blocksTouched names the segments\' blocks', () => {
    fc.assert(fc.property(caseArb, ({ bs, offset, length }) => {
      const segs = splitRange(offset, length, bs);
      if (length > 0) assert.deepEqual(coveredRange(segs, bs), { offset, length });
      assert.deepEqual(blocksTouched(offset, length, bs), segs.map((s) => s.block));
      const span = blockSpan(offset, length, bs);
      assert.equal(span === null, length === 0);
      if (span) assert.equal(span.last - span.first + 1, segs.length);
    }), { numRuns: 500 });
  });

  it('coveredRange refuses a gap, an overlap and a segment crossing its block', () => {
    const segs = splitRange(MiB, 3 * DEFAULT_BLOCK_SIZE);
    assert.throws(() => coveredRange([segs[0], segs[2]]), /gap/);
    assert.throws(() => coveredRange([segs[0], segs[0]]), /overlap/);
    assert.throws(() => coveredRange([{ block: 0, offset: 4096, length: DEFAULT_BLOCK_SIZE, rangeOffset: 0 }]), /inside one block/);
  });

  it('works on worked examples and rejects bad input', () => {
    assert.deepEqual(splitRange(4 * MiB - 512, 1024), [
      { block: 0, offset: 4 * MiB - 512, length: 512, rangeOffset: 0 },
      { block: 1, offset: 0, length: 512, rangeOffset: 512 },
    ]);
    assert.deepEqual(splitRange(123, 0), []);
    assert.equal(blockCount(10 * 1024 ** 3), 2560);
    assert.equal(blockCount(4 * MiB + 1), 2);
    assert.throws(() => splitRange(0, 10, 3000), /power of two/);
    assert.throws(() => splitRange(-1, 10), /non-negative/);
    assert.throws(() => splitRange(0.5, 10), /non-negative integer/);
    assert.ok(isPowerOfTwo(2 ** 40) && !isPowerOfTwo(2 ** 40 + 2) && !isPowerOfTwo(0));
  });
});

// --- replicas -----------------------------------------------------------------------------------

const nodeIdArb: fc.Arbitrary<string> = fc.constantFrom('n1', 'n2', 'n3', 'n4', 'n5');
const stateArb = fc.constantFrom<ReplicaState>('in-sync', 'syncing', 'out-of-sync');
const objectArb = fc.uniqueArray(fc.record({ nodeId: nodeIdArb, state: stateArb }), { selector: (r) => r.nodeId, maxLength: 4 })
  .map((replicas): ObjectReplicas => ({ objectId: newObjectId(), replicas }));
const objectsArb = fc.array(objectArb, { maxLength: 30 });

describe('replicas', () => {
  it('the last-copy check is true iff some object would lose its only in-sync replicas', () => {
    fc.assert(fc.property(objectsArb, fc.uniqueArray(nodeIdArb, { maxLength: 3 }), (objects, removed) => {
      // The oracle: remove the replicas, count in-sync copies before and after.
      const loses = objects.some((o) => {
        const before = o.replicas.filter((r) => r.state === 'in-sync').length;
        const after = o.replicas.filter((r) => r.state === 'in-sync' && !removed.includes(r.nodeId)).length;
        return before > 0 && after === 0;
      });
      assert.equal(removesLastInSyncCopy(objects, removed), loses);
      for (const id of lastInSyncCopies(objects, removed)) {
        const o = objects.find((x) => x.objectId === id)!;
        assert.ok(readableReplicas(o).every((r) => removed.includes(r.nodeId)));
      }
    }), { numRuns: 500 });
  });

  it('the summary counts every replica once, per node and state', () => {
    fc.assert(fc.property(objectsArb, (objects) => {
      const sum = replicaSummary(objects);
      let total = 0;
      for (const [node, c] of sum) {
        assert.equal(c.inSync + c.syncing + c.outOfSync, c.total);
        const mine = objects.flatMap((o) => o.replicas.filter((r) => r.nodeId === node));
        assert.equal(c.inSync, mine.filter((r) => r.state === 'in-sync').length);
        assert.equal(c.outOfSync, mine.filter((r) => r.state === 'out-of-sync').length);
        total += c.total;
      }
      assert.equal(total, objects.reduce((n, o) => n + o.replicas.length, 0));
      assert.deepEqual([...sum.keys()], [...sum.keys()].sort());
    }));
  });

  it('reads use in-sync copies, writes also reach syncing ones; problems are named', () => {
    const o: ObjectReplicas = { objectId: 'a'.repeat(32), replicas: [
      { nodeId: 'n1', state: 'in-sync' }, { nodeId: 'n2', state: 'syncing' }, { nodeId: 'n3', state: 'out-of-sync' }] };
    assert.deepEqual(readableReplicas(o).map((r) => r.nodeId), ['n1']);
    assert.deepEqual(writeTargets(o).map((r) => r.nodeId), ['n1', 'n2']);
    assert.deepEqual(replicaProblems(o), []);
    assert.match(replicaProblems({ objectId: 'x', replicas: [{ nodeId: 'n1', state: 'in-sync' }, { nodeId: 'n1', state: 'syncing' }] })[0], /two copies on node n1/);
    assert.match(replicaProblems({ objectId: 'x', replicas: [{ nodeId: 'n1', state: 'syncing' }] })[0], /no in-sync replica/);
    const shared = 'b'.repeat(32);
    assert.deepEqual(objectsOf({ blockSize: DEFAULT_BLOCK_SIZE, sizeBytes: 5 * DEFAULT_BLOCK_SIZE, blocks: new Map([[3, shared], [0, o.objectId], [1, shared]]) }),
      [o.objectId, shared]);
    assert.ok(isObjectId(newObjectId()) && !isObjectId('A'.repeat(32)));
  });
});

// --- placement ----------------------------------------------------------------------------------

const candidateArb = fc.record({
  nodeId: nodeIdArb, zone: fc.constantFrom('a', 'b', 'c'), freeBytes: fc.integer({ min: 0, max: 100 }).map((x) => x * MiB), up: fc.boolean(),
});
const placementArb = fc.record({
  replicas: fc.integer({ min: 1, max: 4 }),
  candidates: fc.array(candidateArb, { maxLength: 8 }),
  preferredZone: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
  objectBytes: fc.constantFrom(0, 4 * MiB),
  exclude: fc.uniqueArray(nodeIdArb, { maxLength: 2 }),
});

describe('placement', () => {
  it('never repeats a node, uses only usable nodes, prefers the zone, and fails only when too few qualify', () => {
    fc.assert(fc.property(placementArb, (req) => {
      const r = placeReplicas(req);
      const first = new Map<string, NodeCandidate>();
      for (const c of req.candidates) if (!first.has(c.nodeId)) first.set(c.nodeId, c);
      const usable = [...first.values()].filter((c) => c.up && c.freeBytes >= req.objectBytes && !req.exclude.includes(c.nodeId));
      if (!r.ok) {
        assert.ok(usable.length < req.replicas, r.reason);
        assert.match(r.reason, /need/);
        return;
      }
      assert.equal(r.nodeIds.length, req.replicas);
      assert.equal(new Set(r.nodeIds).size, r.nodeIds.length, 'no node twice');
      for (const id of r.nodeIds) assert.ok(usable.some((c) => c.nodeId === id), `${id} is usable`);
      if (req.preferredZone !== undefined && usable.some((c) => c.zone === req.preferredZone)) {
        assert.equal(first.get(r.nodeIds[0])!.zone, req.preferredZone, 'first copy in the preferred zone');
      }
    }), { numRuns: 1000 });
  });

  it('is deterministic whatever the candidates\' order (unique node ids)', () => {
    const uniq = fc.uniqueArray(candidateArb, { selector: (c) => c.nodeId, maxLength: 5 });
    fc.assert(fc.property(uniq, fc.integer({ min: 1, max: 3 }), fc.constantFrom('a', 'b'), (cands, replicas, zone) => {
      const a = placeReplicas({ replicas, candidates: cands, preferredZone: zone });
      const b = placeReplicas({ replicas, candidates: [...cands].reverse(), preferredZone: zone });
      assert.deepEqual(a, b);
    }));
  });

  it('spreads by free space with a node-id tie-break, and explains a failure', () => {
    const cands: NodeCandidate[] = [
      { nodeId: 'n3', zone: 'b', freeBytes: 900, up: true },
      { nodeId: 'n1', zone: 'a', freeBytes: 100, up: true },
      { nodeId: 'n2', zone: 'a', freeBytes: 500, up: true },
      { nodeId: 'n4', zone: 'b', freeBytes: 900, up: true },
      { nodeId: 'n5', zone: 'a', freeBytes: 10_000, up: false },
    ];
    assert.deepEqual(placeReplicas({ replicas: 2, candidates: cands, preferredZone: 'a' }), { ok: true, nodeIds: ['n2', 'n3'] });
    assert.deepEqual(placeReplicas({ replicas: 1, candidates: cands, preferredZone: 'z' }), { ok: true, nodeIds: ['n3'] });
    assert.deepEqual(placeReplicas({ replicas: 2, candidates: cands, exclude: ['n3'] }), { ok: true, nodeIds: ['n4', 'n2'] });
    const fail = placeReplicas({ replicas: 2, candidates: [cands[1], cands[4]], objectBytes: 200 });
    assert.deepEqual(fail, { ok: false, reason: '2 replicas need 2 storage nodes up with 200 bytes free; none is; down: n5; full: n1' });
    const fail2 = placeReplicas({ replicas: 2, candidates: [cands[1], cands[4]] });
    assert.equal(!fail2.ok && fail2.reason, '2 replicas need 2 storage nodes up; only 1 is (n1); down: n5');
  });

  it('places many objects spreading them as free space evens out', () => {
    const cands: NodeCandidate[] = [
      { nodeId: 'n1', zone: 'a', freeBytes: 10 * MiB, up: true },
      { nodeId: 'n2', zone: 'a', freeBytes: 6 * MiB, up: true },
    ];
    const r = placeObjects(4, { replicas: 1, candidates: cands, objectBytes: 2 * MiB });
    assert.ok(r.ok);
    assert.deepEqual(r.placements, [['n1'], ['n1'], ['n1'], ['n2']]);
    const none = placeObjects(20, { replicas: 1, candidates: cands, objectBytes: 2 * MiB });
    assert.ok(!none.ok && /object 9 of 20/.test(none.reason));
  });
});
