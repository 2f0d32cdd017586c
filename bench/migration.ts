/**
 * bench/migration: live migration on real QEMU under TCG (issue 6 "Benchmarks", DESIGN.md §8).
 *
 * Part 1, driver level: two QemuDriver instances on two run directories (two hosts on loopback),
 * one raw file per guest opened by both QEMUs (shared storage: only RAM and device state move), the
 * tiny guest booted with direct kernel boot and `kumo.dirty_mib=N` (rewrites N MiB of RAM with
 * changing non-zero data, as fast as its vCPU can). For guest memory 128 and 512 MiB and dirty
 * working sets from 0 up to above the bandwidth, with QEMU's default downtime-limit (300 ms),
 * max-bandwidth 32 MiB/s, no auto-converge and a 15 s completion timeout, each migration measures:
 *   - the dirty rate before it, from migration.dirtyRate() (calc-dirty-rate, page sampling,
 *     3 samples of 1 s, mean: one sample of a 128 MiB guest is only 64 pages, so it is coarse);
 *   - migrateOut's outcome: total time, downtime, setup time, bytes transferred, dirty-sync-count;
 *     QEMU's own dirty rate during the migration (dirty-pages-rate, from its dirty bitmap) is shown;
 *   - beside predictPrecopy's prediction, fed with the measured dirty rate, the bandwidth actually
 *     achieved (bytes transferred / (total − setup)), QEMU's setup time and the downtime limit,
 *     and as memory the bytes QEMU had to send in pass 1: the guest's non-zero pages,
 *     ram.total − ram.duplicate × page size from query-migrate (pass 1 visits every page once,
 *     and a zero page costs QEMU a few header bytes, not a page). A booted but idle guest's RAM is
 *     mostly zero pages, so feeding the model the whole RAM would predict it several times too slow;
 *     that a-priori prediction (whole RAM, max-bandwidth: what the controller's decideMigration
 *     can know before a migration) is printed too, so the difference shows.
 *   Error = (predicted − measured) / measured; goal: within 25 %. QEMU's dirty-sync-count counts
 *   the sync at setup and the one in the final round as well, so live passes = count − 2 (the
 *   model's `passes` excludes the paused final round).
 *   Converging guests are migrated A→B and back B→A (one boot, two samples); a guest predicted or
 *   found not to converge is abandoned after the completion timeout ("did not converge", the VM
 *   running on at its source), printed beside the model's verdict. Mind when reading downtimes:
 *   QEMU lifts max-bandwidth for the paused final round (migration_completion sets the rate limit
 *   to unlimited), so on loopback the final round goes at memory speed, not at 32 MiB/s. And
 *   calc-dirty-rate counts distinct pages over its 1 s window, so for a guest rewriting its working
 *   set faster than once a second it reports about the working set per second, not the write rate.
 *   A 128 MiB guest cannot hold kumo.dirty_mib=64 (its tmpfs): it panics out of memory, hence 32 at most.
 *
 * Part 2, kumo's orchestration overhead: a `kumo controller`, a storage node and two
 * `kumo agent --driver qemu` (test/e2e/support.ts QemuCloud + startAgent), a be.128m tiny-linux VM
 * migrated back and forth with `POST /v1/vms/{id}/migrate` (body: the target struct, {"host": …};
 * default policy: 1 GiB/s, best-effort downtime-limit 500 ms, 1 s dirty-rate sample). From the
 * request's createdAt/startedAt/finishedAt, its result (totalMs, switchoverMs, downtimeMs) and the
 * agents' JSON logs: request → `migrate` issued (split into claim, dirty-rate measurement, destination
 * preparation, QMP calls), QEMU's pre-copy, and switch-over → request done (completion noticed,
 * lease hand-over + resume, source torn down). The instant QEMU completed is taken as
 * 'outgoing migration started' + QEMU's total-time.
 *
 * Anchors (not measured here): QEMU documents a typical downtime in the "low hundreds of
 * milliseconds" at its default 300 ms downtime-limit; Clark et al., "Live Migration of Virtual
 * Machines" (NSDI 2005): 60 ms for a Quake 3 server, 210 ms for SPECweb99.
 *
 * Every QEMU started here is killed by pid at the end, on error and on SIGINT/SIGTERM (part 1: the
 * pidfiles of both run dirs and a /proc scan for a -pidfile under the bench's directory; part 2:
 * QemuCloud.destroy). Everything listens on 127.0.0.1. No assertion is made on any figure.
 *
 *   node dist/bench/migration.js [--quick] [--no-driver] [--no-cloud] [--migrations N] [--keep]
 * `--quick`: 128 MiB only, dirty working sets 8 and 32 MiB, 2 controller migrations (about 1.5 min).
 * A full run takes 3–4 minutes on two idle cores (part 1 about 3, part 2 under 1); guests boot
 * slower on loaded cores. A controller migration not done in 150 s is cancelled and reported.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LaunchSpec } from '../src/compute/driver.js';
import { MigrationError, type MigrationOutcome, type MigrationParams } from '../src/compute/migration.js';
import { vmPaths } from '../src/compute/qemu/cmdline.js';
import { QemuDriver, type DriverLog } from '../src/compute/qemu/driver.js';
import { findQemu, isQemuFor, procCmdline, signal, waitGone } from '../src/compute/qemu/process.js';
import type { MigrationInfo } from '../src/compute/qemu/qmp/index.js';
import { predictPrecopy, type PrecopyPrediction } from '../src/core/precopy.js';
import { buildTinyImage, type BuildTinyResult } from '../src/guest/build-tiny.js';
import { QemuCloud, TINY_TYPE, type QemuAgent, type RequestInfo } from '../test/e2e/support.js';
import { say } from '../test/helpers/say.js';

const MiB = 1024 * 1024;
const BANDWIDTH = 32 * MiB;
const DOWNTIME_LIMIT_MS = 300;
const COMPLETION_TIMEOUT_MS = 15_000;
const DIRTY_SAMPLES = 3;
/** One controller migration of an idle 128 MiB guest at 1 GiB/s takes seconds; this is a wait, not a measure. */
const MIGRATE_WAIT_MS = 150_000;
const BOOT_MS = 240_000; // a wait, not a measure
const ANCHORS = [
  'QEMU (docs, migration): typical downtime "low hundreds of milliseconds" at the default downtime-limit of 300 ms',
  'Clark et al., Live Migration of Virtual Machines (NSDI 2005): 60 ms downtime for a Quake 3 server, 210 ms for SPECweb99',
];

// ------------------------------------------------------------------ arguments

function intArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} wants a positive integer`);
  return v;
}
const QUICK = process.argv.includes('--quick');
const KEEP = process.argv.includes('--keep');
const DRIVER = !process.argv.includes('--no-driver');
const CLOUD = !process.argv.includes('--no-cloud');
const MIGRATIONS = intArg('migrations', QUICK ? 2 : 4);
/** Guest memory (MiB) → dirty working sets (MiB). 64 MiB of tmpfs does not fit a 128 MiB tiny guest (it panics: out of memory). */
const CASES: { memMiB: number; dirtyMiB: number[] }[] = QUICK
  ? [{ memMiB: 128, dirtyMiB: [8, 32] }]
  : [{ memMiB: 128, dirtyMiB: [0, 8, 16, 32] }, { memMiB: 512, dirtyMiB: [0, 8, 32, 64] }];

// ------------------------------------------------------------------ formatting

const la = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const mib = (b: number) => (b / MiB).toFixed(1);
const rate = (b: number) => `${(b / MiB).toFixed(1)}`;
const msf = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? '—' : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);
const errPct = (pred: number, meas: number) => (meas > 0 ? ((pred - meas) / meas) * 100 : NaN);
const pct = (e: number) => (Number.isNaN(e) ? '—' : `${e >= 0 ? '+' : ''}${e.toFixed(0)}%`);

function table(head: string[], rows: string[][]): void {
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

const t0 = Date.now();

// ------------------------------------------------------------------ part 1: two drivers

interface Host { name: 'A' | 'B'; d: QemuDriver; runDir: string }

interface Run {
  memMiB: number; dirtyMiB: number; dir: string;
  dirtySamples: number[]; dirtyRate: number;
  outcome: MigrationOutcome | null; failure: string | null;
  /** query-migrate at the source once completed, or its last `active` sample. */
  info: MigrationInfo | null;
  /** QEMU's own dirty rate during the migration (last nonzero dirty-pages-rate × page size). */
  qemuDirty: number;
  pass1Bytes: number; bandwidth: number; setupMs: number; elapsedMs: number; transferred: number; syncCount: number;
  post: PrecopyPrediction; prior: PrecopyPrediction;
  /** The model as `post`, with QEMU's in-flight dirty rate instead of the one measured before. */
  live: PrecopyPrediction;
}

function driverLog(tag: string): DriverLog {
  const out = (level: string) => (obj: object, msg: string) => process.stderr.write(`${tag} ${level} ${msg} ${JSON.stringify(obj)}\n`);
  return { debug: () => undefined, info: () => undefined, warn: out('warn'), error: out('error') };
}

class DriverBench {
  readonly work = mkdtempSync(join(tmpdir(), 'kumo-bench-migration-'));
  readonly vmIds: string[] = [];
  img!: BuildTinyResult;
  A!: Host;
  B!: Host;

  async setup(): Promise<void> {
    const cacheDir = process.env.KUMO_CACHE ?? join(tmpdir(), 'kumo-guest-cache');
    this.img = await buildTinyImage({ cacheDir, outDir: join(this.work, 'img') });
    const host = (name: 'A' | 'B'): Host => {
      const runDir = join(this.work, `host-${name.toLowerCase()}`);
      return { name, runDir, d: new QemuDriver({ runDir, accel: 'tcg', log: driverLog(name) }) };
    };
    this.A = host('A');
    this.B = host('B');
    for (const h of [this.A, this.B]) h.d.onExit((id, why) => process.stderr.write(`${h.name}: ${id} ended unasked (${why})\n`));
  }

  spec(memMiB: number, dirtyMiB: number): LaunchSpec {
    const vmId = `vm-${randomBytes(6).toString('hex')}`;
    this.vmIds.push(vmId);
    const disk = join(this.work, `${vmId}.raw`);
    execFileSync('cp', ['--sparse=always', this.img.disk, disk]);
    return {
      vmId, name: `bench ${memMiB}m dirty ${dirtyMiB}`, vcpus: 1, memoryMiB: memMiB, architecture: 'x86_64', resourceType: 'best-effort',
      disks: [{ slot: 0, volumeId: `vol-${vmId.slice(3)}`, sizeGiB: 1, source: { kind: 'file', path: disk } }],
      nics: [],
      kernel: { path: this.img.vmlinux, initrd: this.img.initrd, append: `console=ttyS0 quiet${dirtyMiB ? ` kumo.dirty_mib=${dirtyMiB}` : ''}` },
    };
  }

  async boot(s: LaunchSpec, dirtyMiB: number): Promise<number> {
    const t = Date.now();
    await this.A.d.start(s);
    const re = dirtyMiB ? new RegExp(`KUMO-DIRTY mib=${dirtyMiB}`) : new RegExp(`KUMO-BOOT vm=${s.vmId}`);
    for (;;) {
      const text = (await this.A.d.consoleTail(s.vmId, 1 << 20)).toString('latin1');
      if (re.test(text)) return Date.now() - t;
      if (/Kernel panic/.test(text)) throw new Error(`${s.vmId} panicked while booting: ${text.slice(-400)}`);
      if (Date.now() - t > BOOT_MS) throw new Error(`${s.vmId} printed no ${re} within ${BOOT_MS} ms: ${text.slice(-400)}`);
      await sleep(250);
    }
  }

  /** One migration src → dst, measured; the guest ends where it runs (dst when it completed). */
  async migrate(s: LaunchSpec, memMiB: number, dirtyMiB: number, src: Host, dst: Host): Promise<Run> {
    const vmId = s.vmId;
    const dirtySamples: number[] = [];
    for (let i = 0; i < DIRTY_SAMPLES; i++) dirtySamples.push(await src.d.migration.dirtyRate(vmId, 1));
    const dirtyRate = dirtySamples.reduce((a, b) => a + b, 0) / dirtySamples.length;
    const { uri } = await dst.d.migration.prepareIncoming(s, '127.0.0.1');
    const params: MigrationParams = { downtimeLimitMs: DOWNTIME_LIMIT_MS, maxBandwidthBytes: BANDWIDTH, autoConverge: false, completionTimeoutMs: COMPLETION_TIMEOUT_MS };

    // Our own sampler beside the driver's 250 ms poll: the last `active` query-migrate (RAM stats
    // are gone from a cancelled migration's query-migrate).
    let lastActive: MigrationInfo | null = null;
    let qemuDirty = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          const i = await (await src.d.qmp(vmId)).queryMigrate();
          if (i.status === 'active' && i.ram) {
            lastActive = i;
            if (i.ram['dirty-pages-rate'] > 0) qemuDirty = i.ram['dirty-pages-rate'] * (i.ram['page-size'] || 4096);
          }
        } catch { /* between states */ }
        await sleep(100);
      }
    })();
    let outcome: MigrationOutcome | null = null;
    let failure: string | null = null;
    let info: MigrationInfo | null = null;
    try {
      outcome = await src.d.migration.migrateOut(vmId, uri, params, (p) => { if (p.dirtyRateBytes > 0) qemuDirty = p.dirtyRateBytes; }, new AbortController().signal);
      info = await (await src.d.qmp(vmId)).queryMigrate();
    } catch (e) {
      if (!(e instanceof MigrationError)) throw e;
      failure = e.kind === 'timeout' ? 'did not converge' : `${e.kind}: ${e.message}`;
    } finally {
      sampling = false;
      await sampler;
    }
    if (outcome) {
      await dst.d.migration.resumeIncoming(vmId);
      await src.d.stop(vmId, { force: true, timeoutMs: 1000 });
    } else {
      await dst.d.stop(vmId, { force: true, timeoutMs: 1000 });
      info = lastActive;
    }

    const ram = info?.ram;
    const ps = ram?.['page-size'] || 4096;
    const pass1Bytes = ram ? Math.max(0, ram.total - ram.duplicate * ps) : memMiB * MiB;
    const setupMs = info?.['setup-time'] ?? outcome?.setupMs ?? 0;
    const elapsedMs = outcome?.totalMs ?? info?.['total-time'] ?? COMPLETION_TIMEOUT_MS;
    const transferred = outcome?.transferredBytes ?? ram?.transferred ?? 0;
    const bandwidth = transferred > 0 && elapsedMs > setupMs ? transferred / ((elapsedMs - setupMs) / 1000) : BANDWIDTH;
    const syncCount = outcome?.passes ?? ram?.['dirty-sync-count'] ?? 0;
    const post = predictPrecopy({ memoryBytes: pass1Bytes, dirtyRateBytes: dirtyRate, bandwidthBytes: bandwidth, downtimeLimitMs: DOWNTIME_LIMIT_MS, setupMs });
    const live = predictPrecopy({ memoryBytes: pass1Bytes, dirtyRateBytes: qemuDirty, bandwidthBytes: bandwidth, downtimeLimitMs: DOWNTIME_LIMIT_MS, setupMs });
    const prior = predictPrecopy({ memoryBytes: memMiB * MiB, dirtyRateBytes: dirtyRate, bandwidthBytes: BANDWIDTH, downtimeLimitMs: DOWNTIME_LIMIT_MS });
    return {
      memMiB, dirtyMiB, dir: `${src.name}→${dst.name}`, dirtySamples, dirtyRate, outcome, failure, info, qemuDirty,
      pass1Bytes, bandwidth, setupMs, elapsedMs, transferred, syncCount, post, prior, live,
    };
  }

  async run(): Promise<Run[]> {
    const runs: Run[] = [];
    for (const c of CASES) {
      for (const dirtyMiB of c.dirtyMiB) {
        const s = this.spec(c.memMiB, dirtyMiB);
        const bootMs = await this.boot(s, dirtyMiB);
        say(`${c.memMiB} MiB guest dirtying ${dirtyMiB} MiB (${s.vmId}) booted in ${msf(bootMs)}; load ${la()}`);
        let at = this.A, other = this.B;
        for (let i = 0; i < 2; i++) {
          const r = await this.migrate(s, c.memMiB, dirtyMiB, at, other);
          runs.push(r);
          say(`  ${r.dir}: dirty ${r.dirtySamples.map(rate).join('/')} MiB/s → ${r.outcome
            ? `total ${msf(r.outcome.totalMs)}, downtime ${msf(r.outcome.downtimeMs)}, ${mib(r.transferred)} MiB, sync count ${r.syncCount}`
            : r.failure} (model: ${verdict(r.post)})`);
          if (!r.outcome) break; // it stayed at its source; a second try would measure the same
          [at, other] = [other, at];
        }
        await at.d.stop(s.vmId, { force: true, timeoutMs: 1000 });
      }
    }
    return runs;
  }

  /** Every QEMU of ours, by pidfile and by a /proc scan for a -pidfile under the work dir; cgroups. */
  async cleanup(): Promise<void> {
    await Promise.allSettled([this.A?.d.close(), this.B?.d.close()]);
    const pids = new Map<number, string>();
    for (const h of [this.A, this.B]) {
      if (!h) continue;
      for (const vmId of this.vmIds) {
        const pidfile = vmPaths(h.runDir, vmId).pidfile;
        const pid = findQemu(pidfile);
        if (pid !== null) pids.set(pid, pidfile);
      }
    }
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const argv = procCmdline(Number(e));
      const i = argv?.indexOf('-pidfile') ?? -1;
      const pidfile = i >= 0 ? argv![i + 1] : undefined;
      if (pidfile?.startsWith(this.work + '/') && isQemuFor(Number(e), pidfile)) pids.set(Number(e), pidfile);
    }
    for (const [pid, pidfile] of pids) {
      process.stderr.write(`bench/migration: killing QEMU ${pid}\n`);
      signal(pid, 'SIGKILL');
      await waitGone(pid, pidfile, 10_000);
    }
    await removeCgroups(this.vmIds);
    if (!KEEP) rmSync(this.work, { recursive: true, force: true });
  }
}

const completes = (p: PrecopyPrediction) => p.converges && p.totalMs <= COMPLETION_TIMEOUT_MS;
const verdict = (p: PrecopyPrediction) => (!p.converges ? `does not converge (${p.reason.split(':')[0]})`
  : p.totalMs > COMPLETION_TIMEOUT_MS ? `converges only after ${msf(p.totalMs)}, ${p.passes} pass${p.passes === 1 ? '' : 'es'} (> timeout)`
    : `converges in ${p.passes} pass${p.passes === 1 ? '' : 'es'}`);

function printDriverRuns(runs: Run[]): void {
  console.log(`\n### Part 1: driver-level migrations (max-bandwidth ${mib(BANDWIDTH)} MiB/s, downtime-limit ${DOWNTIME_LIMIT_MS} ms, no auto-converge, timeout ${COMPLETION_TIMEOUT_MS / 1000} s)\n`);
  table(
    ['guest', 'dirty set', 'run', 'dirty rate (dirtyRate, 3×1 s)', 'QEMU dirty rate in flight', 'result', 'total', 'downtime', 'setup', 'sent MiB', 'pass-1 non-zero MiB', 'sync count', 'bandwidth achieved'],
    runs.map((r) => [
      `${r.memMiB} MiB`, `${r.dirtyMiB} MiB`, r.dir, `${rate(r.dirtyRate)} MiB/s (${r.dirtySamples.map(rate).join(', ')})`, r.qemuDirty > 0 ? `${rate(r.qemuDirty)} MiB/s` : '— (none reported)',
      r.outcome ? 'completed' : r.failure ?? '?', r.outcome ? msf(r.outcome.totalMs) : `> ${msf(COMPLETION_TIMEOUT_MS)}`,
      r.outcome ? msf(r.outcome.downtimeMs) : '—', msf(r.setupMs), mib(r.transferred), mib(r.pass1Bytes), String(r.syncCount), `${rate(r.bandwidth)} MiB/s`,
    ]));

  console.log('\nModel (predictPrecopy) fed with: the measured dirty rate (dirtyRate() before the migration), the bandwidth achieved, QEMU\'s setup time,');
  console.log('and as memory the pass-1 non-zero bytes (what QEMU really had to send in pass 1; zero pages cost it a few bytes each).');
  console.log(`A prediction longer than the ${COMPLETION_TIMEOUT_MS / 1000} s completion timeout counts as "does not complete". "a priori" = whole RAM at max-bandwidth, what`);
  console.log('decideMigration can know before a migration; "in-flight rate" = the model with QEMU\'s own dirty rate during the migration. Error = (pred − meas) / meas.\n');
  table(
    ['guest', 'dirty set', 'run', 'measured', 'model verdict', 'live passes meas / pred', 'total meas / pred (err)', 'downtime meas / pred (err)', 'sent MiB meas / pred (err)', 'a priori: total (err)', 'in-flight rate: total (err), downtime (err)'],
    runs.map((r) => {
      const p = r.post;
      const o = r.outcome;
      const other = (q: PrecopyPrediction) => (!completes(q) ? verdict(q) : o ? `${msf(q.totalMs)} (${pct(errPct(q.totalMs, o.totalMs))})` : msf(q.totalMs));
      const head = [`${r.memMiB} MiB`, `${r.dirtyMiB} MiB`, r.dir];
      if (!o) {
        const exp = r.info?.['expected-downtime'];
        return [...head, `did not converge (${r.syncCount} syncs${exp !== undefined ? `, QEMU expects ${msf(exp)} downtime` : ''})`, verdict(p),
          `— / ${p.converges ? p.passes : '—'}`, `> ${msf(COMPLETION_TIMEOUT_MS)} / ${p.converges ? msf(p.totalMs) : '∞'}`, '—', '—', other(r.prior), r.qemuDirty === 0 ? '—' : other(r.live)];
      }
      return [
        ...head, 'completed', verdict(p), `${Math.max(1, r.syncCount - 2)} / ${p.converges ? p.passes : '—'}`,
        `${msf(o.totalMs)} / ${msf(p.totalMs)} (${pct(errPct(p.totalMs, o.totalMs))})`,
        `${msf(o.downtimeMs)} / ${msf(p.downtimeMs)} (${pct(errPct(p.downtimeMs, o.downtimeMs))})`,
        `${mib(o.transferredBytes)} / ${mib(p.transferredBytes)} (${pct(errPct(p.transferredBytes, o.transferredBytes))})`,
        other(r.prior),
        r.qemuDirty === 0 ? '—' : completes(r.live) ? `${msf(r.live.totalMs)} (${pct(errPct(r.live.totalMs, o.totalMs))}), downtime ${msf(r.live.downtimeMs)} (${pct(errPct(r.live.downtimeMs, o.downtimeMs))})` : verdict(r.live),
      ];
    }));

  const done = runs.filter((r) => r.outcome && completes(r.post));
  const within = (f: (r: Run) => number) => done.filter((r) => Math.abs(f(r)) <= 25).length;
  const agree = (pick: (r: Run) => PrecopyPrediction) => runs.filter((r) => !!r.outcome === completes(pick(r))).length;
  console.log('');
  console.log(`verdict (completes within the timeout or not) matches the measurement: model ${agree((r) => r.post)}/${runs.length}, `
    + `a priori ${agree((r) => r.prior)}/${runs.length}, with the in-flight rate ${runs.filter((r) => r.qemuDirty > 0 && !!r.outcome === completes(r.live)).length}/${runs.filter((r) => r.qemuDirty > 0).length}`);
  const goal = (k: number) => `${k}/${done.length}${k === done.length ? '' : ' (NOT met)'}`;
  console.log(`goal: prediction within ±25 % (completed runs the model also predicts to complete, n=${done.length}): total ${goal(within((r) => errPct(r.post.totalMs, r.outcome!.totalMs)))}, `
    + `sent bytes ${goal(within((r) => errPct(r.post.transferredBytes, r.outcome!.transferredBytes)))}, downtime ${goal(within((r) => errPct(r.post.downtimeMs, r.outcome!.downtimeMs)))}; `
    + `a priori total ${runs.filter((r) => r.outcome && completes(r.prior) && Math.abs(errPct(r.prior.totalMs, r.outcome.totalMs)) <= 25).length}/${runs.filter((r) => r.outcome).length}`);
  const drop = runs.filter((r) => r.qemuDirty > 0 && r.dirtyRate > 0).map((r) => r.qemuDirty / r.dirtyRate);
  if (drop.length) console.log(`QEMU's in-flight dirty rate ÷ the rate dirtyRate() measured before, per run that reported one: ${drop.map((x) => x.toFixed(2)).join(', ')}`);
  const dts = runs.filter((r) => r.outcome).map((r) => r.outcome!.downtimeMs).sort((a, b) => a - b);
  if (dts.length) console.log(`QEMU downtime over the ${dts.length} completed runs: min ${msf(dts[0])}, median ${msf(dts[Math.ceil(dts.length / 2) - 1])}, max ${msf(dts.at(-1))}`);
}

// ------------------------------------------------------------------ part 2: the controller

interface Orch {
  vmId: string; from: string; to: string; info: RequestInfo;
  result: { totalMs: number; switchoverMs: number; downtimeMs: number; qemuDowntimeMs: number; transferredBytes: number; passes: number; dirtyRateBytes: number; predicted: { totalMs: number; downtimeMs: number } };
  created: number; started: number; finished: number;
  prepIn: number | null; waiting: number | null; migOut: number | null; migStarted: number | null; completedLog: number | null; handover: number | null; resumed: number | null;
}

function logTime(a: QemuAgent, vmId: string, msg: string, from: number, to: number): number | null {
  const l = a.logLines().find((x) => x.msg === msg && x.vmId === vmId && typeof x.time === 'number' && (x.time as number) >= from && (x.time as number) <= to);
  return l ? (l.time as number) : null;
}

/** VMs part 2 allocated: QemuCloud.destroy stops the agents before their QEMUs, so their CPU cgroups are ours to remove. */
const cloudVms: string[] = [];

async function removeCgroups(vmIds: string[]): Promise<void> {
  for (const vmId of vmIds) {
    const cg = `/sys/fs/cgroup/cpu/kumo/${vmId}`;
    for (let i = 0; i < 20 && existsSync(cg); i++) {
      try { rmdirSync(cg); } catch { await sleep(250); }
    }
  }
}

async function orchestration(cloud: QemuCloud): Promise<Orch[]> {
  const tStart = Date.now();
  await cloud.start();
  const h1 = cloud.main;
  const h2 = await cloud.startAgent({ name: 'bench-h2' });
  say(`cloud up in ${msf(Date.now() - tStart)}: controller ${cloud.url}, agents ${h1.name} (${h1.hostId}) and ${h2.name} (${h2.hostId}); load ${la()}`);
  const vmId = await cloud.allocate(TINY_TYPE, 'bench-migration');
  cloudVms.push(vmId);
  await cloud.run(vmId, 'restore-image', { imageId: cloud.imageId }, 180_000);
  await cloud.run(vmId, 'power-on');
  await cloud.waitBoot(vmId, 1);
  say(`${vmId} (${TINY_TYPE}) booted on ${(await cloud.vm(vmId)).host}; load ${la()}`);
  const out: Orch[] = [];
  for (let i = 0; i < MIGRATIONS; i++) {
    const src = cloud.agentOf((await cloud.vm(vmId)).host);
    const dst = src === h1 ? h2 : h1;
    // REST: a lone struct parameter is the whole body (test/cli/request-mapping.test.ts).
    const r = await cloud.rest('admin', 'POST', `/vms/${vmId}/migrate`, { host: dst.hostId });
    if (r.status !== 202) throw new Error(`migrate ${vmId} to ${dst.hostId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    const requestId = (r.body as { requestId: string }).requestId;
    const tReq = Date.now();
    let info: RequestInfo;
    try {
      info = await cloud.wait(requestId, MIGRATE_WAIT_MS, 'admin');
    } catch (e) {
      // Say why, from the agents' logs, and leave the VM at its source.
      const failed = [src, dst].flatMap((a) => a.logLines().filter((l) => (l.level as number) >= 40 && (l.time as number) >= tReq).map((l) => `${a.name}: ${String(l.msg)}: ${String(l.err ?? '')}`));
      await cloud.rest('admin', 'POST', `/requests/${requestId}/cancel`).catch(() => undefined);
      await cloud.wait(requestId, 60_000, 'admin').catch(() => undefined);
      throw new Error(`migrateVm ${vmId} ${src.name} → ${dst.name}: ${(e as Error).message}; cancelled. Agent warnings/errors meanwhile: ${failed.slice(0, 6).join(' | ') || 'none'}`);
    }
    if (info.status !== 'succeeded') throw new Error(`migrateVm ${vmId} ${src.name} → ${dst.name}: ${info.status} ${JSON.stringify(info.error)} ${info.message}`);
    await sleep(300); // the agents' log lines reach their files
    const created = Date.parse(info.createdAt), started = Date.parse(info.startedAt), finished = Date.parse(info.finishedAt);
    const lo = created - 5, hi = finished + 1000;
    const o: Orch = {
      vmId, from: src.name, to: dst.name, info, result: info.result as Orch['result'], created, started, finished,
      prepIn: logTime(dst, vmId, 'preparing an incoming migration', lo, hi),
      waiting: logTime(dst, vmId, 'VM waits for its incoming migration', lo, hi),
      migOut: logTime(src, vmId, 'migrating a VM out', lo, hi),
      migStarted: logTime(src, vmId, 'outgoing migration started', lo, hi),
      completedLog: logTime(src, vmId, 'migration completed at the source', lo, hi),
      handover: logTime(src, vmId, 'handing the VM\'s volumes over', lo, hi),
      resumed: logTime(dst, vmId, 'migrated VM resumed here', lo, hi),
    };
    out.push(o);
    say(`  ${src.name} → ${dst.name}: request ${msf(finished - created)}, QEMU total ${msf(o.result.totalMs)}, downtime ${o.result.qemuDowntimeMs} ms + switch-over ${o.result.switchoverMs} ms`);
    await sleep(1000);
  }
  return out;
}

function printOrchestration(runs: Orch[], load: string): void {
  const d = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);
  const qemuDone = (o: Orch) => (o.migStarted === null ? null : o.migStarted + o.result.totalMs);
  const metrics: { label: string; of: (o: Orch) => number | null }[] = [
    { label: '**request → `migrate` issued** (createdAt → QMP migrate returned)', of: (o) => d(o.created, o.migStarted) },
    { label: '  claimed by the engine (createdAt → startedAt)', of: (o) => d(o.created, o.started) },
    { label: '  dirty rate (1 s calc-dirty-rate) + prediction + reservation', of: (o) => d(o.started, o.prepIn) },
    { label: '  destination prepared (volumes, QEMU -incoming, QMP)', of: (o) => d(o.prepIn, o.waiting) },
    { label: '  → source agent has the migrate call', of: (o) => d(o.waiting, o.migOut) },
    { label: '  → QMP capabilities, parameters, migrate', of: (o) => d(o.migOut, o.migStarted) },
    { label: '  kumo\'s own (the above less the 1 s sample window and the destination QEMU start)', of: (o) => { const a = d(o.created, o.migStarted), b = d(o.prepIn, o.waiting); return a === null || b === null ? null : a - 1000 - b; } },
    { label: 'QEMU pre-copy (result.totalMs, QEMU\'s total-time)', of: (o) => o.result.totalMs },
    { label: '**switch-over → request done** (QEMU completed → finishedAt)', of: (o) => d(qemuDone(o), o.finished) },
    { label: '  completion noticed by the source agent (250 ms poll)', of: (o) => d(qemuDone(o), o.completedLog) },
    { label: '  → lease hand-over begins at the source', of: (o) => d(o.completedLog, o.handover) },
    { label: '  → resumed at the destination (hand-over, cont, announce-self)', of: (o) => d(o.handover, o.resumed) },
    { label: '  → request done (VM row, source QEMU stopped)', of: (o) => d(o.resumed, o.finished) },
    { label: 'result.switchoverMs (controller: hand-over + resume)', of: (o) => o.result.switchoverMs },
    { label: 'result.downtimeMs (QEMU downtime + switchoverMs)', of: (o) => o.result.downtimeMs },
    { label: 'guest paused, from the logs (QEMU completed − its downtime → resumed)', of: (o) => { const q = qemuDone(o); return q === null || o.resumed === null ? null : o.resumed - (q - o.result.qemuDowntimeMs); } },
    { label: 'request total (createdAt → finishedAt)', of: (o) => o.finished - o.created },
  ];
  console.log(`\n### Part 2: kumo's orchestration of migrateVm (${runs.length} migrations of one ${TINY_TYPE} VM between two agents; load average after: ${load})\n`);
  table(['metric', 'p50', 'mean', 'min', 'max', 'n'], metrics.map((m) => {
    const xs = runs.map(m.of).filter((x): x is number => x !== null).sort((a, b) => a - b);
    const n = xs.length;
    const p50 = n ? xs[Math.ceil(n / 2) - 1] : NaN;
    const mean = n ? xs.reduce((a, b) => a + b, 0) / n : NaN;
    return [m.label, msf(p50), msf(mean), msf(n ? xs[0] : NaN), msf(n ? xs[n - 1] : NaN), String(n)];
  }));
  console.log('');
  table(['run', 'QEMU total', 'QEMU downtime', 'switch-over', 'sent MiB', 'sync count', 'dirty rate', 'predicted total / downtime'],
    runs.map((o) => [`${o.from} → ${o.to}`, msf(o.result.totalMs), msf(o.result.qemuDowntimeMs), msf(o.result.switchoverMs), mib(o.result.transferredBytes),
      String(o.result.passes), `${rate(o.result.dirtyRateBytes)} MiB/s`, `${msf(o.result.predicted.totalMs)} / ${msf(o.result.predicted.downtimeMs)}`]));
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const drv = DRIVER ? new DriverBench() : null;
  const cloud = CLOUD ? new QemuCloud('kumo-bench-migration-cloud-') : null;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await drv?.cleanup().catch((e: Error) => process.stderr.write(`bench/migration: driver cleanup: ${e.message}\n`));
    await cloud?.destroy(KEEP).catch((e: Error) => process.stderr.write(`bench/migration: cloud cleanup: ${e.message}\n`));
    await removeCgroups(cloudVms);
  };
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`bench/migration: ${sig}, stopping every process it started\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const model = (() => { try { return /Model name:\s*(.*)/.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1]?.trim() ?? ''; } catch { return ''; } })();
  const qemuVersion = (() => { try { return execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]; } catch { return 'unknown'; } })();
  const otherQemus = readdirSync('/proc').filter((e) => /^\d+$/.test(e) && (procCmdline(Number(e))?.[0] ?? '').includes('qemu-system')).length;
  console.log(`bench/migration${QUICK ? ' --quick' : ''}: ${cpus().length} cores (${model}), node ${process.version}, ${qemuVersion}, TCG`);
  console.log(`load average at start: ${la()}; QEMU processes already running on this machine (not ours): ${otherQemus}`);
  const load = { afterDriver: '', afterCloud: '' };
  try {
    if (drv) {
      await drv.setup();
      say(`tiny image ${drv.img.kernelVersion}; hosts A and B: ${drv.A.runDir}, ${drv.B.runDir}`);
      const runs = await drv.run();
      load.afterDriver = la();
      await drv.cleanup();
      printDriverRuns(runs);
      console.log(`load average after part 1: ${load.afterDriver}\n`);
    }
    if (cloud) {
      try {
        const orch = await orchestration(cloud);
        load.afterCloud = la();
        printOrchestration(orch, load.afterCloud);
      } catch (e) {
        console.log(`\n### Part 2: kumo's orchestration of migrateVm — could not run\n\n${(e as Error).message}`);
        process.exitCode = 1;
      }
    }
    console.log('\nanchors:');
    for (const a of ANCHORS) console.log(`  - ${a}`);
    console.log(`\ntotal ${msf(Date.now() - t0)}; load average at the end: ${la()}`);
  } finally {
    await cleanup();
  }
}

main().then(() => process.exit(process.exitCode ?? 0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
