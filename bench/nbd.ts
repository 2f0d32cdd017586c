/**
 * bench/nbd: kumo's NBD server (NbdServer + FileBackend, one replica: a raw file) against qemu-nbd
 * serving a raw file from the same directory (same disk), both over a unix socket, both measured
 * with the same client: `qemu-img bench` (QEMU's own NBD client, the one a VM uses).
 *
 * Cases (each run against both servers, alternating which goes first, `--rounds` times; medians):
 *   w4k-qd1   4 KiB writes, queue depth 1        r4k-qd1   4 KiB reads, queue depth 1
 *   w4k-qd32  4 KiB writes, queue depth 32       r4k-qd32  4 KiB reads, queue depth 32
 *   w1m-seq   1 MiB sequential writes, queue depth 8
 * The 4 KiB cases use a step of 257 blocks (qemu-img bench has no random mode; its offset advances
 * by the step modulo the image size, and 257 is coprime with the block count, so the offsets scatter
 * over the whole 1 GiB image without repeating). Reads run after the writes with the same offsets,
 * so both servers read data, not holes.
 *
 * Caching: kumo does buffered I/O (the page cache is the write-back cache, FUA/flush = fdatasync);
 * qemu-nbd runs with the same `--cache=writeback` (its default), `--aio=threads`, discard ignored.
 * The client uses `-t none` as a guest would. Neither server sees a flush during a timed run.
 *
 * Printed per case: IOPS and MB/s of each server, kumo/qemu-nbd, and the server's CPU time per
 * request (user+sys from /proc: less sensitive than throughput to other load on the machine).
 * Then one JSON line. Goal: kumo/qemu-nbd >= 1.0 with one replica.
 *
 *   node dist/bench/nbd.js [--rounds 3] [--scale 1] [--dir DIR] [--cases w4k-qd1,...] [--keep]
 * (`--scale 0.2` for a quick run; `--dir` must be on the disk to measure, default the OS tmpdir.)
 * Internal: `node dist/bench/nbd.js --serve SOCKET FILE` is the kumo server process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, stop, stopAll, stopChildrenOnSignals, track, waitForLine } from './lib/proc.js';
import { FileBackend, NbdServer } from '../src/storage/nbd/index.js';

const EXPORT = 'bench';
const IMAGE_SIZE = 1024 * 1024 * 1024;

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

// ------------------------------------------------------------------------------ the kumo server
async function serve(sock: string, file: string): Promise<void> {
  const backend = await FileBackend.open(file);
  const server = new NbdServer();
  server.addExport(EXPORT, backend);
  await server.listen({ path: sock });
  const bye = () =>
    void server.close().then(() => backend.close()).finally(() => {
      process.stderr.write(`  kumo server (FileBackend io '${backend.io}'): ${JSON.stringify(backend.stats)}\n`);
      process.exit(0);
    });
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

interface Sample {
  seconds: number;
  cpuSeconds: number | null;
}

interface Target {
  name: 'kumo' | 'qemu-nbd';
  proc: ChildProcess;
  uri: string;
}

function waitForSocket(path: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect(path);
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`nothing listens on ${path} after ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

function qemuImgBench(c: Case, uri: string): number {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(c.count), '-d', String(c.depth), '-s', String(c.size), '-S', String(c.step)];
  if (c.write) args.push('-w', '--pattern=0x5a');
  args.push(uri);
  const r = spawnSync('qemu-img', args, { encoding: 'utf8', timeout: 300_000 });
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw new Error(`qemu-img ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return Number(m[1]);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

async function main(): Promise<void> {
  const rounds = Math.max(1, Number(argValue('rounds') ?? 3));
  const scale = Number(argValue('scale') ?? 1);
  const keep = process.argv.includes('--keep');
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

  const qemuNbdVersion = spawnSync('qemu-nbd', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0] ?? '?';
  const dir = mkdtempSync(join(argValue('dir') ?? tmpdir(), 'kumo-bench-nbd-'));
  stopChildrenOnSignals(() => keep || rmSync(dir, { recursive: true, force: true }));
  const files = { kumo: join(dir, 'kumo.raw'), qemu: join(dir, 'qemu-nbd.raw') };
  for (const f of Object.values(files)) {
    writeFileSync(f, '');
    truncateSync(f, IMAGE_SIZE);
  }
  const socks = { kumo: join(dir, 'kumo.sock'), qemu: join(dir, 'qemu-nbd.sock') };

  const self = fileURLToPath(import.meta.url);
  const kumoProc = track(spawn(process.execPath, [self, '--serve', socks.kumo, files.kumo], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await waitForLine(kumoProc, /ready/, 10_000, 'kumo NBD server');
  const qemuProc = track(spawn('qemu-nbd', ['-f', 'raw', '-t', '--cache=writeback', '--aio=threads', '--discard=ignore', '-x', EXPORT, '--socket', socks.qemu, files.qemu], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await waitForSocket(socks.qemu, 10_000);

  const targets: Target[] = [
    { name: 'kumo', proc: kumoProc, uri: `nbd+unix:///${EXPORT}?socket=${socks.kumo}` },
    { name: 'qemu-nbd', proc: qemuProc, uri: `nbd+unix:///${EXPORT}?socket=${socks.qemu}` },
  ];
  console.log(`bench/nbd: ${rounds} round(s), image 1 GiB sparse raw in ${dir}; qemu-img bench -t none; ${qemuNbdVersion}; node ${process.version}`);

  const samples = new Map<string, Sample[]>(); // `${case}/${target}`
  try {
    for (let r = 0; r < rounds; r++) {
      for (const c of cases) {
        const order = r % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          // Write back what earlier runs left dirty, so that neither server pays for the other's.
          spawnSync('sync');
          const cpu0 = cpuSeconds(t.proc.pid!);
          const seconds = qemuImgBench(c, t.uri);
          const cpu1 = cpuSeconds(t.proc.pid!);
          const key = `${c.name}/${t.name}`;
          samples.set(key, [...(samples.get(key) ?? []), { seconds, cpuSeconds: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null }]);
          process.stderr.write(`  round ${r + 1} ${key}: ${(c.count / seconds).toFixed(0)} IOPS\n`);
        }
      }
    }
  } finally {
    await Promise.all(targets.map((t) => stop(t.proc)));
    await stopAll();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }

  const rows = cases.map((c) => {
    const per = Object.fromEntries(targets.map((t) => {
      const ss = samples.get(`${c.name}/${t.name}`)!;
      const seconds = median(ss.map((s) => s.seconds));
      const cpu = ss.every((s) => s.cpuSeconds !== null) ? median(ss.map((s) => s.cpuSeconds! / c.count)) : NaN;
      return [t.name, { iops: c.count / seconds, mbps: (c.count * c.size) / seconds / 1e6, cpuUsPerOp: cpu * 1e6 }];
    })) as Record<Target['name'], { iops: number; mbps: number; cpuUsPerOp: number }>;
    return { case: c.name, depth: c.depth, size: c.size, count: c.count, ...per, ratio: per.kumo.iops / per['qemu-nbd'].iops };
  });

  const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log('');
  console.log('case       | kumo IOPS   MB/s  cpu µs/op | qemu-nbd IOPS   MB/s  cpu µs/op | kumo/qemu-nbd');
  for (const r of rows) {
    console.log(
      `${r.case.padEnd(10)} | ${f(r.kumo.iops).padStart(9)} ${f(r.kumo.mbps, 1).padStart(6)} ${f(r.kumo.cpuUsPerOp, 1).padStart(10)} | ` +
        `${f(r['qemu-nbd'].iops).padStart(13)} ${f(r['qemu-nbd'].mbps, 1).padStart(6)} ${f(r['qemu-nbd'].cpuUsPerOp, 1).padStart(10)} | ${f(r.ratio, 2).padStart(6)}x`,
    );
  }
  const worst = Math.min(...rows.map((r) => r.ratio));
  console.log(`\nGoal: >= 1.00x qemu-nbd in every case; worst case ${f(worst, 2)}x -> ${worst >= 1 ? 'met' : 'NOT met'}`);
  console.log(JSON.stringify({ bench: 'nbd', rounds, scale, qemuNbd: qemuNbdVersion, node: process.version, cases: rows, worstRatio: worst, goalMet: worst >= 1 }));
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
