/**
 * bench/drain: a simulated drain of a 1,000-host zone, 20 VMs per host, into as many empty hosts
 * (issue 6: "Simulated drain of 1,000 hosts × 20 VMs: total time at a given concurrency"). No sleeping:
 * bench/lib/drain-sim.ts runs the migrations as events, each priced by the pre-copy model.
 *
 * Workload (seeded): memory 1, 2, 4, 8 or 16 GiB (25/30/25/12/8%); dirty rate lognormal, median
 * 16 MiB/s, σ 1.8 (most guests near idle, about 1 in 100 dirtying faster than 1 GiB/s, like a busy
 * database); 60% best-effort, 30% guaranteed, 10% dedicated, with DEFAULT_MIGRATION_POLICY. The
 * controller decides go/no-go at QEMU's max-bandwidth (it cannot know the share a migration will get);
 * each VM that goes then migrates at its share of the 10 Gbit/s host links.
 *
 * Two ways to drain, at concurrency 1, 4, 16 and 64:
 *  - per host: every host of the zone drains at once (`kumo host drain` on each), each drain
 *    running at most `concurrency` migrations (20 VMs per host, so 64 acts as 20);
 *  - zone-wide: one drain for the whole zone, at most `concurrency` migrations in flight, each next
 *    VM taken from the host with the fewest migrations under way (so they spread over host links).
 *
 * Anchor: the model's own time for one idle 4 GiB VM against its wire time M/B at 10 Gbit/s.
 * Usage: node dist/bench/drain.js [--hosts 1000] [--vms-per-host 20] [--link-gbit 10] [--seed N]
 */
import { DEFAULT_AUTO_CONVERGE, formatRate, predictPrecopy } from '../src/core/precopy.js';
import { DEFAULT_MIGRATION_POLICY, decideMigration } from '../src/services/migration-policy.js';
import type { ResourceType } from '../src/services/vm-types.js';
import { simulateDrain, type DrainVm } from './lib/drain-sim.js';
import { prng } from './lib/prng.js';
import { summarize } from './lib/stats.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}
const HOSTS = Math.round(flag('hosts', 1000));
const PER_HOST = Math.round(flag('vms-per-host', 20));
const LINK = (flag('link-gbit', 10) * 1e9) / 8;
const SEED = Math.round(flag('seed', 2005));
const CONCURRENCY = [1, 4, 16, 64];
const GiB = 2 ** 30, MiB = 2 ** 20;
const t0 = Date.now();

// ------------------------------------------------------------------ the zone's VMs

const rnd = prng(SEED);
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
const pick = <T>(xs: readonly (readonly [T, number])[]): T => {
  let x = rnd();
  for (const [v, w] of xs) if ((x -= w) < 0) return v;
  return xs[xs.length - 1][0];
};
const SIZES = [[1, 0.25], [2, 0.3], [4, 0.25], [8, 0.12], [16, 0.08]] as const;
const TYPES = [['best-effort', 0.6], ['guaranteed', 0.3], ['dedicated', 0.1]] as const;
const policy = DEFAULT_MIGRATION_POLICY;
// The controller prices a migration at QEMU's max-bandwidth, or the link where that is slower.
const overrides = { maxBandwidthBytes: Math.min(policy.maxBandwidthBytes, LINK) };

const vms: DrainVm[] = [];
let noAc = 0, evenAc = 0;
for (let h = 0; h < HOSTS; h++) {
  for (let k = 0; k < PER_HOST; k++) {
    const memoryBytes = pick(SIZES) * GiB;
    const dirtyRateBytes = 16 * MiB * Math.exp(1.8 * gauss());
    const resourceType: ResourceType = pick(TYPES);
    const decision = decideMigration({ resourceType, memoryBytes, dirtyRateBytes }, policy, overrides);
    const at = (autoConverge: boolean) => predictPrecopy({
      memoryBytes, dirtyRateBytes, bandwidthBytes: overrides.maxBandwidthBytes, downtimeLimitMs: decision.params.downtimeLimitMs,
      autoConverge: autoConverge ? DEFAULT_AUTO_CONVERGE : null,
    }).converges;
    if (!at(false)) { noAc++; if (!at(true)) evenAc++; }
    vms.push({ host: h, memoryBytes, dirtyRateBytes, decision });
  }
}
const left = vms.filter((v) => !v.decision.go).length;
const needAc = vms.filter((v) => v.decision.go && v.decision.params.autoConverge).length;
// summarize() reads nanoseconds and reports milliseconds, so rates go in ×1e6 and come out as they were.
const rates = summarize(Float64Array.from(vms, (v) => v.dirtyRateBytes * 1e6));

// ------------------------------------------------------------------ the drains

const fmtTime = (ms: number): string =>
  ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 2 * 3600_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 3600_000).toFixed(1)} h`;
const fmtMs = (ms: number): string => (ms < 10_000 ? `${ms.toFixed(0)} ms` : fmtTime(ms));
const pct = (n: number, of: number): string => `${n.toLocaleString('en')} (${((100 * n) / of).toFixed(1)}%)`;

const rows: string[] = [];
for (const scope of ['host', 'zone'] as const) {
  for (const concurrency of CONCURRENCY) {
    const r = simulateDrain(vms, { sources: HOSTS, targets: HOSTS, linkBytes: LINK, concurrency, scope });
    const per = summarize(Float64Array.from(r.perVmMs, (x) => x * 1e6));
    const down = summarize(Float64Array.from(r.downtimeMs, (x) => x * 1e6));
    rows.push(`| ${scope === 'host' ? `per host, ${HOSTS.toLocaleString('en')} at once` : 'zone-wide'} | ${concurrency} | ${fmtTime(r.drainMs)} | ` +
      `${r.moved.toLocaleString('en')} | ${r.failed.toLocaleString('en')} | ${fmtMs(per.p50Ms)} | ${fmtMs(per.p99Ms)} | ` +
      `${down.p50Ms.toFixed(0)} ms | ${down.p99Ms.toFixed(0)} ms | ${r.throttled.toLocaleString('en')} |`);
  }
}

// ------------------------------------------------------------------ report

const idle = (bandwidthBytes: number) => predictPrecopy({ memoryBytes: 4 * GiB, dirtyRateBytes: 0, bandwidthBytes, downtimeLimitMs: 300 });
const wireMs = ((4 * GiB) / LINK) * 1000;
const atCap = idle(overrides.maxBandwidthBytes);
console.log(`drain: ${HOSTS.toLocaleString('en')} hosts × ${PER_HOST} VMs = ${vms.length.toLocaleString('en')} VMs, ` +
  `${(vms.reduce((s, v) => s + v.memoryBytes, 0) / 2 ** 40).toFixed(1)} TiB of RAM, into ${HOSTS.toLocaleString('en')} empty hosts; ` +
  `host links ${formatRate(LINK)} (${LINK * 8 / 1e9} Gbit/s), QEMU max-bandwidth ${formatRate(overrides.maxBandwidthBytes)}; seed ${SEED}`);
console.log(`dirty rates: median ${formatRate(rates.p50Ms)}, p90 ${formatRate(rates.p90Ms)}, p99 ${formatRate(rates.p99Ms)}`);
console.log(`predicted at ${formatRate(overrides.maxBandwidthBytes)}: ${pct(noAc, vms.length)} do not converge without auto-converge, ` +
  `${pct(evenAc, vms.length)} not even with it; ${pct(needAc, vms.length)} go only with auto-converge (best-effort); ` +
  `left behind, reported to their owners: ${pct(left, vms.length)}`);
console.log(`anchor: one idle 4 GiB VM — wire time M/B at ${LINK * 8 / 1e9} Gbit/s ${fmtMs(wireMs)}; the model at the same bandwidth ` +
  `${fmtMs(idle(LINK).totalMs)} (${idle(LINK).passes} pass, ${idle(LINK).downtimeMs} ms pause); at QEMU's ${formatRate(overrides.maxBandwidthBytes)} cap ` +
  `${fmtMs(atCap.totalMs)} (${(atCap.totalMs / wireMs).toFixed(2)}× the wire)`);
console.log('');
console.log('| drains | concurrency | drain took | moved | failed mid-drain | per-VM p50 | per-VM p99 | pause p50 | pause p99 | throttled |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
console.log('');
console.log(`"drain took": until the last migration ended, moved or failed; "failed mid-drain": went at the controller's ${formatRate(overrides.maxBandwidthBytes)} prediction but did not converge at the share of the link it got; ` +
  `per-VM time is start to completion of VMs moved; took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
