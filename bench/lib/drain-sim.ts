/**
 * A discrete-event (fluid) simulation of live migrations over shared host links, for bench/drain.
 * A migration's bytes and pause come from the pre-copy model at the bandwidth it gets when it
 * starts; it then moves those bytes at its current share: each host link is split evenly among the
 * migrations leaving or entering that host, capped by QEMU's max-bandwidth, and re-split whenever
 * a migration starts or ends. A migration predicted, at its starting share, not to converge within
 * the policy's limits still occupies the links until the sim driver would give up, then fails.
 */
import { DEFAULT_AUTO_CONVERGE, predictPrecopy } from '../../src/core/precopy.js';
import type { MigrationDecision } from '../../src/services/migration-policy.js';

export interface DrainVm { host: number; memoryBytes: number; dirtyRateBytes: number; decision: MigrationDecision }

export interface DrainConfig {
  sources: number; targets: number; linkBytes: number; concurrency: number;
  /** host: every source host drains at once, each drain limited to `concurrency`; zone: one drain for all of them. */
  scope: 'host' | 'zone';
}

export interface DrainResult {
  drainMs: number; moved: number; failed: number; left: number; throttled: number;
  /** Per moved VM: start to completion, and its pause. */
  perVmMs: number[]; downtimeMs: number[];
}

interface Flow {
  vm: DrainVm; src: number; dst: number; startMs: number; sinceMs: number; leftBytes: number; rate: number; version: number;
  fails: boolean; downtimeMs: number; throttle: number;
}
interface Due { atMs: number; flow: Flow; version: number }

export function simulateDrain(vms: DrainVm[], c: DrainConfig): DrainResult {
  const queue: DrainVm[][] = Array.from({ length: c.sources }, () => []);
  for (const vm of vms) if (vm.decision.go) queue[vm.host].push(vm);
  const next = new Int32Array(c.sources);
  const out = Array.from({ length: c.sources }, () => new Set<Flow>());
  const into = Array.from({ length: c.targets }, () => new Set<Flow>());
  const placed = new Float64Array(c.targets);
  const due = new Heap();
  const r: DrainResult = { drainMs: 0, moved: 0, failed: 0, left: vms.length - queue.reduce((n, q) => n + q.length, 0), throttled: 0, perVmMs: [], downtimeMs: [] };
  let active = 0;

  const share = (f: Flow): number =>
    Math.min(f.vm.decision.params.maxBandwidthBytes, c.linkBytes / out[f.src].size, c.linkBytes / into[f.dst].size);
  const retime = (f: Flow, now: number): void => {
    f.leftBytes = Math.max(0, f.leftBytes - (f.rate * (now - f.sinceMs)) / 1000);
    f.sinceMs = now;
    f.rate = share(f);
    due.push({ atMs: now + (f.leftBytes / f.rate) * 1000, flow: f, version: ++f.version });
  };
  const pending = (h: number): boolean => next[h] < queue[h].length;
  const start = (src: number, now: number): Flow => {
    let dst = 0;
    for (let t = 1; t < c.targets; t++) {
      if (into[t].size < into[dst].size || (into[t].size === into[dst].size && placed[t] < placed[dst])) dst = t;
    }
    const vm = queue[src][next[src]++];
    const f: Flow = { vm, src, dst, startMs: now, sinceMs: now, leftBytes: 0, rate: 0, version: 0, fails: false, downtimeMs: 0, throttle: 0 };
    out[src].add(f);
    into[dst].add(f);
    placed[dst] += vm.memoryBytes;
    active++;
    return f;
  };
  /** Starts what the limits allow, then prices each new migration at the share it gets once all have started. */
  const dispatch = (now: number, freed: number[]): Flow[] => {
    const started: Flow[] = [];
    if (c.scope === 'host') {
      for (const h of freed) while (pending(h) && out[h].size < c.concurrency) started.push(start(h, now));
    } else {
      while (active < c.concurrency) {
        let src = -1;
        for (let h = 0; h < c.sources; h++) if (pending(h) && (src < 0 || out[h].size < out[src].size)) src = h;
        if (src < 0) break;
        started.push(start(src, now));
      }
    }
    for (const f of started) {
      const bw = share(f);
      const p = predictPrecopy({
        memoryBytes: f.vm.memoryBytes, dirtyRateBytes: f.vm.dirtyRateBytes, bandwidthBytes: bw, downtimeLimitMs: f.vm.decision.params.downtimeLimitMs,
        autoConverge: f.vm.decision.params.autoConverge ? DEFAULT_AUTO_CONVERGE : null,
      });
      const timeoutMs = f.vm.decision.params.completionTimeoutMs;
      f.fails = !p.converges || p.totalMs > timeoutMs;
      f.leftBytes = f.fails ? (bw * Math.min(p.totalMs, timeoutMs)) / 1000 : p.transferredBytes;
      f.downtimeMs = p.downtimeMs;
      f.throttle = p.throttlePercent;
    }
    return started;
  };
  const resplit = (now: number, hosts: { src: number; dst: number }[]): void => {
    const touched = new Set<Flow>();
    for (const { src, dst } of hosts) { out[src].forEach((f) => touched.add(f)); into[dst].forEach((f) => touched.add(f)); }
    touched.forEach((f) => retime(f, now));
  };

  resplit(0, dispatch(0, Array.from({ length: c.sources }, (_, h) => h)));
  for (let d = due.pop(); d; d = due.pop()) {
    const f = d.flow;
    if (d.version !== f.version) continue;
    const now = d.atMs;
    out[f.src].delete(f);
    into[f.dst].delete(f);
    active--;
    r.drainMs = now;
    if (f.fails) r.failed++;
    else {
      r.moved++;
      r.perVmMs.push(now - f.startMs);
      r.downtimeMs.push(f.downtimeMs);
      if (f.throttle > 0) r.throttled++;
    }
    resplit(now, [f, ...dispatch(now, [f.src])]);
  }
  return r;
}

/** A binary min-heap of due times; superseded entries stay in it and are skipped by version. */
class Heap {
  private readonly a: Due[] = [];
  push(x: Due): void {
    const a = this.a;
    let i = a.push(x) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].atMs <= x.atMs) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = x;
  }
  pop(): Due | undefined {
    const a = this.a, top = a[0], last = a.pop();
    if (a.length === 0 || !last) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, rr = l + 1;
      let m = l;
      if (l >= a.length) break;
      if (rr < a.length && a[rr].atMs < a[l].atMs) m = rr;
      if (a[m].atMs >= last.atMs) break;
      a[i] = a[m];
      i = m;
    }
    a[i] = last;
    return top;
  }
}
