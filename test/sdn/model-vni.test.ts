/** VNI allocation (src/sdn/model/vni.ts): never a VNI in use, never one in the VLAN range. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isVni, pickVni, VNI_MAX, VNI_MIN } from '../../src/sdn/model/vni.js';

test('the VNI range is 24 bits above the 4096 VLAN IDs', async () => {
  assert.deepEqual([VNI_MIN, VNI_MAX], [4096, 2 ** 24 - 1]);
  assert.ok(!isVni(4095) && isVni(4096) && isVni(VNI_MAX) && !isVni(VNI_MAX + 1) && !isVni(5000.5));
  for (let i = 0; i < 1000; i++) assert.ok(isVni((await pickVni(() => false))!));
});

test('random allocate/release in a small range: no VNI reused while in use, none lost', async () => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 40 }), fc.array(fc.oneof(fc.constant('alloc' as const), fc.nat({ max: 60 })), { maxLength: 150 }), fc.integer(),
    async (width, ops, seed) => {
      const range = { min: 100, max: 100 + width - 1 };
      // A deterministic generator, so fast-check can shrink a failure.
      let x = seed >>> 0 || 1;
      const random = (min: number, max: number) => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return min + (x % (max - min)); };
      const inUse = new Set<number>();
      for (const op of ops) {
        if (op === 'alloc') {
          // Enough probes that a free VNI is found whenever one exists, the range being tiny.
          const v = await pickVni((n) => inUse.has(n), { range, random, tries: 5000 });
          if (inUse.size === width) { assert.equal(v, null); continue; }
          assert.ok(v !== null && isVni(v, range), `got ${v}`);
          assert.ok(!inUse.has(v), `VNI ${v} handed out while in use`);
          inUse.add(v);
        } else {
          inUse.delete([...inUse][op % Math.max(1, inUse.size)]);
        }
      }
      // Release everything: the whole range can be handed out again.
      inUse.clear();
      for (let i = 0; i < width; i++) inUse.add((await pickVni((n) => inUse.has(n), { range, random, tries: 50_000 }))!);
      assert.equal(inUse.size, width);
    },
  ), { numRuns: 150 });
});
