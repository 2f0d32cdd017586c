import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { limited } from '../../src/core/limit.js';

it('limited: never more than n at once, every call answered with its own result, in order of arrival', async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 30 }), async (n, delays) => {
    let now = 0;
    let peak = 0;
    const started: number[] = [];
    const f = limited(n, async (i: number) => {
      started.push(i);
      peak = Math.max(peak, ++now);
      await new Promise((r) => setTimeout(r, delays[i]));
      now--;
      if (delays[i] === 3) throw new Error(`fail ${i}`);
      return i * 2;
    });
    const results = await Promise.allSettled(delays.map((_, i) => f(i)));
    assert.ok(peak <= n);
    assert.deepEqual(started, delays.map((_, i) => i));
    results.forEach((r, i) => assert.deepEqual(r, delays[i] === 3 ? { status: 'rejected', reason: new Error(`fail ${i}`) } : { status: 'fulfilled', value: i * 2 }));
  }), { numRuns: 40 });
});
