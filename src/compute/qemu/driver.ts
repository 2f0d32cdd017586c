/**
 * The QEMU compute driver: the lifecycle of VMs that are QEMU processes, behind the same
 * ComputeDriver interface as `sim`. The pieces live next door: cmdline.ts (argv), process.ts
 * (daemonize, pidfile, liveness), taps.ts, cgroups.ts (CPU policy), console.ts (serial console and
 * its log), watch.ts (exit detection), qmp/ (the monitor).
 *
 * State is on disk, one directory per VM under runDir: spec.json (what was started, with its tap
 * names' variant), qemu.pid, qmp.sock, serial.sock, console.log (written by QEMU itself), qemu.log
 * (QEMU's stderr), migration.json (its part in a live migration, see migration.ts). QEMU runs
 * daemonized, so it outlives the agent; a new driver on the same runDir finds every live QEMU by
 * its pidfile (checked against /proc/PID/cmdline), reconnects QMP and the console, and watches it
 * again. Nothing is started twice: start() of a VM whose QEMU lives is a no-op, operations on one
 * VM are serialized, and QEMU itself refuses a second process on a locked pidfile.
 *
 * QMP and the serial socket each serve one client at a time: a driver must close() (or its process
 * end) before another driver instance can talk to the same VMs.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DriverError, type ComputeDriver, type ConsoleStream, type LaunchSpec, type NicDevice, type StopOptions, type VmReport,
} from '../driver.js';
import type { MigrationSupport } from '../migration.js';
import { detectAccel, type Accel } from './accel.js';
import { CpuCgroups, cpuPolicy } from './cgroups.js';
import { buildArgv, validateLaunchSpec, vmPaths, type VmPaths } from './cmdline.js';
import { QemuMigration, type MigrationMark } from './migration.js';
import { readTail, VmConsole } from './console.js';
import { findQemu, isQemuFor, readPidfile, signal, spawnDaemonized, waitGone } from './process.js';
import { QmpCommands, QmpMonitor } from './qmp/index.js';
import { deleteTap, ensureTap, tapExists, tapName, type TapVariant } from './taps.js';
import { ExitWatcher, type ExitInfo } from './watch.js';

export interface DriverLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface QemuDriverOptions {
  /** One directory per VM is kept here; survives agent restarts. */
  runDir: string;
  /** Overrides detection (detection: KVM when /dev/kvm opens and the CPU shows vmx/svm). */
  accel?: Accel;
  log: DriverLog;
  /** default qemu-system-x86_64 (also for i686 guests) */
  qemuBinary?: string;
  machine?: 'q35' | 'pc';
  /** cgroup filesystem root, default /sys/fs/cgroup */
  cgroupRoot?: string;
  /** Until QEMU has initialised (disks opened, sockets listening); default 60 s. */
  startTimeoutMs?: number;
  /** Pid poll of the exit watcher; default 1000 ms. */
  pollMs?: number;
}

/** While stop() waits for an ACPI shutdown, the power button is pressed again this often. */
export const POWERDOWN_REPEAT_MS = 3000;
const QMP_TIMEOUT_MS = 10_000;
const VM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** `tapVariant` is absent in spec files written before live migration (variant 0). */
interface SavedSpec { spec: LaunchSpec; argv: string[]; accel: Accel; tapVariant?: TapVariant; startedAt: string }

interface Vm {
  vmId: string;
  pid: number;
  paths: VmPaths;
  saved: SavedSpec | null;
  monitor: QmpMonitor | null;
  console: VmConsole;
  watcher: ExitWatcher;
  /** Set by stop(): the exit that follows was asked for and is not reported. */
  stopping: boolean;
  /**
   * Waiting for or just past a live migration: the guest runs elsewhere (or not yet here), so this
   * QEMU's end is not the guest's and is not reported, and stop() does not ask the guest.
   */
  mark: MigrationMark | null;
  retired: boolean;
}

type ExitListener = (vmId: string, reason: 'shutdown' | 'crash') => void;

export class QemuDriver implements ComputeDriver {
  readonly name = 'qemu';
  readonly migration: MigrationSupport;
  readonly accel: Accel;
  /** Why this accelerator, for the host's info and the log. */
  readonly accelReason: string;
  readonly runDir: string;
  private readonly log: DriverLog;
  private readonly binary: string;
  private readonly cgroups: CpuCgroups;
  private readonly vms = new Map<string, Vm>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly listeners: ExitListener[] = [];
  private readonly ready: Promise<void>;
  private closed = false;

  constructor(private readonly opts: QemuDriverOptions) {
    this.runDir = resolve(opts.runDir);
    this.log = opts.log;
    this.binary = opts.qemuBinary ?? 'qemu-system-x86_64';
    if (opts.accel) {
      this.accel = opts.accel;
      this.accelReason = 'set by configuration';
    } else {
      ({ accel: this.accel, reason: this.accelReason } = detectAccel());
    }
    this.cgroups = new CpuCgroups(this.log, opts.cgroupRoot);
    this.migration = new QemuMigration(this, this.log);
    this.log.info({ accel: this.accel, why: this.accelReason, runDir: this.runDir, cgroup: this.cgroups.version ?? 'none' }, `QEMU driver: ${this.accel}`);
    this.ready = this.recover();
  }

  // --- ComputeDriver ------------------------------------------------------------------------

  async start(spec: LaunchSpec): Promise<void> {
    validateLaunchSpec(spec);
    await this.ready;
    await this.withLock(spec.vmId, async () => {
      this.assertOpen(spec.vmId);
      if (await this.live(spec.vmId)) return;
      await this.launch(spec, 0, false);
    });
  }

  async stop(vmId: string, opts: StopOptions): Promise<void> {
    this.checkId(vmId);
    await this.ready;
    await this.withLock(vmId, async () => {
      this.assertOpen(vmId);
      const vm = await this.live(vmId);
      if (!vm) {
        await this.cleanupDir(vmId); // leftovers of a QEMU that died while nobody watched
        return;
      }
      vm.stopping = true;
      const t0 = Date.now();
      let how = 'acpi';
      if (opts.force) how = 'forced';
      else if (vm.mark) how = `forced: ${vm.mark.role} migration`;
      else if (!(await this.acpiShutdown(vm, t0 + opts.timeoutMs))) how = 'forced after timeout';
      if (isQemuFor(vm.pid, vm.paths.pidfile)) await this.kill(vm);
      await this.retire(vm);
      this.log.info({ vmId, pid: vm.pid, how, ms: Date.now() - t0 }, 'VM stopped');
    });
  }

  async reset(vmId: string): Promise<void> {
    this.checkId(vmId);
    await this.ready;
    await this.withLock(vmId, async () => {
      await new QmpCommands(await this.monitorOf(await this.running(vmId))).systemReset();
      this.log.info({ vmId }, 'VM reset');
    });
  }

  async list(): Promise<VmReport[]> {
    await this.ready;
    const out: VmReport[] = [];
    for (const vmId of await this.vmDirs()) {
      const vm = this.vms.get(vmId);
      const alive = vm ? isQemuFor(vm.pid, vm.paths.pidfile) : findQemu(vmPaths(this.runDir, vmId).pidfile) !== null;
      if (alive) out.push({ vmId, power: 'running' });
    }
    return out;
  }

  async nicDevices(vmId: string): Promise<NicDevice[]> {
    this.checkId(vmId);
    const saved = await this.savedSpec(vmId);
    if (!saved) return [];
    const taps = tapsOf(saved);
    return saved.spec.nics.map((n, i) => ({ slot: n.slot, mac: n.mac, device: taps[i] }));
  }

  async consoleTail(vmId: string, bytes: number): Promise<Buffer> {
    this.checkId(vmId);
    return readTail(vmPaths(this.runDir, vmId).consoleLog, Math.max(0, bytes));
  }

  async console(vmId: string): Promise<ConsoleStream> {
    this.checkId(vmId);
    await this.ready;
    return this.withLock(vmId, async () => (await this.running(vmId)).console.stream());
  }

  onExit(listener: ExitListener): void {
    this.listeners.push(listener);
  }

  // --- beyond the interface -----------------------------------------------------------------

  /** Typed QMP commands on a running VM (migration, diagnostics, tests). */
  async qmp(vmId: string): Promise<QmpCommands> {
    this.checkId(vmId);
    await this.ready;
    return this.withLock(vmId, async () => new QmpCommands(await this.monitorOf(await this.running(vmId))));
  }

  /** Resolves at the VM's next MIGRATION event that ends a migration, or when `signal` aborts. */
  async migrationSettled(vmId: string, signal: AbortSignal): Promise<void> {
    this.checkId(vmId);
    await this.ready;
    const monitor = await this.withLock(vmId, async () => this.monitorOf(await this.running(vmId)));
    await monitor.waitForEvent('MIGRATION', {
      timeoutMs: Infinity, signal, predicate: (ev) => ['completed', 'failed', 'cancelled'].includes(ev.data.status),
    }).catch(() => undefined);
  }

  /** The pid of a running VM's QEMU, or null. */
  async pidOf(vmId: string): Promise<number | null> {
    this.checkId(vmId);
    await this.ready;
    return this.withLock(vmId, async () => (await this.live(vmId))?.pid ?? null);
  }

  /**
   * Lets go of every VM without touching it: QMP and console connections are closed, watching
   * ends, QEMU runs on. What an agent does on shutdown; a later driver on the runDir takes over.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ready;
    await Promise.allSettled([...this.locks.values()]);
    const vms = [...this.vms.values()];
    this.vms.clear();
    await Promise.all(vms.map((vm) => this.detach(vm)));
  }

  // --- live migration hooks (migration.ts) -----------------------------------------------------

  /**
   * Starts `spec` as a migration destination (`-incoming defer -S`) on tap names the host does not
   * use yet (in kumo's lab the source's share this kernel), then `listen` says where it waits; a
   * VM already waiting here returns that URI again. A failed `listen` takes the QEMU down again.
   */
  async launchIncoming(spec: LaunchSpec, listen: (qmp: QmpCommands) => Promise<string>): Promise<string> {
    validateLaunchSpec(spec);
    await this.ready;
    const vmId = spec.vmId;
    return this.withLock(vmId, async () => {
      this.assertOpen(vmId);
      const running = await this.live(vmId);
      if (running) {
        if (running.mark?.role === 'incoming' && running.mark.uri) return running.mark.uri;
        throw new DriverError(vmId, `${vmId} already runs on this host`);
      }
      const vm = await this.launch(spec, await this.freeTapVariant(spec), true);
      try {
        const uri = await listen(new QmpCommands(await this.monitorOf(vm)));
        await this.saveMark(vm, { role: 'incoming', uri });
        this.log.info({ vmId, uri }, 'VM waits for its incoming migration');
        return uri;
      } catch (e) {
        vm.stopping = true;
        await this.kill(vm);
        await this.retire(vm);
        throw new DriverError(vmId, `cannot prepare the incoming migration of ${vmId}: ${(e as Error).message}`);
      }
    });
  }

  /** Records (or with null, ends) a running VM's part in a live migration. */
  async setMigrationMark(vmId: string, mark: MigrationMark | null): Promise<void> {
    this.checkId(vmId);
    await this.ready;
    await this.withLock(vmId, async () => this.saveMark(await this.running(vmId), mark));
  }

  private async saveMark(vm: Vm, mark: MigrationMark | null): Promise<void> {
    if (mark) {
      await writeFile(`${vm.paths.migration}.tmp`, `${JSON.stringify(mark)}\n`);
      await rename(`${vm.paths.migration}.tmp`, vm.paths.migration);
    } else {
      await rm(vm.paths.migration, { force: true });
    }
    vm.mark = mark;
  }

  private async freeTapVariant(spec: LaunchSpec): Promise<TapVariant> {
    for (const variant of [0, 1] as const) {
      const taps = spec.nics.map((n) => tapName(spec.vmId, n.slot, variant));
      if (!(await Promise.all(taps.map(tapExists))).some(Boolean)) return variant;
    }
    throw new DriverError(spec.vmId, `cannot prepare ${spec.vmId}: its taps exist under both names (a QEMU of it runs here and another elsewhere on this kernel)`);
  }

  // --- lifecycle ----------------------------------------------------------------------------

  private async launch(spec: LaunchSpec, tapVariant: TapVariant, incoming: boolean): Promise<Vm> {
    const vmId = spec.vmId;
    const paths = vmPaths(this.runDir, vmId);
    const argv = buildArgv(spec, paths, this.accel, { machine: this.opts.machine, tapVariant, incoming });
    await mkdir(paths.dir, { recursive: true });
    const saved: SavedSpec = { spec, argv, accel: this.accel, tapVariant, startedAt: new Date().toISOString() };
    await writeFile(`${paths.spec}.tmp`, `${JSON.stringify(saved, null, 2)}\n`);
    await rename(`${paths.spec}.tmp`, paths.spec);
    await Promise.all([paths.pidfile, paths.qmp, paths.serial, paths.migration].map((p) => rm(p, { force: true })));
    // Before QEMU exists, so that an incoming QEMU that ends at once is not taken for a crash.
    if (incoming) await writeFile(paths.migration, `${JSON.stringify({ role: 'incoming' } satisfies MigrationMark)}\n`);
    // QEMU truncates its log at start: keep the previous run's, which may tell why it ended.
    await rename(paths.qemuLog, `${paths.qemuLog}.1`).catch(() => undefined);
    const taps = tapsOf(saved);
    const undo = async () => {
      await this.deleteTaps(taps);
      await rm(paths.migration, { force: true });
    };
    try {
      for (const tap of taps) await ensureTap(tap);
    } catch (e) {
      await undo();
      throw new DriverError(vmId, `cannot start ${vmId}: ${(e as Error).message}`);
    }
    this.log.debug({ vmId, binary: this.binary, argv }, 'starting QEMU');
    let pid: number | null = null;
    let monitor: QmpMonitor | null = null;
    try {
      try {
        await spawnDaemonized(this.binary, argv, paths.startLog, this.opts.startTimeoutMs ?? 60_000, [paths.qemuLog]);
      } finally {
        pid = findQemu(paths.pidfile); // also after a timeout, so a half-started QEMU is killed below
      }
      if (pid === null) throw new Error('QEMU reported success but its pidfile names no running QEMU');
      monitor = await QmpMonitor.connect(paths.qmp, { timeoutMs: QMP_TIMEOUT_MS, retry: { attempts: 50, delayMs: 100 }, log: this.log });
      const status = await new QmpCommands(monitor).queryStatus();
      const expected = incoming ? 'inmigrate' : 'running';
      if (status.status !== expected) throw new Error(`QEMU is ${status.status}, not ${expected}`);
    } catch (e) {
      await monitor?.close();
      if (pid !== null) {
        signal(pid, 'SIGKILL');
        await waitGone(pid, paths.pidfile, 10_000);
      }
      await undo();
      throw new DriverError(vmId, `cannot start ${vmId}: ${(e as Error).message}`);
    }
    await this.cgroups.apply(vmId, pid, cpuPolicy(spec.resourceType, spec.vcpus));
    const vm = await this.attach(vmId, pid, saved, monitor);
    this.log.info({ vmId, pid, accel: this.accel, incoming, taps }, incoming ? 'VM started for an incoming migration' : 'VM started');
    return vm;
  }

  /** Presses the power button every few seconds until QEMU is gone; false if it outlived `deadline`. */
  private async acpiShutdown(vm: Vm, deadline: number): Promise<boolean> {
    while (Date.now() < deadline) {
      try {
        await new QmpCommands(await this.monitorOf(vm)).systemPowerdown({ timeoutMs: 2000 });
      } catch (e) {
        if (vm.watcher.check()) return true;
        this.log.debug({ vmId: vm.vmId, error: (e as Error).message }, 'system_powerdown failed');
      }
      if (await this.waitExit(vm, Math.min(POWERDOWN_REPEAT_MS, deadline - Date.now()))) return true;
    }
    return vm.watcher.check();
  }

  /** quit through QMP, then SIGKILL if the process lingers (or QMP cannot be reached). */
  private async kill(vm: Vm): Promise<void> {
    try {
      await new QmpCommands(await this.monitorOf(vm)).quit({ timeoutMs: 3000 });
      if (await waitGone(vm.pid, vm.paths.pidfile, 3000)) return;
    } catch (e) {
      this.log.debug({ vmId: vm.vmId, error: (e as Error).message }, 'QMP quit failed, killing');
    }
    signal(vm.pid, 'SIGKILL');
    if (!(await waitGone(vm.pid, vm.paths.pidfile, 10_000))) {
      throw new DriverError(vm.vmId, `QEMU ${vm.pid} of ${vm.vmId} still runs after SIGKILL`);
    }
  }

  private async waitExit(vm: Vm, ms: number): Promise<boolean> {
    if (ms <= 0) return vm.watcher.check();
    const ac = new AbortController();
    const exited = await Promise.race([
      vm.watcher.exited.then(() => true),
      sleep(ms, false, { signal: ac.signal }).catch(() => false),
    ]);
    ac.abort();
    return exited || vm.watcher.check();
  }

  // --- attaching to a running QEMU ----------------------------------------------------------

  private async attach(vmId: string, pid: number, saved: SavedSpec | null, monitor: QmpMonitor | null): Promise<Vm> {
    const paths = vmPaths(this.runDir, vmId);
    const vm: Vm = {
      vmId, pid, paths, saved, monitor: null, stopping: false, retired: false, mark: await readJson<MigrationMark>(paths.migration),
      console: new VmConsole(vmId, paths.serial, paths.consoleLog, this.log),
      watcher: new ExitWatcher(pid, paths.pidfile, this.opts.pollMs ?? 1000),
    };
    this.vms.set(vmId, vm);
    if (monitor) this.useMonitor(vm, monitor);
    else {
      try {
        await this.monitorOf(vm);
      } catch (e) {
        this.log.warn({ vmId, pid, error: (e as Error).message }, 'cannot connect to QMP of a running VM; will retry when needed');
      }
    }
    try {
      await vm.console.connect();
    } catch (e) {
      this.log.warn({ vmId, error: (e as Error).message }, 'serial console not connected (console.log is still written by QEMU)');
    }
    void vm.watcher.exited.then((info) => this.onUnexpectedExit(vm, info));
    return vm;
  }

  private useMonitor(vm: Vm, monitor: QmpMonitor): void {
    vm.monitor = monitor;
    vm.watcher.attachMonitor(monitor);
  }

  private async monitorOf(vm: Vm): Promise<QmpMonitor> {
    if (vm.monitor?.isOpen) return vm.monitor;
    const monitor = await QmpMonitor.connect(vm.paths.qmp, { timeoutMs: 5000, retry: { attempts: 10, delayMs: 100 }, log: this.log });
    if (vm.retired || this.closed) {
      await monitor.close();
      throw new DriverError(vm.vmId, `${vm.vmId} is no longer watched by this driver`);
    }
    this.useMonitor(vm, monitor);
    return monitor;
  }

  private async onUnexpectedExit(vm: Vm, info: ExitInfo): Promise<void> {
    if (vm.stopping || this.closed) return;
    const fields = { vmId: vm.vmId, pid: vm.pid, reason: info.reason, shutdown: info.shutdown };
    if (vm.mark) {
      // An incoming QEMU ends by itself when its migration fails; the guest runs on at the source.
      this.log.info({ ...fields, migration: vm.mark.role }, 'QEMU of a migrating VM ended; the guest is not here');
      if (!vm.retired) await this.withLock(vm.vmId, () => this.retire(vm)).catch((e) => this.log.error({ vmId: vm.vmId, error: (e as Error).message }, 'cleanup after exit failed'));
      return;
    }
    if (info.reason === 'shutdown') this.log.info(fields, 'the guest powered off');
    else this.log.warn(fields, 'QEMU ended without being asked (crash, kill or external quit)');
    // Already retired when an operation on this VM noticed the death first; report at once then.
    if (!vm.retired) await this.withLock(vm.vmId, () => this.retire(vm)).catch((e) => this.log.error({ vmId: vm.vmId, error: (e as Error).message }, 'cleanup after exit failed'));
    if (vm.stopping || this.closed) return;
    for (const l of this.listeners) {
      try {
        l(vm.vmId, info.reason);
      } catch (e) {
        this.log.error({ vmId: vm.vmId, error: (e as Error).message }, 'onExit listener threw');
      }
    }
  }

  /** Lets go of a VM whose QEMU is gone, and removes what it used besides its run dir. Idempotent. */
  private async retire(vm: Vm): Promise<void> {
    if (vm.retired) return;
    vm.retired = true;
    if (this.vms.get(vm.vmId) === vm) this.vms.delete(vm.vmId);
    await this.detach(vm);
    await this.cleanupDir(vm.vmId, vm.saved);
  }

  private async detach(vm: Vm): Promise<void> {
    vm.watcher.dispose();
    vm.console.close();
    await vm.monitor?.close();
  }

  /** Taps, cgroup, pidfile, sockets and migration mark of a VM whose QEMU is not running; console.log and spec.json stay. */
  private async cleanupDir(vmId: string, saved?: SavedSpec | null): Promise<void> {
    const paths = vmPaths(this.runDir, vmId);
    if (!existsSync(paths.dir)) return;
    const s = saved ?? (await this.savedSpec(vmId));
    if (s) await this.deleteTaps(tapsOf(s));
    await this.cgroups.remove(vmId);
    if (findQemu(paths.pidfile) === null) {
      await Promise.all([paths.pidfile, paths.qmp, paths.serial, paths.migration].map((p) => rm(p, { force: true })));
    }
  }

  private async deleteTaps(taps: string[]): Promise<void> {
    for (const tap of taps) await deleteTap(tap, this.log);
  }

  /**
   * The VM's entry if its QEMU runs: the tracked one, or one adopted from its pidfile (a QEMU this
   * driver has not attached to yet). A tracked VM whose QEMU is gone is retired on the way.
   */
  private async live(vmId: string): Promise<Vm | null> {
    const vm = this.vms.get(vmId);
    if (vm) {
      if (isQemuFor(vm.pid, vm.paths.pidfile)) return vm;
      vm.watcher.check(); // resolves `exited`, so the exit is still reported unless stopping
      await this.retire(vm);
    }
    const pid = findQemu(vmPaths(this.runDir, vmId).pidfile);
    if (pid === null) return null;
    return this.attach(vmId, pid, await this.savedSpec(vmId), null);
  }

  private async running(vmId: string): Promise<Vm> {
    this.assertOpen(vmId);
    const vm = await this.live(vmId);
    if (!vm) throw new DriverError(vmId, `${vmId} is not running on this host`);
    return vm;
  }

  // --- agent restart --------------------------------------------------------------------------

  /** Finds the QEMUs that outlived the previous agent and watches them again. */
  private async recover(): Promise<void> {
    try {
      await mkdir(this.runDir, { recursive: true });
      const dirs = await this.vmDirs();
      await Promise.all(dirs.map((vmId) => this.withLock(vmId, async () => {
        const paths = vmPaths(this.runDir, vmId);
        const pid = findQemu(paths.pidfile);
        if (pid === null) {
          if (readPidfile(paths.pidfile) !== null) this.log.info({ vmId }, 'QEMU ended while the agent was away');
          await this.cleanupDir(vmId);
          return;
        }
        await this.attach(vmId, pid, await this.savedSpec(vmId), null);
        this.log.info({ vmId, pid }, 'found running VM');
      }).catch((e) => this.log.error({ vmId, error: (e as Error).message }, 'cannot recover VM'))));
    } catch (e) {
      this.log.error({ runDir: this.runDir, error: (e as Error).message }, 'cannot scan the run directory');
    }
  }

  private async vmDirs(): Promise<string[]> {
    const entries = await readdir(this.runDir, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory() && VM_ID.test(e.name)).map((e) => e.name);
  }

  private savedSpec(vmId: string): Promise<SavedSpec | null> {
    return readJson<SavedSpec>(vmPaths(this.runDir, vmId).spec);
  }

  // --- helpers --------------------------------------------------------------------------------

  /** Runs `fn` after every earlier operation on the same VM has finished. */
  private withLock<T>(vmId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(vmId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    const tail = next.catch(() => undefined);
    this.locks.set(vmId, tail);
    void tail.then(() => { if (this.locks.get(vmId) === tail) this.locks.delete(vmId); });
    return next;
  }

  private checkId(vmId: string): void {
    if (!VM_ID.test(vmId)) throw new DriverError(vmId, `${JSON.stringify(vmId)} is not a VM id`);
  }

  private assertOpen(vmId: string): void {
    if (this.closed) throw new DriverError(vmId, 'the QEMU driver was closed');
  }
}

const tapsOf = (saved: SavedSpec): string[] => saved.spec.nics.map((n) => tapName(saved.spec.vmId, n.slot, saved.tapVariant ?? 0));

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}
