/**
 * bench/metadata: a boot storm against one host's metadata service (issue 7). 1,000 VMs (distinct
 * identities) crawl the OpenStack tree at once, as cloud-init's OpenStack datasource does on first
 * boot: GET /openstack, then latest/meta_data.json, user_data, vendor_data.json, vendor_data2.json
 * and network_data.json, one after another, a new connection for each.
 *
 * The service is src/agent/metadata.ts's AgentMetadata: one responder, one 127.0.0.1 listener per
 * VM; the port a connection arrives on is the VM's identity (in production nftables DNATs each VM's
 * tap to its port; here the clients connect to the ports directly, which runs the same server path).
 * Its controller is in this process, as in test/services/fixtures.ts: Services over a SQLite store
 * and a Fastify "door" with agentRoutes on 127.0.0.1. Setup: 1,000 VMs allocated through the
 * services (a few KiB of user-data each, one NIC on a private network, an SSH key through the init
 * API), then placed on one registered host by setting vms.host_id/status in the store (no sim
 * boots). Scenarios, each with a fresh AgentMetadata:
 *   - warm: every VM attached as at VM start (attach() with a no-op link), which prefetches its
 *     metadata; the storm starts once the controller has served all 1,000 prefetches;
 *   - cold: listeners only (the agent just restarted and the storm comes first): the first request
 *     of each VM fetches its metadata from the controller, the rest hit the 30 s cache.
 * Anchor, measured in the same run: the same storm against plain node:http servers on 127.0.0.1
 * (one per client, as kumo's) answering every path with a constant small JSON body: the floor for
 * one Node process on this machine. Context: cloud-init #2226 reports OpenStack's metadata service
 * exceeding cloud-init's 2–3 s timeouts at 20+ simultaneous boots. Goal: p99 < 50 ms, no errors.
 *
 * The clients run in their own process (bench/lib/metadata-storm.ts). Rounds go anchor, warm,
 * cold, so load from elsewhere on the machine falls on all three alike. No assertion is made.
 *
 * Usage: node dist/bench/metadata.js [--clients 1000] [--rounds 2] [--profile] [--timeout-ms 30000]
 *   --profile: one more round of warm and cold under the V8 profiler (not counted), summarized.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import pino from 'pino';
import { AgentMetadata } from '../src/agent/metadata.js';
import { agentRoutes } from '../src/api/agent-routes.js';
import type { MetadataLink } from '../src/metadata/link.js';
import { makePolicy } from '../src/scheduler/index.js';
import { Services } from '../src/services/index.js';
import type { Principal } from '../src/services/principal.js';
import { openDb } from '../src/state/db.js';
import type { StormConfig, StormResult, StormTarget } from './lib/metadata-storm.js';
import { stop, stopChildrenOnSignals, track } from './lib/proc.js';
import { printProfile, summarizeProfile } from './lib/profile.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} wants a positive integer`);
  return v;
}
const CLIENTS = flag('clients', 1000);
const ROUNDS = flag('rounds', 2);
const TIMEOUT_MS = flag('timeout-ms', 30_000);
const PROFILE = process.argv.includes('--profile');
const GOAL_P99_MS = 50;
const ANCHOR = { issue: 'canonical/cloud-init #2226', boots: 20, timeoutS: '2–3' };
const PATHS = ['/openstack', '/openstack/latest/meta_data.json', '/openstack/latest/user_data', '/openstack/latest/vendor_data.json',
  '/openstack/latest/vendor_data2.json', '/openstack/latest/network_data.json'];
const STORM = fileURLToPath(new URL('./lib/metadata-storm.js', import.meta.url));

const silent = pino({ level: 'silent' });
const la = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const t0 = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'kumo-bench-metadata-'));
stopChildrenOnSignals(() => rmSync(dir, { recursive: true, force: true }));

// ------------------------------------------------------------------ statistics

/** Nearest-rank percentile, as bench/lib/stats.ts. */
function q(sorted: Float64Array, p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] : NaN;
}
const sorted = (xs: number[]) => Float64Array.from(xs).sort();
const f1 = (x: number) => (Number.isNaN(x) ? '–' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

// ------------------------------------------------------------------ the controller and its store

console.log(`metadata: ${CLIENTS.toLocaleString('en')} clients × ${PATHS.length} requests, ${ROUNDS} round(s); node ${process.version}, ` +
  `${cpus().length} cores; load average before: ${la()}`);

const db = await openDb(join(dir, 'kumo.db'));
const s = new Services(db, makePolicy(), silent);
await s.vmTypes.seedDefaults();

let fetches = 0;
let controllerMs: number[] = [];
const door = Fastify({ logger: false });
door.addHook('onResponse', async (req, reply) => {
  if (req.url.endsWith('/metadata')) { fetches++; controllerMs.push(reply.elapsedTime); }
});
await door.register(async (x) => agentRoutes(x, s));
await door.listen({ host: '127.0.0.1', port: 0 });
const controllerUrl = `http://127.0.0.1:${(door.server.address() as AddressInfo).port}`;

const reg = await s.hosts.register(await s.hosts.joinToken(), {
  zone: 'zone-a', url: 'http://127.0.0.1:9', driver: 'sim', accel: 'sim',
  hosts: [{ name: 'bench-host', vcpus: 4096, memoryMiB: 4096 * 1024, architectures: ['x86_64', 'i686'] }],
});
const hostId = reg.hosts[0].hostId;
const tenantId = await s.tenants.createTenant({ userId: 'bench', userName: 'bench', tenantId: 'none', admin: true }, {
  name: 'bench', quota: { vms: CLIENTS + 10, vcpus: CLIENTS * 4, memoryMiB: CLIENTS * 4096, volumes: CLIENTS + 10, volumeGiB: CLIENTS * 100, networks: 4, ipAddresses: 16 },
});
const p: Principal = { userId: 'user-bench', userName: 'bench', tenantId, admin: false };
const net = await s.networks.allocate(p, { name: 'bench-net' });

/** A valid ssh-ed25519 public key line (random key bytes): the init API checks the blob's shape. */
function sshKey(i: number): string {
  const type = Buffer.from('ssh-ed25519');
  const len = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  return `ssh-ed25519 ${Buffer.concat([len(type.length), type, len(32), randomBytes(32)]).toString('base64')} bench-${i}@kumo`;
}
/** About 4 KiB of #cloud-config, different for each VM. */
function userData(i: number): string {
  const blob = randomBytes(2400).toString('base64').match(/.{1,76}/g)!.join('\n      ');
  return `#cloud-config\nhostname: bench-${i}\npackage_update: false\nruncmd:\n  - [sh, -c, "echo booted bench-${i} > /run/bench"]\n` +
    `write_files:\n  - path: /etc/bench/seed\n    encoding: b64\n    permissions: '0600'\n    content: |\n      ${blob}\n`;
}

interface Vm { id: string; mac: string; device: string }
const setupStart = Date.now();
const vms: Vm[] = [];
let udBytes = 0;
for (let i = 0; i < CLIENTS; i++) {
  const ud = userData(i);
  udBytes += ud.length;
  const id = await s.vms.allocate(p, { type: 'be.small', name: `bench-${i}`, userData: ud });
  const nic = await s.networks.attach(p, id, net);
  await s.init.sshKey(p, id, 'debian', sshKey(i));
  vms.push({ id, mac: nic.mac, device: `tap${i}` });
}
// Placed on the one host without booting sim VMs: the metadata path only reads host_id/status.
await db.k.updateTable('vms').set({ host_id: hostId, status: 'running', power: 'on' }).where('tenant_id', '=', tenantId).execute();
const nodeToken = (await db.k.selectFrom('hosts').select('node_token').where('id', '=', hostId).executeTakeFirstOrThrow()).node_token;
console.log(`setup: ${CLIENTS.toLocaleString('en')} VMs allocated through the services (user-data ${(udBytes / CLIENTS / 1024).toFixed(1)} KiB each, ` +
  `1 NIC, 1 SSH key via setSshKey) and placed on host ${hostId} by setting vms.host_id/status in the store (no sim boots), ` +
  `in ${((Date.now() - setupStart) / 1000).toFixed(1)} s; controller (SQLite, agentRoutes) in this process at ${controllerUrl}`);

// ------------------------------------------------------------------ the clients' process

const client = track(fork(STORM, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' }));
function runStorm(cfg: StormConfig): Promise<StormResult> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the storm's client process exited (${code})`));
    client.once('exit', onExit);
    client.once('message', (m) => { client.off('exit', onExit); resolve(m as StormResult); });
    client.send(cfg);
  });
}

// ------------------------------------------------------------------ the servers under test

/** The link does nothing: the bench connects to the listeners' ports itself. */
const noLink: MetadataLink = { attach: async () => {}, detach: async () => {}, addressesInUse: async () => new Set() };
const agentOpts = (link: MetadataLink | null) => ({ controllerUrl, token: () => nodeToken, link, dataDir: join(dir, 'agent'), log: silent });

type Kind = 'anchor' | 'warm' | 'cold';
interface Stage { targets: StormTarget[]; close(): Promise<void> }

async function until(what: string, f: () => boolean, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function stage(kind: Kind): Promise<Stage> {
  if (kind === 'anchor') {
    const body = '{"ok":true,"floor":"plain node:http"}';
    const servers = await Promise.all(vms.map(async () => {
      const srv = http.createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      await new Promise<void>((r, j) => srv.once('error', j).listen(0, '127.0.0.1', () => r()));
      return srv;
    }));
    return {
      targets: servers.map((srv) => ({ port: (srv.address() as AddressInfo).port, vmId: null })),
      close: async () => { for (const srv of servers) { srv.close(); srv.closeAllConnections(); } },
    };
  }
  if (kind === 'warm') {
    const agent = new AgentMetadata(agentOpts(noLink));
    const before = fetches;
    // As at VM start: each attach opens the listener, connects the link and prefetches the metadata.
    await Promise.all(vms.map((v) => agent.attach(v.id, [{ slot: 0, mac: v.mac, device: v.device }])));
    await until('the warm prefetches', () => fetches >= before + vms.length);
    return { targets: vms.map((v) => ({ port: agent.portOf(v.id)!, vmId: v.id })), close: () => agent.close() };
  }
  const agent = new AgentMetadata(agentOpts(null));
  // The agent just restarted: listeners up, nothing cached.
  const served = await Promise.all(vms.map((v) => agent.listen(v.id, v.device)));
  return { targets: vms.map((v, i) => ({ port: served[i].port, vmId: v.id })), close: () => agent.close() };
}

/** TCP counters of the whole kernel (/proc/net/netstat, /proc/net/snmp): SYNs dropped on full accept queues, SYNs resent. */
function tcpCounters(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    let lines: string[];
    try { lines = readFileSync(file, 'utf8').trim().split('\n'); } catch { continue; }
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i].split(/\s+/), values = lines[i + 1].split(/\s+/);
      const prefix = names[0];
      for (let k = 1; k < names.length; k++) out[prefix + names[k]] = Number(values[k]);
    }
  }
  return out;
}
const TCP = { overflows: 'TcpExt:ListenOverflows', synRetrans: 'TcpExt:TCPSynRetrans' } as const;

interface Run {
  tcp: Record<keyof typeof TCP, number>;
  kind: Kind; round: number | 'profiled'; r: StormResult;
  fetches: number; controllerMs: number[]; serverCpuMs: number; loopP99Ms: number; loopMaxMs: number;
}

async function measure(kind: Kind, round: Run['round'], profile = false, clients = CLIENTS): Promise<Run> {
  const st = await stage(kind);
  await sleep(300); // the prefetch's or listen's stragglers settle
  let session: Session | null = null;
  if (profile) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const f0 = fetches;
  controllerMs = [];
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const tcp0 = tcpCounters();
  const cpu0 = process.cpuUsage();
  const r = await runStorm({ targets: st.targets.slice(0, clients), paths: PATHS, timeoutMs: TIMEOUT_MS });
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  const tcp1 = tcpCounters();
  const tcp = Object.fromEntries(Object.entries(TCP).map(([k, name]) => [k, (tcp1[name] ?? NaN) - (tcp0[name] ?? NaN)])) as Run['tcp'];
  const ctl = controllerMs;
  controllerMs = [];
  const run: Run = {
    kind, round, r, tcp, fetches: fetches - f0, controllerMs: ctl, serverCpuMs: (cpu.user + cpu.system) / 1000,
    loopP99Ms: loop.percentile(99) / 1e6, loopMaxMs: loop.max / 1e6,
  };
  if (session) {
    const { profile: prof } = await session.post('Profiler.stop');
    session.disconnect();
    const file = join(dir, `metadata-${kind}.cpuprofile`);
    writeFileSync(file, JSON.stringify(prof));
    console.log(`\n--- ${kind} storm, profiled (server process: agent + controller) ---`);
    printProfile(summarizeProfile(file, 12));
  }
  await st.close();
  await sleep(300);
  return run;
}

// ------------------------------------------------------------------ the storms

const runs: Run[] = [];
try {
  // Warm-up (not counted): both processes JIT the HTTP paths before the first measured storm.
  await measure('anchor', 0, false, Math.min(CLIENTS, 200));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of ['anchor', 'warm', 'cold'] as const) runs.push(await measure(kind, round));
  }
  if (PROFILE) for (const kind of ['warm', 'cold'] as const) await measure(kind, 'profiled', true);
} finally {
  await stop(client, 2000);
  await door.close();
  s.events.stop();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------ report

const LABEL: Record<Kind, string> = { anchor: 'anchor: plain node:http', warm: 'kumo warm (prefetched)', cold: 'kumo cold (fetch on miss)' };
const row = (label: string, rs: Run[]) => {
  const lat = sorted(rs.flatMap((x) => x.r.latMs));
  const crawl = sorted(rs.flatMap((x) => x.r.crawlMs));
  const requests = rs.reduce((a, x) => a + x.r.requests, 0);
  const errors = rs.reduce((a, x) => a + x.r.errors, 0);
  const wall = rs.reduce((a, x) => a + x.r.wallMs, 0);
  const cpu = rs.reduce((a, x) => a + x.serverCpuMs, 0);
  const fetched = rs.reduce((a, x) => a + x.fetches, 0);
  const ctl = sorted(rs.flatMap((x) => x.controllerMs));
  const over2s = rs.reduce((a, x) => a + x.r.latMs.filter((v) => v > 2000).length, 0);
  const over1s = rs.reduce((a, x) => a + x.r.latMs.filter((v) => v > 1000).length, 0);
  const tcp = (k: keyof typeof TCP) => rs.reduce((a, x) => a + x.tcp[k], 0);
  return {
    lat, crawl, requests, errors,
    line: `| ${label} | ${requests.toLocaleString('en')} | ${errors} | ${f1(q(lat, 0.5))} | ${f1(q(lat, 0.95))} | ${f1(q(lat, 0.99))} | ${f1(lat[lat.length - 1])} | ` +
      `${f1(q(crawl, 0.5))} | ${f1(q(crawl, 0.99))} | ${Math.round(requests / (wall / 1000)).toLocaleString('en')} | ${over1s} / ${over2s} | ${tcp('overflows')} / ${tcp('synRetrans')} | ` +
      `${((cpu * 1000) / requests).toFixed(0)} | ${fetched.toLocaleString('en')}${ctl.length ? ` (p50 ${f1(q(ctl, 0.5))}, max ${f1(ctl[ctl.length - 1])})` : ''} | ` +
      `${f1(Math.max(...rs.map((x) => x.loopP99Ms)))} / ${f1(Math.max(...rs.map((x) => x.loopMaxMs)))} | ${f1(rs.reduce((a, x) => a + x.r.clientCpuPct, 0) / rs.length)}% |`,
  };
};
const HEAD = '| storm | requests | errors | p50 ms | p95 ms | p99 ms | max ms | crawl p50 ms | crawl p99 ms | req/s | > 1 s / > 2 s | listen overflows / SYN resent | server CPU µs/req | controller fetches (ms) | server loop delay p99 / max ms | client CPU |';
const SEP = `|${'---|'.repeat(HEAD.split('|').length - 2)}`;

console.log(`\nper round (${CLIENTS.toLocaleString('en')} clients, ${PATHS.length} GETs each, a new connection per GET):`);
console.log(HEAD);
console.log(SEP);
for (const x of runs) console.log(row(`${LABEL[x.kind]}, round ${x.round}`, [x]).line);

console.log(`\nall ${ROUNDS} round(s) pooled:`);
console.log(HEAD);
console.log(SEP);
const pooled = Object.fromEntries((['anchor', 'warm', 'cold'] as const).map((k) => {
  const r = row(LABEL[k], runs.filter((x) => x.kind === k));
  console.log(r.line);
  return [k, r];
})) as Record<Kind, ReturnType<typeof row>>;

const errs = (k: Kind) => {
  const kinds: Record<string, number> = {};
  let sample = '';
  for (const x of runs.filter((y) => y.kind === k)) {
    for (const [e, n] of Object.entries(x.r.errorKinds)) kinds[e] = (kinds[e] ?? 0) + n;
    sample ||= x.r.errorSample;
  }
  return Object.keys(kinds).length ? ` (${Object.entries(kinds).map(([e, n]) => `${e}: ${n}`).join(', ')}; first: ${sample})` : '';
};
console.log('');
console.log(`"crawl": release of the storm to a client's last answer; ` +
  `"> 2 s": requests slower than cloud-init's shortest timeout in #2226; "listen overflows / SYN resent": kernel-wide TCP counters over the storm ` +
  `(a SYN dropped on a full accept queue is resent by the client after 1 s, then 3 s, 7 s); ` +
  `"server CPU": the server process (agent + in-process controller) over the storm, per request; "controller fetches": GET /v1/agent/vms/:id/metadata served during the storm, with their Fastify time`);
console.log(`anchor: plain node:http (the floor of one Node process here) p99 ${f1(q(pooled.anchor.lat, 0.99))} ms, ` +
  `kumo warm ${(q(pooled.warm.lat, 0.99) / q(pooled.anchor.lat, 0.99)).toFixed(2)}× that, cold ${(q(pooled.cold.lat, 0.99) / q(pooled.anchor.lat, 0.99)).toFixed(2)}×; ` +
  `context: ${ANCHOR.issue} — OpenStack's metadata service exceeded cloud-init's ${ANCHOR.timeoutS} s timeouts at ${ANCHOR.boots}+ simultaneous boots`);
for (const k of ['warm', 'cold'] as const) {
  const p99 = q(pooled[k].lat, 0.99), e = pooled[k].errors;
  const met = p99 < GOAL_P99_MS && e === 0;
  console.log(`verdict ${k}: goal p99 < ${GOAL_P99_MS} ms with 0 errors at ${CLIENTS.toLocaleString('en')} simultaneous boots: ` +
    (met ? `MET (p99 ${f1(p99)} ms, 0 errors of ${pooled[k].requests.toLocaleString('en')})`
      : `MISSED (p99 ${f1(p99)} ms${p99 >= GOAL_P99_MS ? `, ${f1(p99 - GOAL_P99_MS)} ms over` : ''}; ${e} errors${errs(k)})`));
}
if (pooled.anchor.errors) console.log(`anchor errors: ${pooled.anchor.errors}${errs('anchor')}`);
console.log(`load average after: ${la()}; took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
