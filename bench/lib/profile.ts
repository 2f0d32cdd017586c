/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time by area
 * (kumo file, npm package, Node internals, GC, idle), and the functions with the most self and
 * inclusive time. Used by `bench/api --cpu-prof` on the controller.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileSummary {
  /** Set when the summary covers only a window (the measured phase) of the profile. */
  window?: { fromMs: number; toMs: number; profileMs: number };
  totalMs: number; idleMs: number; busyMs: number;
  areas: { area: string; ms: number; pct: number }[];
  self: { fn: string; ms: number; pct: number }[];
  inclusive: { fn: string; ms: number; pct: number }[];
}

function area(f: CallFrame): string {
  const u = f.url;
  if (!u) return f.functionName.startsWith('(') ? f.functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1];
  const own = /\/dist\/(src|bench)\/(.+)\.js$/.exec(u);
  if (own) return `kumo ${own[1]}/${own[2]}`;
  if (u.startsWith('node:')) return `node:${u.slice(5).split('/')[0] === 'internal' ? u.slice(5).split('/').slice(0, 2).join('/') : u.slice(5)}`;
  return u;
}

const label = (f: CallFrame) => {
  const a = area(f);
  return `${f.functionName || '(anonymous)'} [${a}${f.url ? `:${f.lineNumber + 1}` : ''}]`;
};

/**
 * `window` is [from, to] in process.hrtime.bigint() nanoseconds: V8 stamps samples in microseconds
 * of the same monotonic clock, so samples outside the measured phase (start-up, warm-up, shutdown)
 * can be left out.
 */
export function summarizeProfile(file: string, top = 25, window?: [bigint, bigint]): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const fromUs = window ? Number(window[0] / 1000n) : -Infinity, toUs = window ? Number(window[1] / 1000n) : Infinity;
  let ts = p.startTime;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) { byId.set(n.id, n); for (const c of n.children ?? []) parent.set(c, n.id); }
  const self = new Map<string, number>(), incl = new Map<string, number>(), areas = new Map<string, number>();
  let total = 0, idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    ts += p.timeDeltas[i] ?? 0;
    if (ts < fromUs || ts > toUs) continue;
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000; // µs → ms; the delta after a sample is its duration
    const leaf = byId.get(p.samples[i]);
    if (!leaf || dt <= 0) continue;
    total += dt;
    if (leaf.callFrame.functionName === '(idle)') { idle += dt; continue; }
    const l = label(leaf.callFrame);
    self.set(l, (self.get(l) ?? 0) + dt);
    const a = area(leaf.callFrame);
    areas.set(a, (areas.get(a) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const fr = byId.get(id)!.callFrame;
      if (fr.functionName === '(root)') break;
      const k = label(fr);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return {
    ...(window ? { window: { fromMs: (fromUs - p.startTime) / 1000, toMs: (toUs - p.startTime) / 1000, profileMs: (p.endTime - p.startTime) / 1000 } } : {}),
    totalMs: total, idleMs: idle, busyMs: busy,
    areas: rank(areas, top).map(([area, ms]) => ({ area, ms, pct: (ms / busy) * 100 })),
    self: rank(self, top).map(([fn, ms]) => ({ fn, ms, pct: (ms / busy) * 100 })),
    inclusive: rank(incl, top * 2).map(([fn, ms]) => ({ fn, ms, pct: (ms / busy) * 100 })),
  };
}

export function printProfile(s: ProfileSummary, out: (line: string) => void = console.log): void {
  const pct = (x: number) => `${x.toFixed(1).padStart(5)}%`;
  if (s.window) out(`profile window: ${(s.window.fromMs / 1000).toFixed(1)} s to ${(s.window.toMs / 1000).toFixed(1)} s of a ${(s.window.profileMs / 1000).toFixed(1)} s profile (the measured phase only)`);
  out(`profile: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(s.busyMs / 1000).toFixed(1)} s busy (${((s.busyMs / s.totalMs) * 100).toFixed(0)}%), ${(s.idleMs / 1000).toFixed(1)} s idle; shares below are of busy time`);
  out('  self time by area:');
  for (const a of s.areas) out(`    ${pct(a.pct)}  ${a.area}`);
  out('  self time by function:');
  for (const f of s.self) out(`    ${pct(f.pct)}  ${f.fn}`);
  out('  inclusive time by function:');
  for (const f of s.inclusive) out(`    ${pct(f.pct)}  ${f.fn}`);
}

// `node dist/bench/lib/profile.js FILE.cpuprofile [top]` prints the summary of a saved profile.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  printProfile(summarizeProfile(process.argv[2], Number(process.argv[3] ?? 25)));
}
