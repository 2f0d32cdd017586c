/**
 * Pre-copy live migration, predicted (DESIGN.md §8; Clark et al., NSDI 2005; QEMU's RAM migration).
 * Pass 1 sends all memory while the guest runs; each later pass sends what the guest dirtied during
 * the pass before. Once what is left can be sent within QEMU's downtime-limit, the guest pauses for
 * that last round: the memory dirtied in the last pass, not the memory size, sets the downtime.
 */

/** QEMU's cpu-throttle-initial, cpu-throttle-increment and max-cpu-throttle, in percent. */
export interface AutoConverge { initialPercent: number; incrementPercent: number; maxPercent: number }

export const DEFAULT_AUTO_CONVERGE: Readonly<AutoConverge> = Object.freeze({ initialPercent: 20, incrementPercent: 10, maxPercent: 99 });

/** QEMU's throttle-trigger-threshold: a pass dirtying more than this share of what it sent does not shrink enough. */
const TRIGGER = 0.5;
/** QEMU throttles on the second such pass, not the first (migration_trigger_throttle: "If that happens twice"). */
const HIGH_PASSES_TO_THROTTLE = 2;

export interface PrecopyInput {
  /** Guest RAM that must be sent; leaving out zero pages is the caller's concern. */
  memoryBytes: number;
  dirtyRateBytes: number;
  /** What the link or QEMU's max-bandwidth allows, whichever is lower. */
  bandwidthBytes: number;
  /** QEMU's downtime-limit: the migration completes once what is left can be sent within it. */
  downtimeLimitMs: number;
  /** Passes after which the prediction gives up (default 30). */
  maxPasses?: number;
  /** CPU throttling when passes do not shrink (DEFAULT_AUTO_CONVERGE mirrors QEMU); absent or null: off, as in QEMU. */
  autoConverge?: AutoConverge | null;
  /** Fixed cost before the first pass (default 0). */
  setupMs?: number;
}

/** One live pass, so a simulator can report progress inside it. */
export interface PrecopyPass { startMs: number; ms: number; sentBytes: number; dirtiedBytes: number; throttlePercent: number }

export interface PrecopyPrediction {
  converges: boolean;
  /** Live passes, the first sending all memory; the paused final round is not one of them. */
  passes: number;
  /** Setup, passes and, when it converges, the final round; otherwise the time spent until giving up. */
  totalMs: number;
  /** The final round's pause; without convergence, the pause a forced switch-over would take (QEMU's expected-downtime). */
  downtimeMs: number;
  transferredBytes: number;
  /** Highest CPU throttle auto-converge applied, percent (0 without). */
  throttlePercent: number;
  reason: string;
  timeline: PrecopyPass[];
}

export function predictPrecopy(i: PrecopyInput): PrecopyPrediction {
  validate(i);
  const { memoryBytes: M, dirtyRateBytes: D, bandwidthBytes: B, downtimeLimitMs: L } = i;
  const maxPasses = i.maxPasses ?? 30;
  const ac = i.autoConverge ?? null;
  const fitsInPause = (B * L) / 1000;
  const timeline: PrecopyPass[] = [];
  let elapsedMs = i.setupMs ?? 0, sent = 0, toSend = M, throttle = 0, highPasses = 0;
  while (timeline.length < maxPasses) {
    const rate = D * (1 - throttle / 100);
    const ms = (toSend / B) * 1000;
    const dirtied = Math.min(M, rate * (toSend / B));
    timeline.push({ startMs: elapsedMs, ms, sentBytes: toSend, dirtiedBytes: dirtied, throttlePercent: throttle });
    elapsedMs += ms;
    sent += toSend;
    // rate < B as well: a guest dirtying at least as fast as the link is not predicted to converge
    // even when all its memory would fit in the pause (issue 6: never predict convergence when D ≥ B).
    if (dirtied <= fitsInPause && rate < B) {
      const downtimeMs = (dirtied / B) * 1000;
      const p = timeline.length;
      return {
        converges: true, passes: p, totalMs: elapsedMs + downtimeMs, downtimeMs, transferredBytes: sent + dirtied, throttlePercent: throttle, timeline,
        reason: `converges after ${p} pass${p === 1 ? '' : 'es'} in ${formatMs(elapsedMs + downtimeMs)} with a ${formatMs(downtimeMs)} pause ` +
          `(dirty rate ${formatRate(D)}, bandwidth ${formatRate(B)}${throttle ? `, auto-converge throttle ${throttle}%` : ''})`,
      };
    }
    if (ac && dirtied > TRIGGER * toSend && ++highPasses >= HIGH_PASSES_TO_THROTTLE) {
      highPasses = 0;
      throttle = throttle === 0 ? ac.initialPercent : Math.min(ac.maxPercent, throttle + ac.incrementPercent);
    }
    toSend = dirtied;
  }
  const peak = timeline[timeline.length - 1].throttlePercent;
  return {
    converges: false, passes: maxPasses, totalMs: elapsedMs, downtimeMs: (toSend / B) * 1000, transferredBytes: sent, throttlePercent: peak, timeline,
    reason: whyNot(D, B, ac, toSend, fitsInPause, L, maxPasses, peak),
  };
}

function whyNot(D: number, B: number, ac: AutoConverge | null, left: number, fitsInPause: number, L: number, passes: number, peak: number): string {
  if (!ac && D >= B) return `dirty rate ${formatRate(D)} ≥ bandwidth ${formatRate(B)}: never converges without auto-converge`;
  if (ac && D * (1 - ac.maxPercent / 100) >= B) {
    return `dirty rate ${formatRate(D)} stays ≥ bandwidth ${formatRate(B)} even at the ${ac.maxPercent}% auto-converge throttle: never converges`;
  }
  return `still ${formatBytes(left)} dirty after ${passes} passes, more than the ${formatBytes(fitsInPause)} a ${L} ms pause sends at ` +
    `${formatRate(B)} (dirty rate ${formatRate(D)}${peak ? `, auto-converge throttle ${peak}%` : ''})`;
}

function validate(i: PrecopyInput): void {
  const need = (name: string, v: unknown, positive: boolean): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (positive && v === 0)) {
      throw new RangeError(`pre-copy: ${name} must be a ${positive ? 'positive' : 'non-negative'} finite number, not ${String(v)}`);
    }
  };
  need('memoryBytes', i.memoryBytes, false);
  need('dirtyRateBytes', i.dirtyRateBytes, false);
  need('bandwidthBytes', i.bandwidthBytes, true);
  need('downtimeLimitMs', i.downtimeLimitMs, true);
  need('setupMs', i.setupMs ?? 0, false);
  if (i.maxPasses !== undefined && !(Number.isInteger(i.maxPasses) && i.maxPasses >= 1)) {
    throw new RangeError(`pre-copy: maxPasses must be a positive integer, not ${i.maxPasses}`);
  }
  const ac = i.autoConverge;
  if (!ac) return;
  for (const k of ['initialPercent', 'incrementPercent', 'maxPercent'] as const) {
    // QEMU's own bounds for cpu-throttle-initial, -increment and max-cpu-throttle.
    if (!(ac[k] >= 1 && ac[k] <= 99)) throw new RangeError(`pre-copy: autoConverge.${k} must be within 1..99, not ${ac[k]}`);
  }
  if (ac.initialPercent > ac.maxPercent) throw new RangeError(`pre-copy: autoConverge.initialPercent ${ac.initialPercent} exceeds maxPercent ${ac.maxPercent}`);
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return `${Number(n.toPrecision(3))} ${units[u]}`;
}

/** Binary units, three significant digits: "80 MiB/s", "1.5 GiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Number(ms.toPrecision(3))} ms` : `${Number((ms / 1000).toPrecision(3))} s`;
}
