import { setTimeout as sleep } from 'node:timers/promises';
import { DriverError, type LaunchSpec, type VmSpec } from '../driver.js';
import { MigrationError, type MigrationOutcome, type MigrationParams, type MigrationProgress, type MigrationSupport } from '../migration.js';
import { DEFAULT_AUTO_CONVERGE, predictPrecopy, type PrecopyPrediction } from '../../core/precopy.js';

/** What the sim driver lends its migration: its running guests, and a way to run one that arrived. */
export interface SimGuests {
  running(vmId: string): VmSpec | undefined;
  adopt(spec: LaunchSpec): void;
}

interface Incoming { spec: LaunchSpec; host: SimMigration; receiving: boolean }

/**
 * Destinations waiting in this process, by URI. Sim agents of one `kumo sim` share a process, so a
 * source finds its destination here; a URI missing here belongs to a sim agent in another process.
 */
const waiting = new Map<string, Incoming>();
const uriOf = (vmId: string): string => `sim://${vmId}`;

/** Wall time between progress samples, as QEMU's query-migrate is polled. */
const SAMPLE_MS = 250;

/**
 * Migration for the sim driver: a migration takes the time the pre-copy model predicts for the
 * guest's memory and dirty rate (scaled by `scale`: 0 is instant), with QEMU's ways of ending.
 */
export class SimMigration implements MigrationSupport {
  private readonly rates = new Map<string, number>();

  constructor(private readonly guests: SimGuests, private readonly scale: number) {
    if (!(Number.isFinite(scale) && scale >= 0)) throw new RangeError(`sim migrationScale must be a non-negative number, not ${scale}`);
  }

  setDirtyRate(vmId: string, bytesPerSecond: number): void {
    if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond >= 0)) throw new RangeError(`dirty rate must be a non-negative number of bytes per second, not ${bytesPerSecond}`);
    this.rates.set(vmId, bytesPerSecond);
  }

  /** The sim listens nowhere: its URI names the VM, which is how a source in this process finds it. */
  async prepareIncoming(spec: LaunchSpec, _listenHost: string): Promise<{ uri: string }> {
    const uri = uriOf(spec.vmId);
    const there = waiting.get(uri);
    if (there?.host === this) return { uri };
    if (there) throw new DriverError(spec.vmId, `${spec.vmId} already waits for an incoming migration on another sim host`);
    if (this.guests.running(spec.vmId)) throw new DriverError(spec.vmId, `${spec.vmId} already runs on this sim host`);
    waiting.set(uri, { spec, host: this, receiving: false });
    return { uri };
  }

  async dirtyRate(vmId: string, seconds: number): Promise<number> {
    if (!this.guests.running(vmId)) throw new DriverError(vmId, `${vmId} is not running on this sim host`);
    await sleep(seconds * 1000 * this.scale);
    return this.rates.get(vmId) ?? 0;
  }

  async migrateOut(vmId: string, uri: string, params: MigrationParams, onProgress: (p: MigrationProgress) => void, signal: AbortSignal): Promise<MigrationOutcome> {
    const spec = this.guests.running(vmId);
    if (!spec) throw new MigrationError(vmId, 'failed', `${vmId} is not running on this sim host`);
    const dest = waiting.get(uri);
    if (dest?.receiving) throw new MigrationError(vmId, 'failed', `the sim destination at ${uri} is already receiving a migration`);
    const rate = this.rates.get(vmId) ?? 0;
    const p = predictPrecopy({
      memoryBytes: spec.memoryMiB * 2 ** 20, dirtyRateBytes: rate, bandwidthBytes: params.maxBandwidthBytes,
      downtimeLimitMs: params.downtimeLimitMs, autoConverge: params.autoConverge ? DEFAULT_AUTO_CONVERGE : null,
    });
    const endMs = Math.min(p.totalMs, params.completionTimeoutMs);
    if (dest) dest.receiving = true;
    try {
      for (let t = 0; ; ) {
        if (signal.aborted) throw new MigrationError(vmId, 'cancelled', `migration of ${vmId} cancelled; it runs on at the source`);
        if (dest && waiting.get(uri) !== dest) throw new MigrationError(vmId, 'failed', `no sim destination waiting at ${uri}: it went away mid-migration`);
        onProgress(sample(p, t, rate, params.maxBandwidthBytes));
        if (t >= endMs) break;
        const step = this.scale > 0 ? Math.min(endMs - t, SAMPLE_MS / this.scale) : endMs - t;
        await sleep(step * this.scale, undefined, { signal }).catch(() => {});
        t += step;
      }
      if (!p.converges) throw new MigrationError(vmId, 'failed', `${vmId} did not converge: ${p.reason}`);
      if (p.totalMs > params.completionTimeoutMs) {
        throw new MigrationError(vmId, 'timeout', `${vmId} did not complete within the ${params.completionTimeoutMs} ms completion timeout (predicted ${Math.round(p.totalMs)} ms)`);
      }
    } catch (e) {
      // A destination QEMU exits when its incoming migration breaks off.
      if (dest && waiting.get(uri) === dest) waiting.delete(uri);
      throw e;
    }
    if (dest) {
      dest.receiving = false;
      dest.host.rates.set(vmId, rate);
    }
    return { totalMs: p.totalMs, downtimeMs: p.downtimeMs, setupMs: 0, transferredBytes: p.transferredBytes, passes: p.passes, throttlePercent: p.throttlePercent };
  }

  async resumeIncoming(vmId: string): Promise<void> {
    const uri = uriOf(vmId);
    const there = waiting.get(uri);
    if (there?.host !== this) {
      if (this.guests.running(vmId)) return;
      throw new DriverError(vmId, `no incoming migration of ${vmId} waits on this sim host`);
    }
    if (there.receiving) throw new DriverError(vmId, `${vmId} is still being received`);
    waiting.delete(uri);
    this.guests.adopt(there.spec);
  }

  async resumeOutgoing(vmId: string): Promise<void> {
    if (!this.guests.running(vmId)) throw new DriverError(vmId, `${vmId} is not running on this sim host`);
  }

  /** The destination's side of stop(): its waiting QEMU goes, and a source sending to it fails. */
  discardIncoming(vmId: string): void {
    if (waiting.get(uriOf(vmId))?.host === this) waiting.delete(uriOf(vmId));
  }
}

/** What query-migrate would say `t` ms into the predicted migration. */
function sample(p: PrecopyPrediction, t: number, rate: number, bandwidth: number): MigrationProgress {
  const passes = p.timeline;
  let k = 0, before = 0;
  while (k < passes.length - 1 && t >= passes[k].startMs + passes[k].ms) before += passes[k++].sentBytes;
  const pass = passes[k];
  const f = pass.ms > 0 ? Math.min(1, Math.max(0, (t - pass.startMs) / pass.ms)) : 1;
  const done = p.converges && t >= p.totalMs;
  const remainingBytes = done ? 0 : pass.sentBytes * (1 - f) + pass.dirtiedBytes * f;
  return {
    status: done ? 'completed' : 'active', elapsedMs: t,
    transferredBytes: done ? p.transferredBytes : before + pass.sentBytes * f, remainingBytes, totalBytes: passes[0].sentBytes,
    passes: k + 1, dirtyRateBytes: rate * (1 - pass.throttlePercent / 100), expectedDowntimeMs: (remainingBytes / bandwidth) * 1000,
    throttlePercent: pass.throttlePercent,
  };
}
