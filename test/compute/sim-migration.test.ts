import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DriverError, type ComputeDriver, type LaunchSpec } from '../../src/compute/driver.js';
import { MigrationError, type MigrationParams, type MigrationProgress } from '../../src/compute/migration.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import { DEFAULT_AUTO_CONVERGE, predictPrecopy } from '../../src/core/precopy.js';

const MiB = 2 ** 20;
const spec = (vmId: string, memoryMiB = 512): LaunchSpec =>
  ({ vmId, name: vmId, vcpus: 1, memoryMiB, architecture: 'x86_64', resourceType: 'guaranteed', disks: [], nics: [] });
const params = (p: Partial<MigrationParams> = {}): MigrationParams =>
  ({ downtimeLimitMs: 300, maxBandwidthBytes: 100 * MiB, autoConverge: false, completionTimeoutMs: 600_000, ...p });
const hosts = (migrationScale: number) =>
  [new SimDriver({ bootMs: 0, shutdownMs: 0, migrationScale }), new SimDriver({ bootMs: 0, shutdownMs: 0, migrationScale })] as const;
const ids = async (d: ComputeDriver) => (await d.list()).map((r) => r.vmId);
const failure = (kind: string, message: RegExp) => (e: unknown) => e instanceof MigrationError && e.kind === kind && message.test(e.message);

test('a VM migrates in process as the model predicts, and runs on the destination once resumed', async () => {
  const [src, dst] = hosts(0);
  await src.start(spec('vm-a'));
  src.setDirtyRate('vm-a', 10 * MiB);
  const { uri } = await dst.migration.prepareIncoming(spec('vm-a'), '127.0.0.1');
  assert.equal(uri, 'sim://vm-a');
  assert.deepEqual(await dst.migration.prepareIncoming(spec('vm-a'), '127.0.0.1'), { uri }, 'prepareIncoming is idempotent');
  assert.deepEqual(await ids(dst), [], 'a VM waiting for its memory is not running yet');

  const seen: MigrationProgress[] = [];
  const out = await src.migration.migrateOut('vm-a', uri, params(), (p) => seen.push(p), new AbortController().signal);
  const p = predictPrecopy({ memoryBytes: 512 * MiB, dirtyRateBytes: 10 * MiB, bandwidthBytes: 100 * MiB, downtimeLimitMs: 300 });
  assert.deepEqual(out, { totalMs: p.totalMs, downtimeMs: p.downtimeMs, setupMs: 0, transferredBytes: p.transferredBytes, passes: 2, throttlePercent: 0 });
  assert.equal(seen.at(-1)!.status, 'completed');
  assert.equal(seen.at(-1)!.transferredBytes, p.transferredBytes);

  await dst.migration.resumeIncoming('vm-a');
  await dst.migration.resumeIncoming('vm-a');
  assert.deepEqual(await ids(dst), ['vm-a']);
  assert.deepEqual(await ids(src), ['vm-a'], 'the source stays until the controller stops it');
  assert.equal(await dst.migration.dirtyRate('vm-a', 1), 10 * MiB, 'the guest keeps dirtying at its new host');
  assert.match((await dst.consoleTail('vm-a', 200)).toString(), /KUMO-RESUME vm=vm-a/);
  await src.stop('vm-a', { force: true, timeoutMs: 0 });
  assert.deepEqual(await ids(src), []);
});

test('progress samples come every 250 ms of wall time and move forward', async () => {
  const [src, dst] = hosts(0.1);
  await src.start(spec('vm-p'));
  src.setDirtyRate('vm-p', 10 * MiB);
  const { uri } = await dst.migration.prepareIncoming(spec('vm-p'), '127.0.0.1');
  const seen: MigrationProgress[] = [];
  const t0 = Date.now();
  await src.migration.migrateOut('vm-p', uri, params(), (p) => seen.push(p), new AbortController().signal);
  assert.ok(Date.now() - t0 >= 560, 'the predicted 5.68 s at a tenth of real time');
  assert.ok(seen.length >= 3 && seen.length <= 5, `${seen.length} samples`);
  for (let k = 1; k < seen.length; k++) {
    assert.ok(seen[k].transferredBytes >= seen[k - 1].transferredBytes);
    assert.ok(seen[k].passes >= seen[k - 1].passes);
  }
  assert.deepEqual([seen[0].passes, seen[0].totalBytes, seen[0].remainingBytes], [1, 512 * MiB, 512 * MiB]);
  assert.equal(seen.at(-1)!.passes, 2);
});

test('cancel: the VM runs on at the source and the destination is gone, as QEMU exits on a broken incoming stream', async () => {
  const [src, dst] = hosts(0.01);
  await src.start(spec('vm-c', 8192));
  const { uri } = await dst.migration.prepareIncoming(spec('vm-c', 8192), '127.0.0.1');
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 30);
  await assert.rejects(src.migration.migrateOut('vm-c', uri, params(), () => {}, ac.signal), failure('cancelled', /runs on at the source/));
  assert.deepEqual(await ids(src), ['vm-c']);
  await assert.rejects(dst.migration.resumeIncoming('vm-c'), DriverError);
  assert.deepEqual(await dst.migration.prepareIncoming(spec('vm-c', 8192), '127.0.0.1'), { uri }, 'a retry can prepare again');
});

test('a migration outlasting its completion timeout ends as a timeout', async () => {
  const [src, dst] = hosts(0);
  await src.start(spec('vm-t'));
  const { uri } = await dst.migration.prepareIncoming(spec('vm-t'), '127.0.0.1');
  await assert.rejects(src.migration.migrateOut('vm-t', uri, params({ completionTimeoutMs: 1000 }), () => {}, new AbortController().signal),
    failure('timeout', /within the 1000 ms completion timeout \(predicted 5120 ms\)/));
  assert.deepEqual(await ids(src), ['vm-t']);
});

test('a guest dirtying faster than the bandwidth fails with the model\'s reason, unless auto-converge may throttle it', async () => {
  const [src, dst] = hosts(0);
  await src.start(spec('vm-d'));
  src.setDirtyRate('vm-d', 150 * MiB);
  const { uri } = await dst.migration.prepareIncoming(spec('vm-d'), '127.0.0.1');
  await assert.rejects(src.migration.migrateOut('vm-d', uri, params(), () => {}, new AbortController().signal),
    failure('failed', /vm-d did not converge: dirty rate 150 MiB\/s ≥ bandwidth 100 MiB\/s: never converges without auto-converge/));
  await dst.migration.prepareIncoming(spec('vm-d'), '127.0.0.1');
  const out = await src.migration.migrateOut('vm-d', uri, params({ autoConverge: true }), () => {}, new AbortController().signal);
  const p = predictPrecopy({ memoryBytes: 512 * MiB, dirtyRateBytes: 150 * MiB, bandwidthBytes: 100 * MiB, downtimeLimitMs: 300, autoConverge: DEFAULT_AUTO_CONVERGE });
  assert.equal(out.throttlePercent, p.throttlePercent);
  assert.ok(out.throttlePercent > 0);
});

test('a destination stopped mid-migration fails the source clearly', async () => {
  const [src, dst] = hosts(0.01);
  await src.start(spec('vm-k', 8192));
  const { uri } = await dst.migration.prepareIncoming(spec('vm-k', 8192), '127.0.0.1');
  setTimeout(() => void dst.stop('vm-k', { force: true, timeoutMs: 0 }), 30);
  await assert.rejects(src.migration.migrateOut('vm-k', uri, params(), () => {}, new AbortController().signal),
    failure('failed', /no sim destination waiting at sim:\/\/vm-k: it went away mid-migration/));
  assert.deepEqual(await ids(src), ['vm-k']);
});

test('a destination in another process: the source completes after the predicted time on its own', async () => {
  const [src, dst] = hosts(0);
  await src.start(spec('vm-r'));
  const out = await src.migration.migrateOut('vm-r', 'sim://vm-r', params(), () => {}, new AbortController().signal);
  assert.ok(Math.abs(out.totalMs - 5120) < 1e-9);
  await assert.rejects(dst.migration.resumeIncoming('vm-r'), /no incoming migration of vm-r waits on this sim host/);
});

test('one VM waits on one sim host at a time; stop() discards a waiting one', async () => {
  const [a, b] = hosts(0);
  await a.migration.prepareIncoming(spec('vm-w'), '127.0.0.1');
  await assert.rejects(b.migration.prepareIncoming(spec('vm-w'), '127.0.0.1'), /already waits for an incoming migration on another sim host/);
  await a.stop('vm-w', { force: true, timeoutMs: 0 });
  await b.migration.prepareIncoming(spec('vm-w'), '127.0.0.1');
  await b.stop('vm-w', { force: true, timeoutMs: 0 });
  await assert.rejects(a.migration.migrateOut('vm-w', 'sim://vm-w', params(), () => {}, new AbortController().signal), failure('failed', /not running on this sim host/));
  assert.throws(() => a.setDirtyRate('vm-w', -1), RangeError);
});
