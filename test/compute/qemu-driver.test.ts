/**
 * The QEMU driver against real QEMU under TCG, booting the tiny guest (kernel boot from vmlinux +
 * initrd; the guest prints `KUMO-BOOT vm=<id> boot=<n>` and powers off on the ACPI button once
 * acpid runs). The scenarios run concurrently, each with its own run directory and driver, to stay
 * within about a minute and a half on a loaded two-core machine. Every QEMU started here is killed
 * by pid in `after`, whatever happened.
 *
 * Root is needed only for the NIC (tap device) part of the first scenario, which is skipped
 * without it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DriverError, type LaunchSpec } from '../../src/compute/driver.js';
import { chooseAccel, kvmDeviceOpens } from '../../src/compute/qemu/accel.js';
import { vmPaths } from '../../src/compute/qemu/cmdline.js';
import { QemuDriver } from '../../src/compute/qemu/driver.js';
import { findQemu, isQemuFor, procCmdline, signal } from '../../src/compute/qemu/process.js';
import { tapExists, tapName } from '../../src/compute/qemu/taps.js';
import { buildTinyImage, type BuildTinyResult } from '../../src/guest/build-tiny.js';
import { testLog } from '../helpers/driver-log.js';
import { until } from '../helpers/poll.js';
import { say } from '../helpers/say.js';

const cacheDir = process.env.KUMO_CACHE ?? join(tmpdir(), 'kumo-guest-cache');
const canTap = process.getuid?.() === 0 && existsSync('/dev/net/tun');
const BOOT_MS = 240_000; // a TCG boot on two loaded cores can take minutes; this is a wait, not a measure

const work = mkdtempSync(join(tmpdir(), 'kumo-qemu-driver-'));
let img: BuildTinyResult;
const runDirs: string[] = [];
const drivers: QemuDriver[] = [];

function newDriver(runDir: string, tag: string): QemuDriver {
  const d = new QemuDriver({ runDir, accel: 'tcg', log: testLog(tag) });
  drivers.push(d);
  return d;
}

function newRunDir(): string {
  const dir = mkdtempSync(join(work, 'run-'));
  runDirs.push(dir);
  return dir;
}

const newVmId = () => `vm-${randomBytes(6).toString('hex')}`;

function spec(vmId: string, over: Partial<LaunchSpec> = {}): LaunchSpec {
  const disk = join(work, `${vmId}.raw`);
  execFileSync('cp', ['--sparse=always', img.disk, disk]);
  return {
    vmId, name: `test ${vmId}`, vcpus: 1, memoryMiB: 128, architecture: 'x86_64', resourceType: 'best-effort',
    disks: [{ slot: 0, volumeId: `vol-${vmId.slice(3)}`, sizeGiB: 1, source: { kind: 'file', path: disk } }],
    nics: [],
    kernel: { path: img.vmlinux, initrd: img.initrd, append: 'console=ttyS0 quiet' },
    ...over,
  };
}

/** Every process on this host started with this pidfile (to prove nothing ran twice). */
function qemusWithPidfile(pidfile: string): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => {
    const argv = procCmdline(pid);
    const i = argv?.indexOf('-pidfile') ?? -1;
    return i >= 0 && argv![i + 1] === pidfile && isQemuFor(pid, pidfile);
  });
}

const marker = (vmId: string, boot: number) => new RegExp(`KUMO-BOOT vm=${vmId} boot=${boot}\\b`);

describe('QEMU driver (real QEMU, TCG)', { concurrency: true }, () => {
  before(async () => {
    img = await buildTinyImage({ cacheDir, outDir: join(work, 'img') });
    say(`tiny image ready (${img.kernelVersion})`);
  }, { timeout: 600_000 });

  after(async () => {
    await Promise.allSettled(drivers.map((d) => d.close()));
    for (const runDir of runDirs) {
      for (const vmId of existsSync(runDir) ? readdirSync(runDir) : []) {
        const pidfile = vmPaths(runDir, vmId).pidfile;
        const pid = findQemu(pidfile);
        if (pid !== null) {
          console.log(`killing leftover QEMU ${pid} of ${vmId}`);
          signal(pid, 'SIGKILL');
        }
        // A cgroup whose QEMU is still a zombie is removed by the driver in the background, which
        // this process may not live to see.
        const cg = `/sys/fs/cgroup/cpu/kumo/${vmId}`;
        for (let i = 0; i < 40 && existsSync(cg); i++) {
          try { rmdirSync(cg); } catch { await sleep(250); }
        }
        if (canTap) for (let slot = 0; slot < 2; slot++) try { execFileSync('ip', ['link', 'del', tapName(vmId, slot)], { stdio: 'ignore' }); } catch { /* absent */ }
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('detects TCG on a host whose CPU does not show vmx/svm', () => {
    const d = new QemuDriver({ runDir: newRunDir(), log: testLog('detect') });
    drivers.push(d);
    const expected = chooseAccel(readFileSync('/proc/cpuinfo', 'utf8'), kvmDeviceOpens());
    assert.equal(d.accel, expected);
    if (!/\b(vmx|svm)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) assert.equal(d.accel, 'tcg');
    assert.equal(new QemuDriver({ runDir: newRunDir(), accel: 'kvm', log: testLog('override') }).accel, 'kvm');
  });

  it('boots, shows the console live and in the tail, ignores a second start, resets, survives an agent restart, stops by ACPI',
    { timeout: 240_000 }, async () => {
      const runDir = newRunDir();
      const vmId = newVmId();
      const mac = '52:54:00:12:34:56';
      const s = spec(vmId, { resourceType: 'guaranteed', nics: canTap ? [{ slot: 0, networkId: 'net-x', mac }] : [] });
      const d1 = newDriver(runDir, 'A1');
      const exits: string[] = [];
      d1.onExit((id, why) => exits.push(`${id}:${why}`));

      const tStart = Date.now();
      await d1.start(s);
      const pid = (await d1.pidOf(vmId))!;
      assert.ok(pid > 0);
      say(`A: started in ${Date.now() - tStart} ms, pid ${pid}`);
      const con = await d1.console(vmId);
      let text = '';
      con.onData((c) => { text += c.toString('latin1'); });

      // A second start is a no-op: same QEMU, still exactly one process for this VM.
      await d1.start(s);
      assert.equal(await d1.pidOf(vmId), pid);
      const pidfile = vmPaths(runDir, vmId).pidfile;
      assert.deepEqual(qemusWithPidfile(pidfile), [pid]);
      assert.deepEqual(await d1.list(), [{ vmId, power: 'running' }]);

      const cg = `/sys/fs/cgroup/cpu/kumo/${vmId}`;
      if (existsSync(cg)) {
        assert.ok(readFileSync(`${cg}/cgroup.procs`, 'utf8').split('\n').includes(String(pid)), 'QEMU is in its cgroup');
        assert.equal(readFileSync(`${cg}/cpu.shares`, 'utf8').trim(), '5120');
      }
      if (canTap) {
        assert.ok(await tapExists(tapName(vmId, 0)));
        const net = await (await d1.qmp(vmId)).humanMonitorCommand('info network');
        assert.match(net, new RegExp(`ifname=${tapName(vmId, 0)}`));
        assert.match(net, new RegExp(`macaddr=${mac}`));
      }

      await until('boot=1 on the live console', BOOT_MS, () => marker(vmId, 1).test(text));
      say(`A: boot=1 after ${Date.now() - tStart} ms`);
      assert.match((await d1.consoleTail(vmId, 1 << 20)).toString('latin1'), marker(vmId, 1));
      assert.equal((await d1.consoleTail(vmId, 10)).length, 10);

      const tReset = Date.now();
      await d1.reset(vmId);
      await until('boot=2 after reset', BOOT_MS, () => marker(vmId, 2).test(text));
      say(`A: boot=2 ${Date.now() - tReset} ms after reset`);
      assert.equal(await d1.pidOf(vmId), pid, 'a reset keeps the process');

      // Agent restart: the old driver lets go, a new one on the same runDir takes over.
      con.close();
      await d1.close();
      assert.ok(isQemuFor(pid, pidfile), 'QEMU outlives the driver');
      const d2 = newDriver(runDir, 'A2');
      d2.onExit((id, why) => exits.push(`${id}:${why}`));
      assert.deepEqual(await d2.list(), [{ vmId, power: 'running' }]);
      assert.equal(await d2.pidOf(vmId), pid);
      await d2.start(s);
      assert.deepEqual(qemusWithPidfile(pidfile), [pid], 'the restarted driver did not start a second QEMU');
      assert.equal((await (await d2.qmp(vmId)).queryStatus()).status, 'running', 'QMP reconnected');
      const con2 = await d2.console(vmId);
      con2.write(Buffer.from('\n')); // the tiny guest has no shell on ttyS0; input only has to reach it
      con2.close();

      const tStop = Date.now();
      await d2.stop(vmId, { force: false, timeoutMs: 60_000 });
      const stopMs = Date.now() - tStop;
      say(`A: ACPI stop took ${stopMs} ms`);
      assert.ok(!isQemuFor(pid, pidfile));
      assert.ok(stopMs < 60_000, 'ended by ACPI, not by the forced fallback');
      assert.match(readFileSync(vmPaths(runDir, vmId).consoleLog, 'latin1'), /reboot: Power down|Power down/i);
      assert.deepEqual(await d2.list(), []);
      if (canTap) assert.equal(await tapExists(tapName(vmId, 0)), false, 'tap removed');
      assert.ok(!existsSync(cg), 'cgroup removed');
      assert.match((await d2.consoleTail(vmId, 1 << 20)).toString('latin1'), marker(vmId, 2), 'console.log outlives the VM');
      await sleep(1500);
      assert.deepEqual(exits, [], 'an asked-for stop is not reported as an exit');
      await d2.stop(vmId, { force: false, timeoutMs: 1000 }); // stopped: a no-op
      await assert.rejects(d2.reset(vmId), DriverError);
      await assert.rejects(d2.console(vmId), DriverError);
    });

  it('reports a guest that powers itself off as a shutdown', { timeout: 240_000 }, async () => {
    const d = newDriver(newRunDir(), 'C');
    const vmId = newVmId();
    const exits: [string, string][] = [];
    d.onExit((id, why) => exits.push([id, why]));
    const tStart = Date.now();
    await d.start(spec(vmId));
    await until('boot=1 in the console tail', BOOT_MS, async () => marker(vmId, 1).test((await d.consoleTail(vmId, 65536)).toString('latin1')), 300);
    say(`C: boot=1 after ${Date.now() - tStart} ms`);
    // The power button pressed behind the driver's back (its own stop() was not called): the guest
    // decides to power off, as it would from its own shell. acpid may not run yet: press again.
    const tPress = Date.now();
    await until('the shutdown exit', 60_000, async () => {
      if (exits.length > 0) return true;
      try { await (await d.qmp(vmId)).systemPowerdown(); } catch { /* QEMU may be on its way out */ }
      return undefined;
    }, 3000);
    say(`C: guest powered off ${Date.now() - tPress} ms after the first press`);
    assert.deepEqual(exits, [[vmId, 'shutdown']]);
    assert.deepEqual(await d.list(), []);
  });

  it('reports kill -9 as a crash within 3 s; force-stops at once without reporting it; opens NBD disks', { timeout: 120_000 }, async (t) => {
    const d = newDriver(newRunDir(), 'B');
    const crashed = newVmId();
    const forced = newVmId();
    const exits: { vmId: string; why: string; at: number }[] = [];
    d.onExit((vmId, why) => exits.push({ vmId, why, at: Date.now() }));
    // The second VM's disk is an NBD export (qemu-nbd here; kumo's own NBD frontend later).
    const nbdSock = join(work, 'nbd.sock');
    const nbdDisk = spec(forced).disks[0].source as { path: string };
    const nbd = spawn('qemu-nbd', [`--socket=${nbdSock}`, '--format=raw', '--export-name=vol-nbd', '--shared=4', '--persistent', nbdDisk.path], { stdio: 'ignore' });
    t.after(() => { if (nbd.exitCode === null && nbd.signalCode === null) process.kill(nbd.pid!, 'SIGKILL'); });
    await until('the NBD socket', 10_000, () => existsSync(nbdSock), 50);
    await Promise.all([
      d.start(spec(crashed)),
      d.start({ ...spec(forced), disks: [{ slot: 0, volumeId: 'vol-nbd', sizeGiB: 1, source: { kind: 'nbd', socket: nbdSock, export: 'vol-nbd' } }] }),
    ]);
    assert.match(await (await d.qmp(forced)).humanMonitorCommand('info block'), /nbd/);
    const pid = (await d.pidOf(crashed))!;
    const forcedPid = (await d.pidOf(forced))!;
    assert.deepEqual((await d.list()).map((r) => r.vmId).sort(), [crashed, forced].sort());

    const tKill = Date.now();
    process.kill(pid, 'SIGKILL');
    await until('the crash report', 3000, () => exits.length > 0, 50);
    say(`B: crash reported ${exits[0].at - tKill} ms after kill -9`);
    assert.equal(exits[0].vmId, crashed);
    assert.equal(exits[0].why, 'crash');
    assert.deepEqual((await d.list()).map((r) => r.vmId), [forced]);

    const tForce = Date.now();
    await d.stop(forced, { force: true, timeoutMs: 60_000 });
    say(`B: forced stop took ${Date.now() - tForce} ms`);
    assert.ok(Date.now() - tForce < 10_000);
    assert.ok(!isQemuFor(forcedPid, vmPaths(d.runDir, forced).pidfile));
    await sleep(1500);
    assert.equal(exits.length, 1, 'the forced stop is not reported');
    assert.deepEqual(await d.list(), []);

    // The crashed VM starts again (new QEMU, same run dir).
    await d.start(spec(crashed));
    const again = (await d.pidOf(crashed))!;
    assert.notEqual(again, pid);
    await d.stop(crashed, { force: true, timeoutMs: 1000 });
    // The cgroups go too, once init has reaped the dead QEMUs (a zombie keeps its cgroup busy).
    if (existsSync('/sys/fs/cgroup/cpu/kumo')) {
      await until('the cgroups removed', 20_000, () => ![crashed, forced].some((id) => existsSync(`/sys/fs/cgroup/cpu/kumo/${id}`)), 250);
    }
  });

  it('fails a start with QEMU\'s own message, e.g. a missing disk, and leaves nothing running', { timeout: 60_000 }, async () => {
    const runDir = newRunDir();
    const d = newDriver(runDir, 'D');
    const vmId = newVmId();
    const missing = join(work, 'no-such-disk.raw');
    await assert.rejects(
      d.start(spec(vmId, { disks: [{ slot: 0, volumeId: 'vol-x', sizeGiB: 1, source: { kind: 'file', path: missing } }] })),
      (e: Error) => e instanceof DriverError && e.message.includes('no-such-disk.raw') && /No such file/.test(e.message),
    );
    assert.deepEqual(await d.list(), []);
    assert.equal(findQemu(vmPaths(runDir, vmId).pidfile), null);
    await assert.rejects(d.start({ ...spec(vmId), vcpus: 0 }), DriverError);
  });
});
