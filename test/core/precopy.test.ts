import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_AUTO_CONVERGE, formatRate, predictPrecopy, type AutoConverge, type PrecopyInput } from '../../src/core/precopy.js';

const MiB = 2 ** 20, GiB = 2 ** 30;
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} ≠ ${expected}`);

const memory = fc.double({ min: 0, max: 64 * GiB, noNaN: true }).map(Math.round);
const bandwidth = fc.double({ min: MiB, max: 10 * GiB, noNaN: true });
const limit = fc.double({ min: 1, max: 10_000, noNaN: true });
const passes = fc.integer({ min: 1, max: 60 });
const acArb: fc.Arbitrary<AutoConverge> = fc.integer({ min: 1, max: 99 }).chain((initialPercent) => fc.record({
  initialPercent: fc.constant(initialPercent), incrementPercent: fc.integer({ min: 1, max: 99 }), maxPercent: fc.integer({ min: initialPercent, max: 99 }),
}));
/** Any valid input, with the dirty rate as a multiple of the bandwidth so both sides of D = B are well covered. */
const inputArb = (ratio: fc.Arbitrary<number>, ac: fc.Arbitrary<AutoConverge | null> = fc.constant(null)): fc.Arbitrary<PrecopyInput> =>
  fc.record({ memoryBytes: memory, bandwidthBytes: bandwidth, downtimeLimitMs: limit, maxPasses: passes, ratio, autoConverge: ac, setupMs: fc.double({ min: 0, max: 5000, noNaN: true }) })
    .map(({ ratio: r, ...i }) => ({ ...i, dirtyRateBytes: r * i.bandwidthBytes }));

test('never converges when the dirty rate is at least the bandwidth and auto-converge is off', () => {
  fc.assert(fc.property(inputArb(fc.double({ min: 1, max: 100, noNaN: true })), (i) => {
    const p = predictPrecopy(i);
    assert.equal(p.converges, false);
    assert.equal(p.passes, i.maxPasses);
    assert.equal(p.throttlePercent, 0);
  }));
});

test('a converging prediction pauses within the limit and sends at least the memory; any takes at least M/B', () => {
  fc.assert(fc.property(inputArb(fc.double({ min: 0, max: 2, noNaN: true }), fc.option(acArb, { nil: null })), (i) => {
    const p = predictPrecopy(i);
    assert.ok(p.totalMs >= ((i.memoryBytes / i.bandwidthBytes) * 1000 + i.setupMs!) * (1 - 1e-12), `totalMs ${p.totalMs} < M/B`);
    assert.ok(p.transferredBytes >= i.memoryBytes);
    assert.equal(p.timeline.length, p.passes);
    if (!p.converges) return;
    assert.ok(p.downtimeMs <= i.downtimeLimitMs * (1 + 1e-9), `downtime ${p.downtimeMs} > limit ${i.downtimeLimitMs}`);
    assert.ok(p.passes <= i.maxPasses!);
  }));
});

test('a faster-dirtying guest never takes less time or fewer passes, while both converge', () => {
  fc.assert(fc.property(inputArb(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })), fc.double({ min: 0, max: 1, noNaN: true }), (i, f) => {
    const slower = { ...i, dirtyRateBytes: i.dirtyRateBytes * f };
    const a = predictPrecopy(slower), b = predictPrecopy(i);
    if (!a.converges || !b.converges) return;
    assert.ok(a.totalMs <= b.totalMs, `${a.totalMs} > ${b.totalMs}`);
    assert.ok(a.passes <= b.passes);
  }));
});

test('an idle guest goes in one pass and a pause of nothing', () => {
  fc.assert(fc.property(inputArb(fc.constant(0), fc.option(acArb, { nil: null })), (i) => {
    const p = predictPrecopy(i);
    assert.equal(p.converges, true);
    assert.equal(p.passes, 1);
    assert.equal(p.downtimeMs, 0);
    assert.equal(p.transferredBytes, i.memoryBytes);
    close(p.totalMs, i.setupMs! + (i.memoryBytes / i.bandwidthBytes) * 1000, 'totalMs');
  }));
});

test('auto-converge brings a guest dirtying faster than the link home when its top throttle gets it well below', () => {
  const arb = acArb.filter((ac) => ac.maxPercent > 10).chain((ac) => inputArb(fc.double({ min: 1, max: 0.9 / (1 - ac.maxPercent / 100), noNaN: true }), fc.constant(ac)));
  // An empty guest dirties nothing, so no pass ever looks slow enough to throttle.
  fc.assert(fc.property(arb.filter((i) => i.memoryBytes > 0), (i) => {
    const p = predictPrecopy({ ...i, maxPasses: 1000 });
    assert.equal(p.converges, true, p.reason);
    assert.ok(p.throttlePercent > 0 && p.throttlePercent <= i.autoConverge!.maxPercent);
  }));
});

test('auto-converge leaves a guest alone whose passes halve', () => {
  fc.assert(fc.property(inputArb(fc.double({ min: 0, max: 0.5, noNaN: true }), acArb), (i) => {
    assert.equal(predictPrecopy(i).throttlePercent, 0);
  }));
});

test('512 MiB dirtying 10 MiB/s over 100 MiB/s with a 300 ms limit: two passes and a 51.2 ms pause', () => {
  // Pass 1 sends 512 MiB in 5.12 s while 51.2 MiB get dirty (> the 30 MiB a 300 ms pause sends);
  // pass 2 sends those in 0.512 s while 5.12 MiB get dirty, which the pause sends in 51.2 ms.
  const p = predictPrecopy({ memoryBytes: 512 * MiB, dirtyRateBytes: 10 * MiB, bandwidthBytes: 100 * MiB, downtimeLimitMs: 300 });
  assert.equal(p.converges, true);
  assert.equal(p.passes, 2);
  close(p.downtimeMs, 51.2, 'downtimeMs');
  close(p.totalMs, 5120 + 512 + 51.2, 'totalMs');
  close(p.transferredBytes, (512 + 51.2 + 5.12) * MiB, 'transferredBytes');
  assert.match(p.reason, /converges after 2 passes in 5\.68 s with a 51\.2 ms pause \(dirty rate 10 MiB\/s, bandwidth 100 MiB\/s\)/);
});

test('128 MiB dirtying 80 MiB/s over 32 MiB/s: every pass resends all of it until the prediction gives up', () => {
  const p = predictPrecopy({ memoryBytes: 128 * MiB, dirtyRateBytes: 80 * MiB, bandwidthBytes: 32 * MiB, downtimeLimitMs: 300 });
  assert.equal(p.converges, false);
  assert.equal(p.passes, 30);
  close(p.totalMs, 30 * 4000, 'totalMs');
  close(p.downtimeMs, 4000, 'downtimeMs');
  assert.equal(p.reason, 'dirty rate 80 MiB/s ≥ bandwidth 32 MiB/s: never converges without auto-converge');
  const hopeless = predictPrecopy({ memoryBytes: 128 * MiB, dirtyRateBytes: 8 * GiB, bandwidthBytes: 32 * MiB, downtimeLimitMs: 300, autoConverge: DEFAULT_AUTO_CONVERGE });
  assert.match(hopeless.reason, /dirty rate 8 GiB\/s stays ≥ bandwidth 32 MiB\/s even at the 99% auto-converge throttle/);
});

test('1 GiB dirtying 150 MiB/s over 100 MiB/s converges with QEMU\'s default auto-converge at a 70% throttle', () => {
  // Throttle rises on every second pass that dirties over half what it sent: 20% after pass 2, then
  // 30, 40, 50, 60, 70 after passes 4, 6, 8, 10, 12. Passes 1-7 resend all 1 GiB (10.24 s each);
  // at 70% the guest dirties 45 MiB/s, so passes 13-15 send 167.96, 75.58 and 34.01 MiB, and the
  // 15.31 MiB left take a 153 ms pause.
  const p = predictPrecopy({ memoryBytes: GiB, dirtyRateBytes: 150 * MiB, bandwidthBytes: 100 * MiB, downtimeLimitMs: 300, autoConverge: DEFAULT_AUTO_CONVERGE });
  assert.equal(p.converges, true);
  assert.equal(p.passes, 15);
  assert.equal(p.throttlePercent, 70);
  assert.deepEqual(p.timeline.map((x) => x.throttlePercent), [0, 0, 20, 20, 30, 30, 40, 40, 50, 50, 60, 60, 70, 70, 70]);
  close(p.downtimeMs, 153.055008, 'downtimeMs');
  close(p.totalMs, 105_804.780448, 'totalMs');
});

test('rejects what is not a size, a rate or a limit', () => {
  const ok: PrecopyInput = { memoryBytes: GiB, dirtyRateBytes: 0, bandwidthBytes: GiB, downtimeLimitMs: 300 };
  for (const bad of [
    { memoryBytes: -1 }, { dirtyRateBytes: NaN }, { bandwidthBytes: 0 }, { bandwidthBytes: Infinity }, { downtimeLimitMs: 0 },
    { maxPasses: 0 }, { maxPasses: 1.5 }, { setupMs: -5 }, { autoConverge: { initialPercent: 50, incrementPercent: 10, maxPercent: 40 } },
    { autoConverge: { ...DEFAULT_AUTO_CONVERGE, incrementPercent: 0 } },
  ]) assert.throws(() => predictPrecopy({ ...ok, ...bad }), RangeError, JSON.stringify(bad));
});

test('formatRate speaks binary units', () => {
  assert.equal(formatRate(80 * MiB), '80 MiB/s');
  assert.equal(formatRate(1.5 * GiB), '1.5 GiB/s');
  assert.equal(formatRate(512), '512 B/s');
});
