import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_MIGRATION_POLICY as P, decideMigration, migrationParams } from '../../src/services/migration-policy.js';
import { RESOURCE_TYPES } from '../../src/services/vm-types.js';

const MiB = 2 ** 20, GiB = 2 ** 30;

test('defaults: 300 ms pauses and no throttling for guaranteed and dedicated VMs, 500 ms and auto-converge for best-effort', () => {
  assert.deepEqual(migrationParams('guaranteed', P), { downtimeLimitMs: 300, maxBandwidthBytes: GiB, autoConverge: false, completionTimeoutMs: 600_000 });
  assert.deepEqual(migrationParams('dedicated', P), migrationParams('guaranteed', P));
  assert.deepEqual(migrationParams('best-effort', P), { downtimeLimitMs: 500, maxBandwidthBytes: GiB, autoConverge: true, completionTimeoutMs: 600_000 });
  assert.equal(migrationParams('guaranteed', P, { downtimeLimitMs: 50 }).downtimeLimitMs, 50);
  assert.throws(() => migrationParams('guaranteed', P, { maxBandwidthBytes: 0 }), RangeError);
  assert.throws(() => migrationParams('guaranteed', P, { completionTimeoutMs: NaN }), RangeError);
});

test('an idle VM goes, without auto-converge, whatever its type', () => {
  for (const resourceType of RESOURCE_TYPES) {
    const d = decideMigration({ resourceType, memoryBytes: 4 * GiB, dirtyRateBytes: 0 }, P);
    assert.equal(d.go, true);
    assert.equal(d.params.autoConverge, false);
    assert.equal(d.prediction.passes, 1);
    assert.match(d.reason, /^converges after 1 pass in 4 s/);
  }
});

test('a guaranteed VM dirtying faster than the link is reported with its numbers, not attempted', () => {
  const d = decideMigration({ resourceType: 'guaranteed', memoryBytes: 8 * GiB, dirtyRateBytes: 1.5 * GiB }, P);
  assert.equal(d.go, false);
  assert.equal(d.params.autoConverge, false);
  assert.match(d.reason, /^predicted not to converge: dirty rate 1\.5 GiB\/s ≥ bandwidth 1 GiB\/s.*; auto-converge not allowed for guaranteed VMs — ask the owner to stop it before maintenance$/);
});

test('the same VM as best-effort goes with auto-converge on', () => {
  const d = decideMigration({ resourceType: 'best-effort', memoryBytes: 8 * GiB, dirtyRateBytes: 1.5 * GiB }, P);
  assert.equal(d.go, true, d.reason);
  assert.equal(d.params.autoConverge, true);
  assert.ok(d.prediction.throttlePercent > 0);
  assert.match(d.reason, /^only with auto-converge: converges after/);
});

test('an operator may allow auto-converge for one guaranteed VM', () => {
  const d = decideMigration({ resourceType: 'guaranteed', memoryBytes: 8 * GiB, dirtyRateBytes: 1.5 * GiB }, P, { autoConverge: true });
  assert.equal(d.go, true);
  assert.equal(d.params.autoConverge, true);
});

test('a best-effort VM that even a 99% throttle cannot slow enough is reported too', () => {
  const d = decideMigration({ resourceType: 'best-effort', memoryBytes: GiB, dirtyRateBytes: 200 * GiB }, P);
  assert.equal(d.go, false);
  assert.match(d.reason, /^predicted not to converge even with auto-converge: dirty rate 200 GiB\/s stays ≥ bandwidth 1 GiB\/s even at the 99% auto-converge throttle.*ask the owner/);
});

test('a VM that would converge only after the completion timeout does not go', () => {
  const d = decideMigration({ resourceType: 'guaranteed', memoryBytes: 64 * GiB, dirtyRateBytes: 10 * MiB }, P, { maxBandwidthBytes: 64 * MiB });
  assert.equal(d.prediction.converges, true);
  assert.equal(d.go, false);
  assert.match(d.reason, /^predicted to take 1\d{3} s at 64 MiB\/s, over the 600 s completion timeout$/);
});

test('a VM that goes is predicted to converge within its type\'s limit and the timeout; auto-converge only where allowed and needed', () => {
  const vm = fc.record({
    resourceType: fc.constantFrom(...RESOURCE_TYPES),
    memoryBytes: fc.integer({ min: 0, max: 64 }).map((g) => g * GiB),
    dirtyRateBytes: fc.double({ min: 0, max: 4 * GiB, noNaN: true }),
  });
  fc.assert(fc.property(vm, (v) => {
    const d = decideMigration(v, P);
    const allowed = migrationParams(v.resourceType, P);
    if (d.params.autoConverge) {
      assert.ok(allowed.autoConverge);
      assert.equal(decideMigration(v, P, { autoConverge: false }).go, false);
    }
    if (!d.go) return;
    assert.ok(d.prediction.converges);
    assert.ok(d.prediction.downtimeMs <= allowed.downtimeLimitMs * (1 + 1e-9));
    assert.ok(d.prediction.totalMs <= allowed.completionTimeoutMs);
  }));
});
