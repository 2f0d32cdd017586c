/** Latency percentiles from nanosecond samples, reported in milliseconds. */
export interface LatencySummary { meanMs: number; p50Ms: number; p90Ms: number; p99Ms: number; p999Ms: number; maxMs: number }

export function summarize(ns: Float64Array): LatencySummary {
  const n = ns.length;
  if (n === 0) return { meanMs: NaN, p50Ms: NaN, p90Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  const s = Float64Array.from(ns).sort();
  // Nearest-rank percentile: the smallest sample with at least q of all samples at or below it.
  const at = (q: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] / 1e6;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  return { meanMs: sum / n / 1e6, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), p999Ms: at(0.999), maxMs: s[n - 1] / 1e6 };
}
