/**
 * Live migration between two QEMU drivers on two run directories, as two hosts would be, with real
 * QEMU under TCG and the tiny guest. Both QEMUs of a VM open the same raw file: that is what
 * shared storage is. Two guests run concurrently: one printing a counter (migrated A→B, then a
 * cancelled and a destination-killed migration back, then its disk checked), one dirtying memory
 * faster than the bandwidth allowed (abandoned after the completion timeout). Every QEMU started
 * here is killed by pid in `after`, whatever happened.
 *
 * Root is needed for the NICs (tap devices); without it the guests have none.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LaunchSpec } from '../../src/compute/driver.js';
import { MigrationError, type MigrationParams, type MigrationProgress } from '../../src/compute/migration.js';
import { vmPaths } from '../../src/compute/qemu/cmdline.js';
import { QemuDriver } from '../../src/compute/qemu/driver.js';
import { findQemu, isQemuFor, signal } from '../../src/compute/qemu/process.js';
import { tapExists, tapName } from '../../src/compute/qemu/taps.js';
import { buildTinyImage, type BuildTinyResult } from '../../src/guest/build-tiny.js';
import { testLog } from '../helpers/driver-log.js';
import { until } from '../helpers/poll.js';
import { say } from '../helpers/say.js';

const cacheDir = process.env.KUMO_CACHE ?? join(tmpdir(), 'kumo-guest-cache');
const canTap = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const BOOT_MS = 240_000; // a TCG boot on two loaded cores can take minutes; this is a wait, not a measure
const MIB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), 'kumo-qemu-migration-'));
const runA = join(work, 'host-a');
const runB = join(work, 'host-b');
let img: BuildTinyResult;
let hostA: QemuDriver;
let hostB: QemuDriver;
const exits: string[] = [];
const vmIds: string[] = [];

function spec(append: string, mac: string): LaunchSpec {
  const vmId = `vm-${randomBytes(6).toString('hex')}`;
  vmIds.push(vmId);
  const disk = join(work, `${vmId}.raw`);
  execFileSync('cp', ['--sparse=always', img.disk, disk]);
  return {
    vmId, name: `migrating ${vmId}`, vcpus: 1, memoryMiB: 128, architecture: 'x86_64', resourceType: 'best-effort',
    disks: [{ slot: 0, volumeId: `vol-${vmId.slice(3)}`, sizeGiB: 1, source: { kind: 'file', path: disk } }],
    nics: canTap ? [{ slot: 0, networkId: 'net-x', mac }] : [],
    kernel: { path: img.vmlinux, initrd: img.initrd, append: `console=ttyS0 quiet ${append}` },
  };
}

const consoleText = async (d: QemuDriver, vmId: string) => (await d.consoleTail(vmId, 1 << 20)).toString('latin1');
const counters = (text: string) => [...text.matchAll(/KUMO-COUNTER n=(\d+)\r?\n/g)].map((m) => Number(m[1]));
const lastCounter = async (d: QemuDriver, vmId: string) => Math.max(0, ...counters(await consoleText(d, vmId)));
const runState = async (d: QemuDriver, vmId: string) => (await (await d.qmp(vmId)).queryStatus()).status;
const listed = async (d: QemuDriver, vmId: string) => (await d.list()).some((r) => r.vmId === vmId);
const bootLines = (text: string) => text.match(/KUMO-BOOT vm=/g)?.length ?? 0;

/** The counter keeps going on `d`'s console: a few more numbers than now. */
async function advancing(d: QemuDriver, vmId: string, what: string): Promise<void> {
  const now = await lastCounter(d, vmId);
  await until(`${what}: the counter past ${now}`, 60_000, async () => (await lastCounter(d, vmId)) >= now + 2, 250);
}

/** Whether a QEMU holds the disk for writing: a read-write open then fails on its lock. */
function diskLocked(path: string): boolean {
  const r = spawnSync('qemu-io', ['-f', 'raw', '-c', 'quit', path], { encoding: 'utf8' });
  if (r.status === 0) return false;
  assert.match(r.stderr, /write" lock/);
  return true;
}

async function tapsOf(s: LaunchSpec, variant: 0 | 1): Promise<boolean> {
  return s.nics.length > 0 && (await tapExists(tapName(s.vmId, 0, variant)));
}

const slow: Omit<MigrationParams, 'completionTimeoutMs'> = { downtimeLimitMs: 300, maxBandwidthBytes: MIB, autoConverge: false };

describe('QEMU live migration (real QEMU, TCG)', { concurrency: true }, () => {
  before(async () => {
    img = await buildTinyImage({ cacheDir, outDir: join(work, 'img') });
    hostA = new QemuDriver({ runDir: runA, accel: 'tcg', log: testLog('A') });
    hostB = new QemuDriver({ runDir: runB, accel: 'tcg', log: testLog('B') });
    hostA.onExit((id, why) => exits.push(`A ${id} ${why}`));
    hostB.onExit((id, why) => exits.push(`B ${id} ${why}`));
    say(`tiny image ready (${img.kernelVersion})`);
  }, { timeout: 600_000 });

  after(async () => {
    await Promise.allSettled([hostA?.close(), hostB?.close()]);
    for (const runDir of [runA, runB]) {
      for (const vmId of vmIds) {
        const pid = findQemu(vmPaths(runDir, vmId).pidfile);
        if (pid !== null) {
          console.log(`killing leftover QEMU ${pid} of ${vmId}`);
          signal(pid, 'SIGKILL');
        }
      }
    }
    for (const vmId of vmIds) {
      const cg = `/sys/fs/cgroup/cpu/kumo/${vmId}`;
      for (let i = 0; i < 40 && existsSync(cg); i++) {
        try { rmdirSync(cg); } catch { await sleep(250); }
      }
      if (canTap) {
        for (const variant of [0, 1] as const) {
          try { execFileSync('ip', ['link', 'del', tapName(vmId, 0, variant)], { stdio: 'ignore' }); } catch { /* absent */ }
        }
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  describe('a guest writing a counter to its console and disk every 200 ms', { concurrency: 1 }, () => {
    let s: LaunchSpec;
    let vmId: string;

    before(async () => {
      s = spec('kumo.counter=1 kumo.counter_ms=200', '52:54:00:4d:00:01');
      vmId = s.vmId;
      await hostA.start(s);
      await until('the counter on A', BOOT_MS, async () => (await lastCounter(hostA, vmId)) >= 3, 300);
      say(`counter guest ${vmId} runs on A`);
    }, { timeout: BOOT_MS + 60_000 });

    it('a: moves A→B live: the counter goes on without a reboot, the source is gone, taps change names', { timeout: 120_000 }, async () => {
      const srcPid = (await hostA.pidOf(vmId))!;
      const disk = join(work, `${vmId}.raw`);
      assert.ok(diskLocked(disk), 'the source holds its disk');
      if (canTap) assert.ok(await tapsOf(s, 0), 'source tap, variant 0');

      const { uri } = await hostB.migration.prepareIncoming(s, '127.0.0.1');
      assert.match(uri, /^tcp:127\.0\.0\.1:\d+$/);
      assert.deepEqual(await hostB.migration.prepareIncoming(s, '127.0.0.1'), { uri }, 'a VM already waiting returns its URI');
      const dstPid = (await hostB.pidOf(vmId))!;
      assert.equal(await runState(hostB, vmId), 'inmigrate');
      if (canTap) {
        assert.ok(await tapsOf(s, 1), 'the destination took the other tap names');
        assert.match(await (await hostB.qmp(vmId)).humanMonitorCommand('info network'), new RegExp(`ifname=${tapName(vmId, 0, 1)}`));
      }

      const progress: MigrationProgress[] = [];
      const tMig = Date.now();
      const outcome = await hostA.migration.migrateOut(vmId, uri,
        { downtimeLimitMs: 300, maxBandwidthBytes: 1024 * MIB, autoConverge: false, completionTimeoutMs: 60_000 },
        (p) => progress.push(p), new AbortController().signal);
      say(`a: migrated in ${Date.now() - tMig} ms: ${JSON.stringify(outcome)}, ${progress.length} progress samples`);
      assert.ok(progress.length > 0);
      assert.equal(progress.at(-1)!.status, 'completed');
      assert.ok(outcome.transferredBytes > 0);
      assert.ok(Number.isFinite(outcome.downtimeMs) && outcome.downtimeMs >= 0);
      assert.ok(outcome.totalMs > 0 && outcome.passes >= 1);
      assert.equal(await runState(hostA, vmId), 'postmigrate');
      // The source completes once it has sent everything; the destination may still be loading it.
      let dest = await runState(hostB, vmId);
      for (let i = 0; dest === 'inmigrate' && i < 200; i++) { await sleep(25); dest = await runState(hostB, vmId); }
      assert.equal(dest, 'paused', 'the destination waits for resumeIncoming');
      // Both QEMUs' disks are inactive (no lock, no writes) until resumeIncoming; the guest has not run at B.
      assert.equal(diskLocked(disk), false);
      assert.equal((await hostB.consoleTail(vmId, 1 << 20)).length, 0);
      const again = await hostA.migration.migrateOut(vmId, uri, { ...slow, completionTimeoutMs: 1000 }, () => undefined, new AbortController().signal);
      assert.equal(again.transferredBytes, outcome.transferredBytes, 'a repeated migrateOut reports the completed one');

      const atSource = await lastCounter(hostA, vmId);
      await hostB.migration.resumeIncoming(vmId);
      assert.equal(await runState(hostB, vmId), 'running');
      assert.ok(diskLocked(disk), 'the destination took its disk');
      await hostA.stop(vmId, { force: true, timeoutMs: 1000 });
      assert.ok(!isQemuFor(srcPid, vmPaths(runA, vmId).pidfile), 'the source QEMU is gone');
      assert.equal(await listed(hostA, vmId), false);
      if (canTap) {
        assert.equal(await tapsOf(s, 0), false, 'the source tap was removed');
        assert.ok(await tapsOf(s, 1), 'the destination tap stays');
      }

      await until('later counter values on B', 60_000, async () => (await lastCounter(hostB, vmId)) > atSource + 2, 250);
      const text = await consoleText(hostB, vmId);
      assert.equal(bootLines(text), 0, 'no boot on the destination');
      assert.equal(bootLines(await consoleText(hostA, vmId)), 1);
      assert.equal(await hostB.pidOf(vmId), dstPid);
      say(`a: counter ${atSource} at the source, ${await lastCounter(hostB, vmId)} at the destination`);
    });

    it('c: a cancelled migration B→A leaves the VM running at B and nothing at A', { timeout: 120_000 }, async () => {
      const { uri } = await hostA.migration.prepareIncoming(s, '127.0.0.1');
      const dstPid = (await hostA.pidOf(vmId))!;
      if (canTap) assert.ok(await tapsOf(s, 0), 'back on A, the free variant is 0 again');
      const ac = new AbortController();
      const progress: MigrationProgress[] = [];
      const tMig = Date.now();
      const migrating = hostB.migration.migrateOut(vmId, uri, { ...slow, completionTimeoutMs: 60_000 }, (p) => {
        progress.push(p);
        if (p.transferredBytes > 0 && Date.now() - tMig > 1500) ac.abort();
      }, ac.signal);
      await assert.rejects(migrating, (e: Error) => e instanceof MigrationError && e.kind === 'cancelled');
      say(`c: cancelled after ${Date.now() - tMig} ms, ${progress.length} samples, last ${JSON.stringify(progress.at(-1))}`);
      assert.equal(await runState(hostB, vmId), 'running');
      await advancing(hostB, vmId, 'c');

      await hostA.stop(vmId, { force: true, timeoutMs: 1000 });
      assert.ok(!isQemuFor(dstPid, vmPaths(runA, vmId).pidfile), 'no destination QEMU');
      assert.equal(await listed(hostA, vmId), false);
      if (canTap) {
        assert.equal(await tapsOf(s, 0), false, 'no destination tap');
        assert.ok(await tapsOf(s, 1));
      }
    });

    it('d: killing the destination QEMU mid-migration fails it clearly; the VM runs on at B', { timeout: 120_000 }, async () => {
      const { uri } = await hostA.migration.prepareIncoming(s, '127.0.0.1');
      const dstPid = (await hostA.pidOf(vmId))!;
      const tMig = Date.now();
      let killed = false;
      const migrating = hostB.migration.migrateOut(vmId, uri, { ...slow, completionTimeoutMs: 60_000 }, (p) => {
        if (!killed && p.transferredBytes > 0 && Date.now() - tMig > 1500) {
          killed = true;
          process.kill(dstPid, 'SIGKILL');
        }
      }, new AbortController().signal);
      const err = await migrating.then(() => assert.fail('the migration completed'), (e: unknown) => e);
      assert.ok(err instanceof MigrationError && err.kind === 'failed', String(err));
      assert.match(err.message, new RegExp(`migration of ${vmId} failed: .{8,}; the VM runs on at the source`));
      say(`d: failed ${Date.now() - tMig} ms after the start: ${err.message}`);
      assert.equal(await runState(hostB, vmId), 'running');
      await advancing(hostB, vmId, 'd');

      await hostA.stop(vmId, { force: true, timeoutMs: 1000 });
      assert.equal(await listed(hostA, vmId), false);
      if (canTap) assert.equal(await tapsOf(s, 0), false, 'no destination tap');
    });

    it('after all that, the disk holds every counter value once, in order, and no exit was reported', { timeout: 120_000 }, async () => {
      const shown = await lastCounter(hostB, vmId);
      await hostB.stop(vmId, { force: false, timeoutMs: 60_000 }); // ACPI: / is remounted read-only, so debugfs reads it whole
      const onDisk = execFileSync('debugfs', ['-R', 'cat /var/lib/kumo/counter', join(work, `${vmId}.raw`)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .trim().split('\n').map(Number);
      assert.ok(onDisk.length >= shown, `${onDisk.length} numbers on disk, ${shown} shown`);
      assert.deepEqual(onDisk, onDisk.map((_, i) => i + 1));
      if (canTap) assert.equal(await tapsOf(s, 1), false);
      assert.deepEqual(exits, []);
    });
  });

  describe('a guest dirtying memory faster than the bandwidth', () => {
    it('b: is measured, and abandoned after the completion timeout with the VM running at the source', { timeout: BOOT_MS + 120_000 }, async () => {
      const s = spec('kumo.counter=1 kumo.counter_ms=500 kumo.dirty_mib=32', '52:54:00:4d:00:02');
      const vmId = s.vmId;
      await hostA.start(s);
      await until('KUMO-DIRTY on A', BOOT_MS, async () => /KUMO-DIRTY mib=32/.test(await consoleText(hostA, vmId)), 300);
      say(`b: dirtying guest ${vmId} runs on A`);
      const rate = await hostA.migration.dirtyRate(vmId, 2);
      say(`b: dirty rate ${(rate / MIB).toFixed(1)} MiB/s`);
      assert.ok(rate > slow.maxBandwidthBytes, `dirty rate ${rate} B/s is above the bandwidth`);

      // A destination stopped while it waits goes quietly, taps and all.
      await hostB.migration.prepareIncoming(s, '127.0.0.1');
      const waiting = (await hostB.pidOf(vmId))!;
      await hostB.stop(vmId, { force: false, timeoutMs: 60_000 });
      assert.ok(!isQemuFor(waiting, vmPaths(runB, vmId).pidfile));
      if (canTap) assert.equal(await tapsOf(s, 1), false);

      const { uri } = await hostB.migration.prepareIncoming(s, '127.0.0.1');
      const dstPid = (await hostB.pidOf(vmId))!;
      const progress: MigrationProgress[] = [];
      const tMig = Date.now();
      await assert.rejects(hostA.migration.migrateOut(vmId, uri, { ...slow, completionTimeoutMs: 8000 }, (p) => progress.push(p), new AbortController().signal),
        (e: Error) => e instanceof MigrationError && e.kind === 'timeout' && /did not complete within 8000 ms/.test(e.message));
      const took = Date.now() - tMig;
      say(`b: abandoned after ${took} ms, ${progress.length} samples, last ${JSON.stringify(progress.at(-1))}`);
      assert.ok(took >= 8000);
      assert.ok(progress.length >= 10);
      assert.equal(await runState(hostA, vmId), 'running');
      await advancing(hostA, vmId, 'b');

      await hostB.stop(vmId, { force: true, timeoutMs: 1000 });
      assert.ok(!isQemuFor(dstPid, vmPaths(runB, vmId).pidfile));
      assert.equal(findQemu(vmPaths(runB, vmId).pidfile), null);
      if (canTap) {
        assert.equal(await tapsOf(s, 1), false, 'no destination tap');
        assert.ok(await tapsOf(s, 0), 'the source keeps its tap');
      }
      await hostA.stop(vmId, { force: true, timeoutMs: 1000 });
      assert.equal(findQemu(vmPaths(runA, vmId).pidfile), null);
      assert.deepEqual(exits.filter((e) => e.includes(vmId)), []);
    });
  });
});
