/**
 * bench/api: the controller's read path under load. A controller runs as its own process (SQLite
 * store), 10,000 VMs are created through REST, then a load generator in another process keeps 64
 * requests in flight for N seconds per phase:
 *   xmlrpc       getVmStatus over XML-RPC (POST /RPC2, the body Python's xmlrpc.client writes, HTTP Basic)
 *   rest         GET /v1/vms/{id} (getVmInfo: disks, NICs, zone, comment; Bearer)
 *   rest-status  GET /v1/vms/{id}/status (getVmStatus over REST: the same service call as xmlrpc)
 *   ceiling      a minimal Node http server answering a fixed XML-RPC response, same client, same concurrency
 *   ceiling-fastify  the same from a one-route Fastify app (the framework kumo's API runs on)
 *   wrk-*        kumo's XML-RPC and REST loads and the Node ceiling again from wrk (C, one thread), when
 *                Debian's wrk is installed (it counts HTTP statuses only, not faults)
 *
 * Per phase it prints requests/s, p50/p99/max latency, errors, and the server's CPU time per request
 * (from /proc): 1e6 / it is what one core could serve. It depends less than req/s on how much CPU the
 * client and other work on the machine take, though contention inflates it too.
 *
 * Anchors printed in the same run: OpenNebula's documented ~30 API requests/s per zone with vm.info at
 * 0.33 s under that load, and the ceiling measured now. Goal: >= 5,000 req/s with p99 < 20 ms.
 *
 *   node dist/bench/api.js [--seconds 30] [--warmup 5] [--vms 10000] [--concurrency 64]
 *                          [--phases xmlrpc,rest,rest-status,ceiling,ceiling-fastify,wrk] [--cpu-prof] [--keep]
 * (BENCH_SECONDS in the environment sets --seconds too; BENCH_WRK_RAW=1 echoes wrk's own report.)
 * `--cpu-prof` restarts the controller under `node --cpu-prof` for each kumo phase and prints where
 * its time went during the measured window (the figures of a profiled run are not the benchmark's).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadConfig, LoadResult } from './lib/loadgen.js';
import { printProfile, summarizeProfile, type ProfileSummary } from './lib/profile.js';
import { cpuSeconds, isStopping, stop, stopAll, stopChildrenOnSignals, track, waitForLine } from './lib/proc.js';

// ---------------------------------------------------------------------------------------------- options
function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const num = (name: string, env: string | undefined, dflt: number) => {
  const v = Number(argValue(name) ?? env ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
};

const SECONDS = num('seconds', process.env.BENCH_SECONDS, 30);
const WARMUP = Number(argValue('warmup') ?? Math.min(5, Math.max(1, SECONDS / 5)));
const VMS = Math.floor(num('vms', undefined, 10_000));
const CONCURRENCY = Math.floor(num('concurrency', undefined, 64));
const SEED_CONCURRENCY = 16;
/** Phases run in the order given. */
const PHASE_LIST = (argValue('phases') ?? 'xmlrpc,rest,rest-status,ceiling,ceiling-fastify,wrk').split(',');
const PHASES = new Set(PHASE_LIST);
const CPU_PROF = flag('cpu-prof');
const KEEP = flag('keep') || CPU_PROF;

const GOAL_RPS = 5000, GOAL_P99_MS = 20;
const ANCHOR = { system: 'OpenNebula', rps: 30, vmInfoSeconds: 0.33, text: 'OpenNebula documents ~30 API requests/s per zone, with vm.info answering in 0.33 s under that load' };

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./lib/loadgen.js', import.meta.url));
const CEILING = fileURLToPath(new URL('./lib/ceiling.js', import.meta.url));

// ---------------------------------------------------------------------------------------------- HTTP helper
const seedAgent = new http.Agent({ keepAlive: true, maxSockets: SEED_CONCURRENCY });

function call(base: URL, method: string, path: string, auth: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: string }> {
  const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent: seedAgent, host: base.hostname, port: base.port, method, path,
      headers: { authorization: auth, ...(data ? { 'content-type': contentType, 'content-length': String(data.length) } : {}) },
    }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { s += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function must(what: string, r: Promise<{ status: number; body: string }>, status: number): Promise<any> {
  const res = await r;
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} (expected ${status}): ${res.body.slice(0, 300)}`);
  return res.body ? JSON.parse(res.body) : null;
}

const basic = (user: string, key: string) => `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}`;

/** The request body Python's xmlrpc.client (3.x) writes for ServerProxy(...).getVmStatus("vm-…"). */
const pythonXmlRpcBody = (method: string) =>
  `<?xml version='1.0'?>\n<methodCall>\n<methodName>${method}</methodName>\n<params>\n<param>\n<value><string>{id}</string></value>\n</param>\n</params>\n</methodCall>\n`;
/** The headers it sends besides Host and Content-Length. */
const pythonXmlRpcHeaders = (auth: string) => ({ 'accept-encoding': 'gzip', 'content-type': 'text/xml', 'user-agent': 'Python-xmlrpc/3.11', authorization: auth });

// ---------------------------------------------------------------------------------------------- processes
interface RunningController { proc: ChildProcess; url: URL; credentials: string }

async function startController(dataDir: string, logName: string, profDir?: string): Promise<RunningController> {
  const log = openSync(join(dataDir, logName), 'a');
  const execArgs = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const proc = track(spawn(process.execPath, [...execArgs, MAIN, 'controller', '--data', dataDir, '--listen', '127.0.0.1', '--port', '0', '--name', 'bench'], {
    stdio: ['ignore', 'pipe', log], env: { ...process.env, KUMO_LOG_LEVEL: process.env.KUMO_LOG_LEVEL ?? 'warn' },
  }));
  closeSync(log);
  try {
    const [, base, credentials] = await waitForLine(proc, /XML-RPC:\s+(http:\/\/\S+)\/RPC2[\s\S]*credentials:\s+(\S+)\n/, 60_000, 'controller');
    proc.stdout!.resume();
    return { proc, url: new URL(base), credentials };
  } catch (e) {
    await stop(proc);
    throw e;
  }
}

interface PhaseResult extends LoadResult {
  phase: string; target: string; serverCpuPct: number | null; windowNs: [bigint, bigint];
  /** Server CPU time per request (from /proc): 1e6 / it is what one core could serve. Less sensitive than req/s to
   * other load on the machine, not immune to it. */
  serverCpuUsPerReq: number | null;
}

/** Runs one load phase from a fresh load-generator process; `serverPid` is sampled for CPU use over the measured window. */
function runLoad(phase: string, target: string, cfg: LoadConfig, serverPid: number | undefined): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const child = track(fork(LOADGEN, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' }));
    let cpu0: number | null = null, cpu1: number | null = null, t0 = 0n, t1 = 0n;
    child.on('message', (m: any) => {
      if (m.mark === 'start') { cpu0 = serverPid ? cpuSeconds(serverPid) : null; t0 = process.hrtime.bigint(); return; }
      if (m.mark === 'end') { cpu1 = serverPid ? cpuSeconds(serverPid) : null; t1 = process.hrtime.bigint(); return; }
      if (m.fatal) return reject(new Error(`load generator: ${m.fatal}`));
      const serverCpuPct = cpu0 !== null && cpu1 !== null && t1 > t0 ? ((cpu1 - cpu0) / (Number(t1 - t0) / 1e9)) * 100 : null;
      const r = m as LoadResult;
      const serverCpuUsPerReq = cpu0 !== null && cpu1 !== null && r.requests > 0 ? ((cpu1 - cpu0) * 1e6) / r.requests : null;
      resolve({ phase, target, ...r, serverCpuPct, serverCpuUsPerReq, windowNs: [t0, t1] });
    });
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`load generator exited with ${code}`)); });
    child.send(cfg);
  });
}

async function startCeiling(body: string, framework: 'node' | 'fastify' = 'node'): Promise<{ proc: ChildProcess; port: number }> {
  const proc = track(fork(CEILING, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('message', (m: any) => resolve(m.port));
    proc.once('exit', (c) => reject(new Error(`ceiling server exited (${c})`)));
    proc.send({ body, framework });
  });
  return { proc, port };
}

// ---------------------------------------------------------------------------------------------- wrk
interface WrkResult { phase: string; target: string; rps: number; p50Ms: number; p99Ms: number; maxMs: number; requests: number; errors: number; note: string }

const wrkAvailable = () => spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error === undefined;

function wrkMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * ({ us: 1e-3, ms: 1, s: 1e3, m: 60e3 } as Record<string, number>)[m[2]];
}

function runWrk(phase: string, target: string, port: number, script: string, dir: string, serverPid?: number): Promise<WrkResult & { serverCpuPct: number | null }> {
  const file = join(dir, `${phase}.lua`);
  writeFileSync(file, script);
  return new Promise((resolve, reject) => {
    const cpu0 = serverPid ? cpuSeconds(serverPid) : null;
    const t0 = performance.now();
    const p = track(spawn('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${SECONDS}s`, '--timeout', '10s', '--latency', '-s', file, `http://127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    p.once('exit', (code) => {
      const cpu1 = serverPid ? cpuSeconds(serverPid) : null;
      if (code !== 0) return reject(new Error(`wrk exited with ${code}: ${out}`));
      if (process.env.BENCH_WRK_RAW) process.stdout.write(out);
      const g = (re: RegExp) => re.exec(out)?.[1] ?? '';
      const lat = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const non2xx = Number(g(/Non-2xx or 3xx responses: (\d+)/) || 0);
      const sockErr = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
      resolve({
        phase, target, rps: Number(g(/Requests\/sec:\s+([\d.]+)/)), p50Ms: wrkMs(g(/ 50%\s+(\S+)/)), p99Ms: wrkMs(g(/ 99%\s+(\S+)/)),
        maxMs: lat ? wrkMs(lat[3]) : NaN, requests: Number(g(/(\d+) requests in/)), errors: non2xx + sockErr,
        note: 'wrk counts HTTP status only (faults in a 200 are not seen)',
        serverCpuPct: cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / ((performance.now() - t0) / 1000)) * 100 : null,
      });
    });
  });
}

const luaString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

function wrkScript(ids: string[], method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): string {
  const [pre, post] = (body ?? path).split('{id}');
  const lines = [
    `local ids = {${ids.map(luaString).join(',')}}`,
    `wrk.method = "${method}"`,
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`),
    'math.randomseed(os.time())',
    'request = function()',
    '  local id = ids[math.random(#ids)]',
    body === undefined
      ? `  return wrk.format(nil, ${luaString(pre)} .. id .. ${luaString(post ?? '')})`
      : `  return wrk.format(nil, ${luaString(path)}, nil, ${luaString(pre)} .. id .. ${luaString(post ?? '')})`,
    'end',
  ];
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------- report
const f1 = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2));

function printPhase(r: PhaseResult | (WrkResult & { serverCpuPct: number | null })): void {
  const extra = 'clientCpuPct' in r
    ? `; server CPU ${f1(r.serverCpuPct)}% of one core = ${f1(r.serverCpuUsPerReq)} µs per request (one core: ${r.serverCpuUsPerReq ? f1(1e6 / r.serverCpuUsPerReq) : 'n/a'} req/s), client CPU ${f1(r.clientCpuPct)}%`
    : `; server CPU ${f1(r.serverCpuPct)}% of one core`;
  const errs = r.errors ? ` (${'errorKinds' in r ? JSON.stringify(r.errorKinds) + '; e.g. ' + r.errorSample : r.note})` : '';
  console.log(`  ${r.phase.padEnd(12)} ${r.target}`);
  console.log(`  ${''.padEnd(12)} ${f1(r.rps)} req/s, p50 ${f1(r.p50Ms)} ms, p99 ${f1(r.p99Ms)} ms, max ${f1(r.maxMs)} ms, errors ${r.errors}${errs} — ${r.requests} requests${extra}`);
}

// ---------------------------------------------------------------------------------------------- main
async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'kumo-bench-api-'));
  stopChildrenOnSignals(() => { if (!KEEP) rmSync(tmp, { recursive: true, force: true }); });
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version };
  console.log(`api: ${VMS} VMs, concurrency ${CONCURRENCY}, ${SECONDS} s per phase after ${WARMUP} s warm-up; ${machine.cores} cores (${machine.cpu}), node ${machine.node}`);
  console.log(`data: ${tmp}${KEEP ? ' (kept)' : ' (removed at the end)'}`);
  const load0 = loadavg();
  console.log(`load average before: ${load0.map((x) => x.toFixed(2)).join(' ')}${load0[0] > 0.5 ? ' — other work is running on this machine; the figures below share its 2 cores with it' : ''}`);

  let ctl = await startController(tmp, 'controller.log');
  const creds = JSON.parse(readFileSync(ctl.credentials, 'utf8')) as { admin: { user: string; key: string } };
  const admin = basic(creds.admin.user, creds.admin.key);

  // A tenant large enough for the VMs (the operator tenant's quota is 1,000 VMs), and its API user.
  const quota = { vms: VMS * 2, vcpus: VMS * 10, memoryMiB: VMS * 10_000, volumes: VMS * 2, volumeGiB: VMS * 1000 };
  const { tenantId } = await must('createTenant', call(ctl.url, 'POST', '/v1/tenants', admin, { name: 'bench', quota }), 201);
  const user = await must('createApiUser', call(ctl.url, 'POST', `/v1/tenants/${tenantId}/users`, admin), 201) as { user: string; key: string };
  const bearer = `Bearer ${user.key}`;

  // Seeding through the API, as a tenant would: allocateVm over REST, SEED_CONCURRENCY in flight.
  const ids: string[] = new Array(VMS);
  const seed0 = performance.now();
  let next = 0, done = 0;
  const tenth = Math.max(1, Math.floor(VMS / 10));
  const marks: number[] = [seed0]; // time at every tenth of the VMs created, to show whether allocation slows as the tenant grows
  await Promise.all(Array.from({ length: SEED_CONCURRENCY }, async () => {
    for (let i = next++; i < VMS; i = next++) {
      const r = await must('allocateVm', call(ctl.url, 'POST', '/v1/vms', bearer, { type: 'be.small', name: `bench-${String(i).padStart(5, '0')}` }), 201);
      ids[i] = r.vmId;
      if (++done % tenth === 0) marks.push(performance.now());
    }
  }));
  const seedSeconds = (performance.now() - seed0) / 1000;
  const rateOf = (k: number) => (marks.length > k + 1 ? tenth / ((marks[k + 1] - marks[k]) / 1000) : NaN);
  const seedFirst = rateOf(0), seedLast = rateOf(marks.length - 2);
  console.log(`seeding: ${VMS} VMs created through REST POST /v1/vms (allocateVm, ${SEED_CONCURRENCY} in flight) in ${seedSeconds.toFixed(1)} s = ${(VMS / seedSeconds).toFixed(0)} VMs/s`
    + ` (first tenth ${seedFirst.toFixed(0)} VMs/s, last tenth ${seedLast.toFixed(0)} VMs/s)`);
  seedAgent.destroy();

  // One call of each kind before the load, so a broken setup fails loudly instead of as 100% errors.
  const xmlAuth = basic(user.user, user.key);
  const probe = await call(ctl.url, 'POST', '/RPC2', xmlAuth, pythonXmlRpcBody('getVmStatus').replace('{id}', ids[0]), 'text/xml');
  if (probe.status !== 200 || probe.body.includes('<fault>') || !probe.body.includes(ids[0])) throw new Error(`getVmStatus probe failed: ${probe.status} ${probe.body.slice(0, 300)}`);
  const probeRest = await call(ctl.url, 'GET', `/v1/vms/${ids[0]}`, bearer);
  if (probeRest.status !== 200) throw new Error(`GET /v1/vms/{id} probe failed: ${probeRest.status} ${probeRest.body.slice(0, 300)}`);
  console.log(`responses: getVmStatus over XML-RPC ${Buffer.byteLength(probe.body)} bytes, GET /v1/vms/{id} ${Buffer.byteLength(probeRest.body)} bytes`);

  const common = { host: '127.0.0.1', ids, concurrency: CONCURRENCY, seconds: SECONDS, warmupSeconds: WARMUP };
  const xmlrpcCfg = (port: number): LoadConfig => ({ ...common, port, method: 'POST', path: '/RPC2', body: pythonXmlRpcBody('getVmStatus'), headers: pythonXmlRpcHeaders(xmlAuth), check: 'xmlrpc' });
  type KumoPhase = { phase: string; target: string; cfg: (port: number) => LoadConfig };
  const allPhases: KumoPhase[] = [
    { phase: 'xmlrpc', target: 'kumo  getVmStatus, XML-RPC POST /RPC2 (Python xmlrpc.client body, HTTP Basic)', cfg: xmlrpcCfg },
    { phase: 'rest', target: 'kumo  GET /v1/vms/{id} (getVmInfo, Bearer)', cfg: (port) => ({ ...common, port, method: 'GET', path: '/v1/vms/{id}', headers: { authorization: bearer, accept: 'application/json' }, check: 'json' }) },
    { phase: 'rest-status', target: 'kumo  GET /v1/vms/{id}/status (getVmStatus over REST, Bearer)', cfg: (port) => ({ ...common, port, method: 'GET', path: '/v1/vms/{id}/status', headers: { authorization: bearer, accept: 'application/json' }, check: 'json' }) },
  ];
  const kumoPhases = PHASE_LIST.flatMap((name) => allPhases.filter((p) => p.phase === name));

  const results: PhaseResult[] = [];
  const profiles: Record<string, ProfileSummary> = {};
  console.log(`load: ${CONCURRENCY} loops in a separate node process (keep-alive http.Agent), random VM id per request`);
  for (const p of kumoPhases) {
    let profDir: string | undefined;
    if (CPU_PROF) {
      // A fresh controller per phase under --cpu-prof, so each profile holds one kind of request.
      await stop(ctl.proc);
      profDir = join(tmp, `prof-${p.phase}`);
      ctl = await startController(tmp, `controller-${p.phase}.log`, profDir);
    }
    const r = await runLoad(p.phase, p.target, p.cfg(Number(ctl.url.port)), ctl.proc.pid);
    results.push(r);
    printPhase(r);
    if (profDir) {
      await stop(ctl.proc, 30_000);
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file) profiles[p.phase] = summarizeProfile(join(profDir, file), 25, r.windowNs);
      ctl = await startController(tmp, 'controller.log');
    }
  }

  let ceiling: PhaseResult | null = null;
  if (PHASES.has('ceiling')) {
    const c = await startCeiling(probe.body);
    try {
      ceiling = await runLoad('ceiling', 'node  minimal http server, fixed getVmStatus XML-RPC response (same client, same requests)', xmlrpcCfg(c.port), c.proc.pid);
      printPhase(ceiling);
    } finally { await stop(c.proc); }
  }

  let fastifyCeiling: PhaseResult | null = null;
  if (PHASES.has('ceiling-fastify')) {
    const c = await startCeiling(probe.body, 'fastify');
    try {
      fastifyCeiling = await runLoad('ceiling-fastify', 'fastify  one route, body read as a string, fixed getVmStatus XML-RPC response (same client, same requests)', xmlrpcCfg(c.port), c.proc.pid);
      printPhase(fastifyCeiling);
    } finally { await stop(c.proc); }
  }

  const wrkResults: (WrkResult & { serverCpuPct: number | null })[] = [];
  if (PHASES.has('wrk')) {
    if (!wrkAvailable()) console.log('  wrk          not installed (apt-get install wrk); wrk phases skipped');
    else {
      const port = Number(ctl.url.port);
      const xmlScript = wrkScript(ids, 'POST', '/RPC2', pythonXmlRpcHeaders(xmlAuth), pythonXmlRpcBody('getVmStatus'));
      const restScript = wrkScript(ids, 'GET', '/v1/vms/{id}', { authorization: bearer, accept: 'application/json' });
      for (const [phase, target, script] of [['wrk-xmlrpc', 'kumo  getVmStatus over XML-RPC, from wrk -t1', xmlScript], ['wrk-rest', 'kumo  GET /v1/vms/{id}, from wrk -t1', restScript]] as const) {
        const r = await runWrk(phase, target, port, script, tmp, ctl.proc.pid);
        wrkResults.push(r);
        printPhase(r);
      }
      const c = await startCeiling(probe.body);
      try {
        const r = await runWrk('wrk-ceiling', 'node  minimal http server, from wrk -t1', c.port, xmlScript, tmp, c.proc.pid);
        wrkResults.push(r);
        printPhase(r);
      } finally { await stop(c.proc); }
    }
  }

  await stop(ctl.proc, 30_000);

  // ------------------------------------------------------------------ anchors, ratios, goal
  const load1 = loadavg();
  console.log(`load average after: ${load1.map((x) => x.toFixed(2)).join(' ')} (the bench itself keeps about 2 busy)`);
  console.log(`anchor (documented): ${ANCHOR.text}`);
  if (ceiling) console.log(`anchor (measured now): minimal Node http server on this machine, same client and concurrency: ${f1(ceiling.rps)} req/s, p50 ${f1(ceiling.p50Ms)} ms, p99 ${f1(ceiling.p99Ms)} ms, ${f1(ceiling.serverCpuUsPerReq)} µs of server CPU per request`);
  if (fastifyCeiling) console.log(`anchor (measured now): Fastify, one route, fixed response, same client: ${f1(fastifyCeiling.rps)} req/s, p50 ${f1(fastifyCeiling.p50Ms)} ms, p99 ${f1(fastifyCeiling.p99Ms)} ms, ${f1(fastifyCeiling.serverCpuUsPerReq)} µs of server CPU per request`);
  const goals: Record<string, boolean> = {};
  for (const r of results) {
    const ofCeiling = (ceiling ? ` = ${((r.rps / ceiling.rps) * 100).toFixed(0)}% of the Node ceiling` : '')
      + (ceiling && r.serverCpuUsPerReq && ceiling.serverCpuUsPerReq ? `; ${(r.serverCpuUsPerReq / ceiling.serverCpuUsPerReq).toFixed(1)}x its CPU per request` : '');
    console.log(`ratio ${r.phase}: ${(r.rps / ANCHOR.rps).toFixed(0)}x OpenNebula's req/s, p99 ${(ANCHOR.vmInfoSeconds * 1000 / r.p99Ms).toFixed(0)}x below its 330 ms${ofCeiling}`);
    if (r.phase === 'xmlrpc' || r.phase === 'rest') goals[r.phase] = r.rps >= GOAL_RPS && r.p99Ms < GOAL_P99_MS && r.errors === 0;
  }
  for (const r of wrkResults) if (r.phase !== 'wrk-ceiling') {
    const wc = wrkResults.find((w) => w.phase === 'wrk-ceiling');
    console.log(`ratio ${r.phase}: ${(r.rps / ANCHOR.rps).toFixed(0)}x OpenNebula's req/s${wc ? ` = ${((r.rps / wc.rps) * 100).toFixed(0)}% of the Node ceiling under wrk` : ''}`);
  }
  for (const [phase, met] of Object.entries(goals)) {
    const r = results.find((x) => x.phase === phase)!;
    console.log(`goal ${phase} (>= ${GOAL_RPS} req/s, p99 < ${GOAL_P99_MS} ms, no errors): ${met ? 'met' : 'NOT met'} (${f1(r.rps)} req/s, p99 ${f1(r.p99Ms)} ms, ${r.errors} errors)`);
  }
  for (const [phase, s] of Object.entries(profiles)) {
    console.log(`controller profile, phase ${phase}:`);
    printProfile(s, (l) => console.log(`  ${l}`));
  }
  console.log(JSON.stringify({
    bench: 'api', machine, loadavgBefore: load0, loadavgAfter: load1, vms: VMS, concurrency: CONCURRENCY, seconds: SECONDS, warmupSeconds: WARMUP,
    seeding: { vms: VMS, seconds: seedSeconds, vmsPerSecond: VMS / seedSeconds, firstTenthVmsPerSecond: seedFirst, lastTenthVmsPerSecond: seedLast, via: 'REST POST /v1/vms' },
    phases: Object.fromEntries(results.map((r) => [r.phase, {
      rps: r.rps, p50Ms: r.p50Ms, p90Ms: r.p90Ms, p99Ms: r.p99Ms, p999Ms: r.p999Ms, maxMs: r.maxMs, meanMs: r.meanMs,
      requests: r.requests, errors: r.errors, errorKinds: r.errorKinds, serverCpuPct: r.serverCpuPct, serverCpuUsPerReq: r.serverCpuUsPerReq, clientCpuPct: r.clientCpuPct,
    }])),
    ceilingFastify: fastifyCeiling && { rps: fastifyCeiling.rps, p50Ms: fastifyCeiling.p50Ms, p99Ms: fastifyCeiling.p99Ms, maxMs: fastifyCeiling.maxMs, errors: fastifyCeiling.errors, serverCpuPct: fastifyCeiling.serverCpuPct, serverCpuUsPerReq: fastifyCeiling.serverCpuUsPerReq, clientCpuPct: fastifyCeiling.clientCpuPct },
    ceiling: ceiling && { rps: ceiling.rps, p50Ms: ceiling.p50Ms, p99Ms: ceiling.p99Ms, maxMs: ceiling.maxMs, errors: ceiling.errors, serverCpuPct: ceiling.serverCpuPct, serverCpuUsPerReq: ceiling.serverCpuUsPerReq, clientCpuPct: ceiling.clientCpuPct },
    wrk: Object.fromEntries(wrkResults.map((r) => [r.phase, { rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs, requests: r.requests, errors: r.errors, serverCpuPct: r.serverCpuPct }])),
    anchor: { system: ANCHOR.system, rps: ANCHOR.rps, vmInfoSeconds: ANCHOR.vmInfoSeconds },
    goal: { rps: GOAL_RPS, p99Ms: GOAL_P99_MS, met: goals },
    profiled: CPU_PROF,
  }));
  if (!KEEP) rmSync(tmp, { recursive: true, force: true });
}

main().catch(async (e: Error) => {
  if (isStopping()) return; // a signal is stopping the bench; its handler exits
  process.stderr.write(`bench/api: ${e.stack ?? e.message}\n`);
  await stopAll();
  process.exit(1);
});
