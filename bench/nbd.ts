/**
 * bench/nbd: a kumo volume exported over NBD — the real frontend — against qemu-nbd serving a raw
 * file on the same disk, all measured in one run with the same client: `qemu-img bench` (QEMU's own
 * NBD client, the one a VM uses), over unix sockets.
 *
 * Targets:
 *   kumo-1r    a 1 GiB kumo volume with 1 replica, served by `kumo vol export VOL --socket S`: the CLI's
 *              frontend (HttpMapSource → controller for the map and the lease, VolumeSession → the
 *              storage node over kumo's block protocol on loopback TCP, NbdServer). The bench starts
 *              its own `kumo controller` and two `kumo storage-node`s (sn-a, sn-b, 127.0.0.1, zone-1);
 *              the controller's placement (by free space) chooses the node, printed in the header.
 *   kumo-2r    the same with 2 replicas (one on each storage node): every write goes to both.
 *   kumo-file  kumo's NbdServer + FileBackend on a raw file, in a process of its own: the NBD server
 *              alone, no frontend and no storage node — kept because it splits kumo's cost into
 *              "NBD server" and "frontend + storage node".
 *   qemu-nbd   `qemu-nbd -f raw --cache=writeback --aio=threads --discard=ignore` on a raw file: the anchor.
 * Every file (the storage nodes' objects, the two raw files, the controller's SQLite store) is in one
 * directory (`--dir`, default the OS tmpdir), hence on one disk.
 *
 * Prefill: before the timed rounds every target is written once over its whole 1 GiB, sequentially
 * in 1 MiB writes (qemu-img bench, queue depth 8), so that every block is allocated: kumo allocates
 * a 4 MiB block on its first write (a map change committed through the controller), and the raw
 * files allocate on first write too. The prefill times are printed (first-write cost), not compared.
 *
 * Cases (each run against every target, the order of the targets reversed every other round,
 * `--rounds` times; medians):
 *   w4k-qd1   4 KiB writes, queue depth 1        r4k-qd1   4 KiB reads, queue depth 1
 *   w4k-qd32  4 KiB writes, queue depth 32       r4k-qd32  4 KiB reads, queue depth 32
 *   w1m-seq   1 MiB sequential writes, queue depth 8
 * The 4 KiB cases use a step of 257 blocks (qemu-img bench has no random mode; its offset advances
 * by the step modulo the image size, and 257 is coprime with the block count, so the offsets scatter
 * over the whole 1 GiB image without repeating). Reads run after the writes with the same offsets.
 * QEMU's NBD client keeps at most 16 requests in flight, so "qd32" is 16 for every target.
 *
 * Caching: every server does buffered I/O (the page cache is the write-back cache; FUA/flush =
 * fdatasync); the client uses `-t none` as a guest would; nobody sees a flush during a timed run.
 * `sync` runs before each timed run so that no target pays for another's dirty pages.
 *
 * Printed per case: IOPS, MB/s and server CPU time per request of each target (user+sys from /proc:
 * less sensitive than throughput to other load on the machine). For the kumo volumes the CPU is the
 * sum of the export process and the storage node(s) holding the volume, also shown split; the
 * controller's CPU during the run is printed apart (it is not on the I/O path once blocks are
 * allocated: only lease renewals). Then the ratios kumo-1r/qemu-nbd and kumo-2r/qemu-nbd, the goals
 * of issue 4 (≥ 1.0× with 1 replica, ≥ 0.7× with 2, in every case) met or not, and one JSON line.
 * Anchors, not measured here: Longhorn reached 20–30 % of native IOPS (its 2020 performance report);
 * Ceph RBD ≈ 1 ms 4 KiB write latency on SATA SSD.
 *
 *   node dist/bench/nbd.js [--rounds 3] [--scale 1] [--dir DIR] [--cases w4k-qd1,...]
 *                          [--targets kumo-1r,kumo-2r,kumo-file,qemu-nbd] [--cpu-prof] [--keep]
 * `--scale 0.2` for a quick run. `--cpu-prof` runs the exports and storage nodes under
 * `node --cpu-prof` and prints where their time went in the timed rounds (narrow with --cases).
 * A full run (3 rounds, scale 1) takes 8–11 minutes on 2 busy vCPUs.
 * Internal: `node dist/bench/nbd.js --serve SOCKET FILE` is the kumo-file server process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { allocateVolume, startCloud, startExport, stopCloud, type Cloud, type Export } from './lib/cloud.js';
import { cpuSeconds, stop, stopAll, stopChildrenOnSignals, track, waitForLine } from './lib/proc.js';
import { printProfile, summarizeProfile } from './lib/profile.js';
import { FileBackend, NbdServer } from '../src/storage/nbd/index.js';

const EXPORT = 'bench';
const GiB = 1024 * 1024 * 1024;
const IMAGE_SIZE = GiB;
const TARGETS = ['kumo-1r', 'kumo-2r', 'kumo-file', 'qemu-nbd'] as const;
type TargetName = (typeof TARGETS)[number];

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

// ------------------------------------------------------------------------- the kumo-file server
async function serve(sock: string, file: string): Promise<void> {
  const backend = await FileBackend.open(file);
  const server = new NbdServer();
  server.addExport(EXPORT, backend);
  await server.listen({ path: sock });
  const bye = () =>
    void server.close().then(() => backend.close()).finally(() => process.exit(0));
  process.once('SIGTERM', bye);
  process.once('SIGINT', bye);
  process.stdout.write('ready\n');
}

// ------------------------------------------------------------------------------------- the bench
interface Case {
  name: string;
  write: boolean;
  depth: number;
  size: number;
  step: number;
  count: number;
}

/** A process whose CPU counts for a target: the server, or a kumo export and its storage nodes. */
interface Part { label: string; proc: ChildProcess }

interface Target {
  name: TargetName;
  uri: string;
  parts: Part[];
  /** Where the volume lives (kumo volumes). */
  nodes?: string[];
}

interface Sample {
  seconds: number;
  /** CPU seconds per part, same order as Target.parts; null where /proc is missing. */
  cpu: (number | null)[];
  controllerCpu: number | null;
}

/** Waits until the socket file exists (not by connecting: qemu-nbd would log the hang-up as an error). */
async function waitForSocket(path: string, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(statSync(path, { throwIfNoEntry: false })?.isSocket() ?? false)) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the server for ${path} exited (${proc.exitCode ?? proc.signalCode})`);
    if (Date.now() > until) throw new Error(`no socket at ${path} after ${timeoutMs} ms`);
    await sleep(50);
  }
  await sleep(100); // bind() made the file; listen() follows at once
}

function qemuImgBench(c: Case, uri: string): number {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(c.count), '-d', String(c.depth), '-s', String(c.size), '-S', String(c.step)];
  if (c.write) args.push('-w', '--pattern=0x5a');
  args.push(uri);
  const r = spawnSync('qemu-img', args, { encoding: 'utf8', timeout: 600_000 });
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw new Error(`qemu-img ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return Number(m[1]);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

const cpuOf = (p: ChildProcess) => (p.pid ? cpuSeconds(p.pid) : null);
const diff = (a: number | null, b: number | null) => (a !== null && b !== null ? b - a : null);

interface PerTarget { iops: number; mbps: number; cpuUsPerOp: number; cpuSplitUsPerOp: Record<string, number>; controllerCpuUsPerOp?: number }

async function main(): Promise<void> {
  const rounds = Math.max(1, Number(argValue('rounds') ?? 3));
  const scale = Number(argValue('scale') ?? 1);
  const keep = process.argv.includes('--keep');
  const profile = process.argv.includes('--cpu-prof');
  const n = (x: number) => Math.max(100, Math.round(x * scale));
  const blockStep = 257 * 4096;
  const all: Case[] = [
    { name: 'w4k-qd1', write: true, depth: 1, size: 4096, step: blockStep, count: n(20_000) },
    { name: 'w4k-qd32', write: true, depth: 32, size: 4096, step: blockStep, count: n(100_000) },
    { name: 'r4k-qd1', write: false, depth: 1, size: 4096, step: blockStep, count: n(20_000) },
    { name: 'r4k-qd32', write: false, depth: 32, size: 4096, step: blockStep, count: n(100_000) },
    { name: 'w1m-seq', write: true, depth: 8, size: 1 << 20, step: 1 << 20, count: n(2_000) },
  ];
  const wanted = argValue('cases')?.split(',');
  const cases = wanted ? all.filter((c) => wanted.includes(c.name)) : all;
  if (cases.length === 0) throw new Error(`--cases: pick from ${all.map((c) => c.name).join(',')}`);
  const wantedTargets = (argValue('targets')?.split(',') ?? [...TARGETS]) as TargetName[];
  for (const t of wantedTargets) if (!TARGETS.includes(t)) throw new Error(`--targets: pick from ${TARGETS.join(',')}`);
  const want = (t: TargetName) => wantedTargets.includes(t);

  const started = Date.now();
  const load0 = loadavg();
  const qemuNbdVersion = spawnSync('qemu-nbd', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0] ?? '?';
  const dir = mkdtempSync(join(argValue('dir') ?? tmpdir(), 'kumo-bench-nbd-'));
  const profDir = join(dir, 'cpu-prof');
  const nodeArgs = profile ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  if (profile) mkdirSync(profDir);
  stopChildrenOnSignals(() => keep || rmSync(dir, { recursive: true, force: true }));

  const targets: Target[] = [];
  const exports: Export[] = [];
  let cloud: Cloud | null = null;
  const samples = new Map<string, Sample[]>(); // `${case}/${target}`
  const prefill = new Map<TargetName, number>();
  const loads: number[] = []; // 1-minute load average after each timed run
  const profiles: { label: string; pid: number }[] = [];
  let profWindow: [bigint, bigint] | undefined; // the timed rounds, without start-up and prefill
  try {
    // ---- the kumo stack
    if (want('kumo-1r') || want('kumo-2r')) {
      const t0 = Date.now();
      cloud = await startCloud(join(dir, 'cloud'), ['sn-a', 'sn-b'], { nodeArgs });
      const nodeName = new Map(cloud.nodes.map((x) => [x.nodeId, x.name]));
      for (const [name, replicas] of [['kumo-1r', 1], ['kumo-2r', 2]] as const) {
        if (!want(name)) continue;
        const v = await allocateVolume(cloud, { sizeGiB: IMAGE_SIZE / GiB, replicas, name: `bench-${name}` });
        const e = await startExport(cloud, v.volumeId, join(dir, `${name}.sock`), nodeArgs);
        exports.push(e);
        targets.push({
          name, uri: e.uri, nodes: v.nodes.map((x) => nodeName.get(x.nodeId)!),
          parts: [{ label: 'export', proc: e.proc }, ...v.nodes.map((x) => ({ label: x.name, proc: x.proc }))],
        });
        if (profile) profiles.push({ label: `${name} export`, pid: e.proc.pid! });
      }
      if (profile) for (const x of cloud.nodes) profiles.push({ label: `storage node ${x.name}`, pid: x.proc.pid! });
      console.log(`kumo stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s: controller ${cloud.url}, ` +
        cloud.nodes.map((x) => `${x.name} ${x.nodeId} at ${x.address}`).join(', '));
    }
    // ---- kumo-file and qemu-nbd
    const raw = (name: string) => {
      const f = join(dir, `${name}.raw`);
      writeFileSync(f, '');
      truncateSync(f, IMAGE_SIZE);
      return f;
    };
    if (want('kumo-file')) {
      const sock = join(dir, 'kumo-file.sock');
      const p = track(spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', sock, raw('kumo-file')], { stdio: ['ignore', 'pipe', 'inherit'] }));
      await waitForLine(p, /ready/, 10_000, 'kumo-file NBD server');
      targets.push({ name: 'kumo-file', uri: `nbd+unix:///${EXPORT}?socket=${sock}`, parts: [{ label: 'server', proc: p }] });
    }
    if (want('qemu-nbd')) {
      const sock = join(dir, 'qemu-nbd.sock');
      const p = track(spawn('qemu-nbd', ['-f', 'raw', '-t', '--cache=writeback', '--aio=threads', '--discard=ignore', '-x', EXPORT, '--socket', sock, raw('qemu-nbd')], { stdio: ['ignore', 'pipe', 'inherit'] }));
      await waitForSocket(sock, p, 10_000);
      targets.push({ name: 'qemu-nbd', uri: `nbd+unix:///${EXPORT}?socket=${sock}`, parts: [{ label: 'server', proc: p }] });
    }
    targets.sort((a, b) => TARGETS.indexOf(a.name) - TARGETS.indexOf(b.name));

    console.log(`bench/nbd: ${rounds} round(s), scale ${scale}, 1 GiB images in ${dir}; qemu-img bench -t none; ${qemuNbdVersion}; node ${process.version}`);
    console.log(`load average at start: ${load0.map((x) => x.toFixed(2)).join(' ')}`);
    for (const t of targets) if (t.nodes) console.log(`  ${t.name}: ${t.uri} on ${t.nodes.join(' + ')}`);
    console.log('anchors (not measured here): Longhorn reached 20–30 % of native IOPS (2020 performance report); Ceph RBD ≈ 1 ms 4 KiB write latency on SATA SSD');

    // ---- prefill: every block allocated before anything is timed
    const fill: Case = { name: 'prefill', write: true, depth: 8, size: 1 << 20, step: 1 << 20, count: IMAGE_SIZE >> 20 };
    for (const t of targets) {
      spawnSync('sync');
      const s = qemuImgBench(fill, t.uri);
      prefill.set(t.name, s);
      process.stderr.write(`  prefill ${t.name}: 1 GiB in ${s.toFixed(1)} s (${(IMAGE_SIZE / s / 1e6).toFixed(0)} MB/s)\n`);
    }

    // ---- timed rounds
    const roundsFrom = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) {
      for (const c of cases) {
        const order = r % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          // Write back what earlier runs left dirty, so that no server pays for another's.
          spawnSync('sync');
          const cpu0 = t.parts.map((p) => cpuOf(p.proc));
          const ctl0 = cloud && t.nodes ? cpuOf(cloud.controller) : null;
          const seconds = qemuImgBench(c, t.uri);
          const cpu1 = t.parts.map((p) => cpuOf(p.proc));
          const ctl1 = cloud && t.nodes ? cpuOf(cloud.controller) : null;
          loads.push(loadavg()[0]);
          const key = `${c.name}/${t.name}`;
          samples.set(key, [...(samples.get(key) ?? []), { seconds, cpu: cpu0.map((x, i) => diff(x, cpu1[i])), controllerCpu: diff(ctl0, ctl1) }]);
          process.stderr.write(`  round ${r + 1} ${key}: ${(c.count / seconds).toFixed(0)} IOPS\n`);
        }
      }
    }
    profWindow = [roundsFrom, process.hrtime.bigint()];
  } finally {
    // Exports flush and give their lease back, then the nodes and the controller stop; then the rest.
    if (cloud) await stopCloud(cloud, exports);
    await Promise.all(targets.filter((t) => !t.nodes).map((t) => stop(t.parts[0].proc)));
    await stopAll();
    if (profile) {
      for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
        const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(f)?.[1]);
        const who = profiles.find((p) => p.pid === pid);
        if (!who) continue;
        console.log(`\n--- CPU profile: ${who.label} (pid ${pid}) ---`);
        printProfile(summarizeProfile(join(profDir, f), 15, profWindow));
      }
    }
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
  const load1 = loadavg();

  const rows = cases.map((c) => {
    const per = {} as Record<TargetName, PerTarget>;
    for (const t of targets) {
      const ss = samples.get(`${c.name}/${t.name}`)!;
      const seconds = median(ss.map((s) => s.seconds));
      const perOp = (xs: (number | null)[]) => (xs.every((x) => x !== null) ? median(xs.map((x) => x! / c.count)) * 1e6 : NaN);
      const split = Object.fromEntries(t.parts.map((p, i) => [p.label, perOp(ss.map((s) => s.cpu[i]))]));
      per[t.name] = {
        iops: c.count / seconds, mbps: (c.count * c.size) / seconds / 1e6,
        cpuUsPerOp: perOp(ss.map((s) => (s.cpu.every((x) => x !== null) ? s.cpu.reduce((a, b) => a! + b!, 0) : null))),
        cpuSplitUsPerOp: split,
        ...(t.nodes ? { controllerCpuUsPerOp: perOp(ss.map((s) => s.controllerCpu)) } : {}),
      };
    }
    const ratio = (t: TargetName) => (per[t] && per['qemu-nbd'] ? per[t].iops / per['qemu-nbd'].iops : NaN);
    return { case: c.name, depth: c.depth, size: c.size, count: c.count, ...per, ratio1r: ratio('kumo-1r'), ratio2r: ratio('kumo-2r'), ratioFile: ratio('kumo-file') };
  });

  const f = (x: number | undefined, d = 0) => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '-');
  for (const r of rows) {
    console.log(`\n${r.case} (${r.count} × ${r.size >= 1 << 20 ? `${r.size >> 20} MiB` : `${r.size >> 10} KiB`}, queue depth ${r.depth})`);
    console.log('  target         IOPS      MB/s  cpu µs/op  vs qemu-nbd  cpu split (µs/op)');
    for (const t of targets) {
      const p = r[t.name];
      const split = t.parts.length > 1
        ? Object.entries(p.cpuSplitUsPerOp).map(([k, v]) => `${k} ${f(v, 1)}`).join(' + ') + (p.controllerCpuUsPerOp !== undefined ? `; controller ${f(p.controllerCpuUsPerOp, 1)}` : '')
        : '';
      const vs = t.name === 'qemu-nbd' ? '' : `${f(p.iops / (r['qemu-nbd']?.iops ?? NaN), 2)}x`;
      console.log(`  ${t.name.padEnd(10)} ${f(p.iops).padStart(8)} ${f(p.mbps, 1).padStart(9)} ${f(p.cpuUsPerOp, 1).padStart(10)} ${vs.padStart(12)}  ${split}`.trimEnd());
    }
  }

  const worst = (k: 'ratio1r' | 'ratio2r') => Math.min(...rows.map((r) => r[k]));
  const goals = [
    { goal: 'kumo-1r >= 1.0x qemu-nbd in every case', worst: worst('ratio1r'), need: 1.0, on: want('kumo-1r') },
    { goal: 'kumo-2r >= 0.7x qemu-nbd in every case', worst: worst('ratio2r'), need: 0.7, on: want('kumo-2r') },
  ].filter((g) => g.on && want('qemu-nbd')).map((g) => ({ goal: g.goal, worstRatio: g.worst, met: g.worst >= g.need }));
  console.log('');
  for (const g of goals) console.log(`Goal: ${g.goal}: worst case ${f(g.worstRatio, 2)}x -> ${g.met ? 'met' : 'NOT met'}`);
  const w = rows.find((r) => r.case === 'w4k-qd1');
  if (w) {
    console.log(`4 KiB write latency at QD1 (1/IOPS): ${targets.map((t) => `${t.name} ${f(1e6 / w[t.name].iops)} µs`).join(', ')} (anchor: Ceph RBD ≈ 1000 µs on SATA SSD)`);
  }
  console.log(`prefill (1 GiB sequential 1 MiB writes, first write of every block): ${targets.map((t) => `${t.name} ${f(IMAGE_SIZE / prefill.get(t.name)! / 1e6)} MB/s`).join(', ')}`);
  const minutes = (Date.now() - started) / 60_000;
  const loadDuring = { min: Math.min(...loads), median: median(loads), max: Math.max(...loads) };
  console.log(`load average (1 min) after the timed runs: min ${f(loadDuring.min, 2)}, median ${f(loadDuring.median, 2)}, max ${f(loadDuring.max, 2)} on ${cpus().length} CPUs; ` +
    `at end: ${load1.map((x) => x.toFixed(2)).join(' ')}; run took ${minutes.toFixed(1)} min`);
  console.log(JSON.stringify({
    bench: 'nbd', rounds, scale, qemuNbd: qemuNbdVersion, node: process.version, loadavg: { start: load0, during: loadDuring, end: load1 }, cpus: cpus().length, minutes,
    placement: Object.fromEntries(targets.filter((t) => t.nodes).map((t) => [t.name, t.nodes])),
    prefillSeconds: Object.fromEntries(prefill), cases: rows, goals,
  }));
}

if (process.argv[2] === '--serve') {
  serve(process.argv[3], process.argv[4]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch(async (err) => {
    console.error(err);
    await stopAll();
    process.exit(1);
  });
}
