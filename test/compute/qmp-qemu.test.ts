/**
 * The QMP client against a real qemu-system-x86_64 (7.2 here). Each test starts its own QEMU —
 * `-machine none` where no guest is needed, a TCG `pc` without disk for power events — and kills
 * it by pid afterwards. Never KVM: this suite must run on hosts without vmx/svm.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  QmpClosed, QmpCommandNotFound, QmpCommands, QmpDeviceNotActive, QmpDeviceNotFound, QmpGenericError,
  QmpMonitor, QmpTimeout, type QmpConnectOptions, type QmpEvent,
} from '../../src/compute/qemu/qmp/index.js';

const NO_GUEST = ['-machine', 'none'];
const TCG_PC = ['-machine', 'pc', '-accel', 'tcg', '-m', '64'];

interface Qemu {
  sock: string;
  dir: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
  start(): void;
}

/** Plans a QEMU whose socket path is known before it runs (for the late-start test). */
async function planQemu(t: TestContext, machine: string[], extra: string[] = []): Promise<Qemu> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-qmp-'));
  const q: Qemu = {
    dir,
    sock: join(dir, 'qmp.sock'),
    start() {
      const args = [...machine, '-nodefaults', '-display', 'none', ...extra,
        '-qmp', `unix:${q.sock},server=on,wait=off`];
      const proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'inherit'] });
      q.proc = proc;
      q.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    },
  };
  t.after(async () => {
    const p = q.proc;
    if (p && p.exitCode === null && p.signalCode === null) process.kill(p.pid!, 'SIGKILL');
    await q.exited;
    await rm(dir, { recursive: true, force: true });
  });
  return q;
}

async function startQemu(t: TestContext, machine = NO_GUEST, extra: string[] = []): Promise<Qemu> {
  const q = await planQemu(t, machine, extra);
  q.start();
  return q;
}

/** QEMU creates the socket a few ms after exec, so every connect here uses the retry. */
async function connect(t: TestContext, q: Qemu, opts: QmpConnectOptions = {}): Promise<QmpMonitor> {
  const mon = await QmpMonitor.connect(q.sock, { timeoutMs: 5000, retry: { attempts: 100, delayMs: 20 }, ...opts });
  t.after(() => mon.close());
  return mon;
}

const alive = (q: Qemu) => q.proc?.exitCode === null && q.proc.signalCode === null;

describe('QMP against QEMU', () => {
  it('reads the greeting and exposes the same version as query-version', async (t) => {
    const mon = await connect(t, await startQemu(t));
    const v = await new QmpCommands(mon).queryVersion();
    assert.deepEqual({ major: mon.version.major, minor: mon.version.minor, micro: mon.version.micro }, v.qemu);
    assert.equal(mon.version.package, v.package);
    assert.ok(mon.version.major >= 7);
    assert.ok(mon.greeting.capabilities.includes('oob'));
  });

  it('answers query-status', async (t) => {
    const st = await new QmpCommands(await connect(t, await startQemu(t))).queryStatus();
    assert.equal(st.status, 'running');
    assert.equal(st.running, true);
  });

  it('matches 50 concurrent commands to their own replies', async (t) => {
    const mon = await connect(t, await startQemu(t));
    const all = await mon.execute<{ option: string }[]>('query-command-line-options');
    const names = all.map((o) => o.option);
    assert.ok(names.length > 10);
    const asked = Array.from({ length: 50 }, (_, i) => (i % 5 === 4 ? null : names[i % names.length]));
    const replies = await Promise.all(asked.map((name) => (name === null
      ? mon.execute<{ qemu: unknown }>('query-version')
      : mon.execute<{ option: string }[]>('query-command-line-options', { option: name }))));
    replies.forEach((r, i) => {
      if (asked[i] === null) assert.ok('qemu' in (r as object), `reply ${i} is a version`);
      else assert.equal((r as { option: string }[])[0].option, asked[i], `reply ${i}`);
    });
  });

  it('reports an unknown command as CommandNotFound, naming it', async (t) => {
    const mon = await connect(t, await startQemu(t));
    const err = await mon.execute('no-such-command').catch((e: unknown) => e);
    assert.ok(err instanceof QmpCommandNotFound);
    assert.equal(err.class, 'CommandNotFound');
    assert.equal(err.command, 'no-such-command');
    assert.match(err.desc, /no-such-command/);
    assert.ok(mon.isOpen, 'an error reply leaves the connection usable');
  });

  it('reports a bad argument as GenericError, and QEMU device errors by their class', async (t) => {
    const mon = await connect(t, await startQemu(t));
    const bad = await mon.execute('query-status', { bogus: 1 }).catch((e: unknown) => e);
    assert.ok(bad instanceof QmpGenericError);
    assert.match(bad.desc, /bogus/);
    const missing = await new QmpCommands(mon).deviceDel('nic9').catch((e: unknown) => e);
    assert.ok(missing instanceof QmpDeviceNotFound);
    assert.equal(missing.command, 'device_del');
    // No balloon device was created, so there is none to be active.
    const inactive = await mon.execute('query-balloon').catch((e: unknown) => e);
    assert.ok(inactive instanceof QmpDeviceNotActive);
  });

  it('delivers STOP and RESUME around stop and cont', async (t) => {
    const mon = await connect(t, await startQemu(t));
    const qmp = new QmpCommands(mon);
    const seen: string[] = [];
    mon.on('*', (e) => seen.push(e.event));
    const stopped = mon.waitForEvent('STOP', { timeoutMs: 2000 });
    await qmp.stop();
    await stopped;
    assert.equal((await qmp.queryStatus()).status, 'paused');
    const resumed = mon.waitForEvent('RESUME', { timeoutMs: 2000 });
    await qmp.cont();
    const ev = await resumed;
    assert.ok(ev.timestamp.seconds > 1_600_000_000);
    assert.deepEqual(seen, ['STOP', 'RESUME']);
  });

  it('delivers POWERDOWN for system_powerdown on a TCG pc', async (t) => {
    const q = await startQemu(t, TCG_PC, ['-no-reboot']);
    const mon = await connect(t, q);
    const pressed = mon.waitForEvent('POWERDOWN', { timeoutMs: 3000 });
    await new QmpCommands(mon).systemPowerdown();
    assert.deepEqual((await pressed).data, {});
    assert.ok(alive(q), 'the button only asks: QEMU keeps running');
  });

  it('delivers RESET for system_reset, but under -no-reboot SHUTDOWN and exit', async (t) => {
    const plain = await connect(t, await startQemu(t, TCG_PC));
    const reset = plain.waitForEvent('RESET', { timeoutMs: 3000 });
    await new QmpCommands(plain).systemReset();
    assert.deepEqual((await reset).data, { guest: false, reason: 'host-qmp-system-reset' });

    const q = await startQemu(t, TCG_PC, ['-no-reboot']);
    const mon = await connect(t, q);
    const down = mon.waitForEvent('SHUTDOWN', { timeoutMs: 3000 });
    await new QmpCommands(mon).systemReset();
    assert.deepEqual((await down).data, { guest: false, reason: 'host-qmp-system-reset' });
    assert.equal((await mon.closed).reason, 'remote');
    await q.exited;
  });

  it('quit: SHUTDOWN first, then commands still pending fail with QmpClosed', async (t) => {
    const q = await startQemu(t);
    const mon = await connect(t, q);
    const events: QmpEvent[] = [];
    mon.on('SHUTDOWN', (e) => events.push(e));
    const quitting = mon.execute('quit');
    const behind = [mon.execute('query-status'), mon.execute('query-version')].map((p) => p.catch((e: unknown) => e));
    await quitting; // 7.2 still answers quit before closing
    assert.deepEqual(events.map((e) => e.data), [{ guest: false, reason: 'host-qmp-quit' }]);
    for (const err of await Promise.all(behind)) assert.ok(err instanceof QmpClosed, String(err));
    assert.equal((await mon.closed).reason, 'remote');
    assert.ok((await mon.execute('query-status').catch((e: unknown) => e)) instanceof QmpClosed);
    await q.exited;
  });

  it('notices QEMU dying (SIGKILL) through `closed` and fails pending commands', async (t) => {
    const q = await startQemu(t);
    const mon = await connect(t, q);
    await new QmpCommands(mon).stop();
    process.kill(q.proc!.pid!, 'SIGKILL');
    const info = await mon.closed;
    assert.equal(info.reason, 'remote');
    assert.ok(info.error instanceof QmpClosed);
  });

  it('times out a blockdev-add stuck on a silent NBD server, drops the late reply, keeps working', async (t) => {
    // QEMU 7.2 runs the NBD handshake of blockdev-add inside the command: a server that accepts
    // and never speaks holds the reply back for as long as it stays silent.
    const q = await startQemu(t);
    const mon = await connect(t, q);
    const nbdSock = join(q.dir, 'nbd.sock');
    const held: Socket[] = [];
    const silent = createServer((s) => { held.push(s); s.on('error', () => {}); });
    await new Promise<void>((resolve) => silent.listen(nbdSock, resolve));
    t.after(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const err = await new QmpCommands(mon).blockdevAdd(
      { driver: 'nbd', 'node-name': 'stuck', server: { type: 'unix', path: nbdSock }, export: 'x' },
      { timeoutMs: 300 },
    ).catch((e: unknown) => e);
    assert.ok(err instanceof QmpTimeout, String(err));
    assert.equal(err.command, 'blockdev-add');
    for (const s of held) s.destroy(); // QEMU's handshake now fails and its error reply arrives late
    assert.equal((await new QmpCommands(mon).queryStatus()).status, 'running');
    assert.ok(mon.isOpen);
  });

  it('reconnects after close(): QEMU keeps running and greets the next client', async (t) => {
    const q = await startQemu(t);
    const first = await connect(t, q);
    await new QmpCommands(first).stop();
    await first.close();
    assert.equal((await first.closed).reason, 'local');
    const second = await connect(t, q, { retry: undefined });
    assert.equal((await new QmpCommands(second).queryStatus()).status, 'paused', 'same QEMU, state kept');
    assert.ok(alive(q));
  });

  it('a second client waits for the greeting while the first holds the monitor', async (t) => {
    const q = await startQemu(t);
    const first = await connect(t, q);
    const err = await QmpMonitor.connect(q.sock, { timeoutMs: 300 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpTimeout);
    assert.ok(first.isOpen);
    await first.close();
    const third = await connect(t, q, { retry: undefined });
    assert.equal((await new QmpCommands(third).queryStatus()).status, 'running');
  });

  it('connect with retry waits for a QEMU started 300 ms later', async (t) => {
    const q = await planQemu(t, NO_GUEST);
    const started = Date.now();
    setTimeout(() => q.start(), 300);
    const mon = await connect(t, q, { retry: { attempts: 100, delayMs: 25 } });
    assert.ok(Date.now() - started >= 300);
    assert.equal((await new QmpCommands(mon).queryStatus()).status, 'running');
  });

  it('runs the migration commands: parameters, events, outgoing to a file, incoming from it', async (t) => {
    const src = await connect(t, await startQemu(t));
    const qmp = new QmpCommands(src);
    const file = join(tmpdir(), `kumo-qmp-mig-${process.pid}-${Date.now()}`);
    t.after(() => rm(file, { force: true }));
    assert.deepEqual(await qmp.queryMigrate(), {}, 'no status before the first migration');
    await qmp.migrateSetCapabilities({ events: true });
    await qmp.migrateSetParameters({ 'downtime-limit': 123, 'max-bandwidth': 64 << 20 });
    const params = await qmp.queryMigrateParameters();
    assert.equal(params['downtime-limit'], 123);
    assert.equal(params['max-bandwidth'], 64 << 20);
    await qmp.announceSelf({ initial: 50, max: 550, rounds: 1, step: 50 });
    await qmp.stop();
    const completed = src.waitForEvent('MIGRATION', { timeoutMs: 5000, predicate: (e) => e.data.status === 'completed' });
    await qmp.migrate(`exec:cat > ${file}`);
    await completed;
    assert.equal((await qmp.queryMigrate()).status, 'completed');
    assert.ok((await stat(file)).size > 0);
    await qmp.migrateCancel(); // harmless after completion

    const dst = await connect(t, await startQemu(t, NO_GUEST, ['-incoming', 'defer']));
    const dq = new QmpCommands(dst);
    assert.equal((await dq.queryStatus()).status, 'inmigrate');
    await dq.migrateSetCapabilities({ events: true });
    const arrived = dst.waitForEvent('MIGRATION', { timeoutMs: 5000, predicate: (e) => e.data.status === 'completed' });
    await dq.migrateIncoming(`exec:cat ${file}`);
    await arrived;
    assert.equal((await dq.queryStatus()).status, 'paused', 'the source was stopped, so is the destination');
  });

  it('runs the hotplug and query commands a driver needs', async (t) => {
    const mon = await connect(t, await startQemu(t, TCG_PC, ['-smp', '2']));
    const qmp = new QmpCommands(mon);
    assert.equal((await qmp.queryDirtyRate()).status, 'unstarted');
    await qmp.calcDirtyRate({ 'calc-time': 1 }); // seconds: runs alongside the rest of this test
    const cpus = await qmp.queryCpusFast();
    assert.deepEqual(cpus.map((c) => c['cpu-index']), [0, 1]);
    assert.ok(cpus.every((c) => c['thread-id'] > 0 && c.target === 'x86_64'));
    await qmp.objectAdd({ 'qom-type': 'iothread', id: 'io0' });
    await qmp.blockdevAdd({ driver: 'null-co', 'node-name': 'disk0', size: 1 << 20 });
    await qmp.deviceAdd({ driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0', iothread: 'io0' });
    const blocks = await qmp.queryBlock();
    assert.ok(blocks.some((b) => b.qdev?.includes('vd0') && b.inserted?.['node-name'] === 'disk0'), JSON.stringify(blocks));
    const dup = await qmp.deviceAdd({ driver: 'virtio-blk-pci', id: 'vd0', drive: 'disk0' }).catch((e: unknown) => e);
    assert.ok(dup instanceof QmpGenericError);
    assert.match(await qmp.humanMonitorCommand('info version'), /^\d+\.\d+\.\d+/);
    await qmp.objectDel('io0').catch((e: unknown) => assert.ok(e instanceof QmpGenericError, 'in use by vd0'));
    let rate = await qmp.queryDirtyRate();
    for (let i = 0; rate.status !== 'measured' && i < 30; i++) {
      await sleep(100);
      rate = await qmp.queryDirtyRate();
    }
    assert.equal(rate.status, 'measured');
    assert.equal(rate['calc-time'], 1);
    assert.ok(typeof rate['dirty-rate'] === 'number' && rate['dirty-rate'] >= 0, JSON.stringify(rate));
  });
});
