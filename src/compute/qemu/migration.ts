/**
 * Live migration of QEMU VMs (compute/migration.ts, DESIGN.md §8): pre-copy over TCP between two
 * QEMUs that open the same volumes (shared storage, so only RAM and device state move).
 *
 * The destination runs `-incoming defer -S` with `late-block-activate`: its disks are opened
 * inactive (no write lock, no writes) and stay so after the state has arrived, until `cont` in
 * resumeIncoming — by then the controller has handed the volumes' leases over. The source's QEMU
 * flushes and inactivates its disks when it completes, and `cont` there (resumeOutgoing, or a
 * cancel that came too late) activates them again.
 *
 * Progress is polled (query-migrate): a poll also notices a QEMU that went away, and it is what a
 * migration adopted after an agent restart has to do anyway. The end is also taken from QEMU's
 * MIGRATION event, so that the switch-over starts at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DriverError, type LaunchSpec } from '../driver.js';
import {
  MigrationError, type MigrationFailure, type MigrationOutcome, type MigrationParams, type MigrationProgress,
  type MigrationSupport,
} from '../migration.js';
import type { DriverLog } from './driver.js';
import type { MigrationInfo, MigrationStatus, QmpCommands } from './qmp/index.js';

/** A VM's part in a live migration, kept in its run dir (migration.json) by the driver. */
export type MigrationMark = { role: 'incoming'; uri?: string } | { role: 'outgoing' };

/** What this module needs from the QEMU driver. */
export interface MigrationHost {
  qmp(vmId: string): Promise<QmpCommands>;
  migrationSettled(vmId: string, signal: AbortSignal): Promise<void>;
  launchIncoming(spec: LaunchSpec, listen: (qmp: QmpCommands) => Promise<string>): Promise<string>;
  setMigrationMark(vmId: string, mark: MigrationMark | null): Promise<void>;
}

const POLL_MS = 250;
/** How long a cancelled or failed migration may take to let the source run again. */
const SETTLE_MS = 30_000;
const MIB = 1024 * 1024;
/** QEMU's own defaults, set explicitly so an earlier migration's settings do not carry over. */
const THROTTLE = { 'cpu-throttle-initial': 20, 'cpu-throttle-increment': 10, 'max-cpu-throttle': 99 };
/** QEMU's defaults for announce-self: five rounds of RARPs from 50 ms apart up to 550 ms apart. */
const ANNOUNCE = { initial: 50, max: 550, rounds: 5, step: 100 };
const UNDER_WAY = new Set<MigrationStatus | undefined>(['setup', 'active', 'pre-switchover', 'device', 'cancelling', 'wait-unplug']);

const mib = (bytes: number) => (bytes / MIB).toFixed(1);
const uriHost = (host: string) => (host.includes(':') ? `[${host}]` : host);

export function migrationProgress(info: MigrationInfo, elapsedMs: number): MigrationProgress {
  const ram = info.ram;
  return {
    status: info.status ?? 'none',
    elapsedMs: info['total-time'] ?? elapsedMs,
    transferredBytes: ram?.transferred ?? 0,
    remainingBytes: ram?.remaining ?? 0,
    totalBytes: ram?.total ?? 0,
    passes: ram?.['dirty-sync-count'] ?? 0,
    dirtyRateBytes: (ram?.['dirty-pages-rate'] ?? 0) * (ram?.['page-size'] ?? 4096),
    expectedDowntimeMs: info['expected-downtime'] ?? 0,
    throttlePercent: info['cpu-throttle-percentage'] ?? 0,
  };
}

function outcome(info: MigrationInfo, maxThrottle: number): MigrationOutcome {
  return {
    totalMs: info['total-time'] ?? 0,
    downtimeMs: info.downtime ?? 0,
    setupMs: info['setup-time'] ?? 0,
    transferredBytes: info.ram?.transferred ?? 0,
    passes: info.ram?.['dirty-sync-count'] ?? 0,
    throttlePercent: Math.max(maxThrottle, info['cpu-throttle-percentage'] ?? 0),
  };
}

export class QemuMigration implements MigrationSupport {
  constructor(private readonly host: MigrationHost, private readonly log: DriverLog) {}

  async prepareIncoming(spec: LaunchSpec, listenHost: string): Promise<{ uri: string }> {
    const host = uriHost(listenHost);
    const uri = await this.host.launchIncoming(spec, async (qmp) => {
      await qmp.migrateSetCapabilities({ events: true, 'late-block-activate': true });
      await qmp.migrateIncoming(`tcp:${host}:0`);
      const addr = (await qmp.queryMigrate())['socket-address']?.find((a) => a.type === 'inet');
      if (addr?.type !== 'inet') throw new Error('QEMU did not say which port it listens on');
      return `tcp:${host}:${addr.port}`;
    });
    return { uri };
  }

  async dirtyRate(vmId: string, seconds: number): Promise<number> {
    // QEMU 7.2 measures whole seconds, 1 to 60.
    const calcTime = Math.min(60, Math.max(1, Math.round(seconds)));
    await (await this.host.qmp(vmId)).calcDirtyRate({ 'calc-time': calcTime, mode: 'page-sampling' });
    const deadline = Date.now() + calcTime * 1000 + SETTLE_MS;
    for (;;) {
      await sleep(POLL_MS);
      const r = await (await this.host.qmp(vmId)).queryDirtyRate();
      if (r.status === 'measured' && r['dirty-rate'] !== undefined) return r['dirty-rate'] * MIB;
      if (Date.now() > deadline) throw new DriverError(vmId, `the dirty rate of ${vmId} was not measured within ${calcTime} s + ${SETTLE_MS} ms`);
    }
  }

  async migrateOut(vmId: string, uri: string, params: MigrationParams,
    onProgress: (p: MigrationProgress) => void, signal: AbortSignal): Promise<MigrationOutcome> {
    if (signal.aborted) throw new MigrationError(vmId, 'cancelled', `migration of ${vmId} was cancelled before it started`);
    // A QEMU that itself arrived by migration goes on reporting that incoming migration as
    // `completed` (with figures) until the outgoing one leaves QEMU's NONE state, so an end counts only
    // once this migration has shown itself: under way in a poll, or ended in a MIGRATION event.
    let seen = false;
    const watching = new AbortController();
    // A VM that is gone fails in follow()'s own QMP calls.
    const ended = this.host.migrationSettled(vmId, watching.signal).then(() => { seen = true; }, () => undefined);
    try {
      return await this.follow(vmId, uri, params, onProgress, signal, ended, () => seen, () => { seen = true; });
    } finally {
      watching.abort();
    }
  }

  private async follow(vmId: string, uri: string, params: MigrationParams, onProgress: (p: MigrationProgress) => void,
    signal: AbortSignal, ended: Promise<void>, seen: () => boolean, see: () => void): Promise<MigrationOutcome> {
    const t0 = Date.now();
    const deadline = t0 + params.completionTimeoutMs;
    const fail = (e: unknown) => new MigrationError(vmId, 'failed', `migration of ${vmId} failed: ${(e as Error).message}`);
    try {
      const qmp = await this.host.qmp(vmId);
      const [state, current] = await Promise.all([qmp.queryStatus(), qmp.queryMigrate()]);
      // A repeated call: the migration this agent (or its predecessor) began is followed, not restarted.
      if (state.status === 'postmigrate' && current.status === 'completed') return outcome(current, 0);
      if (UNDER_WAY.has(current.status)) {
        see();
        this.log.info({ vmId, status: current.status }, 'following the outgoing migration already under way');
      } else {
        await qmp.migrateSetCapabilities({ events: true, 'auto-converge': params.autoConverge, 'pause-before-switchover': false });
        await qmp.migrateSetParameters({
          'downtime-limit': Math.round(params.downtimeLimitMs), 'max-bandwidth': Math.round(params.maxBandwidthBytes), ...THROTTLE,
        });
        await qmp.migrate(uri);
        this.log.info({ vmId, uri, params }, 'outgoing migration started');
      }
    } catch (e) {
      throw fail(e);
    }
    let maxThrottle = 0;
    let last: MigrationInfo | undefined;
    for (;;) {
      try {
        last = await (await this.host.qmp(vmId)).queryMigrate();
      } catch (e) {
        throw fail(new Error(`lost the source QEMU: ${(e as Error).message}`));
      }
      // QEMU announces the end before it has computed total-time and downtime: read them once it has.
      if (last.status === 'completed' && seen() && (last['total-time'] ?? 0) <= 0) {
        await sleep(5);
        continue;
      }
      maxThrottle = Math.max(maxThrottle, last['cpu-throttle-percentage'] ?? 0);
      try {
        onProgress(migrationProgress(last, Date.now() - t0));
      } catch (e) {
        this.log.error({ vmId, error: (e as Error).message }, 'migration progress listener threw');
      }
      if (UNDER_WAY.has(last.status)) see();
      if (last.status === 'completed' && seen()) {
        // The guest now lives in the destination's QEMU: this one's end must not be reported.
        await this.host.setMigrationMark(vmId, { role: 'outgoing' })
          .catch((e) => this.log.warn({ vmId, error: (e as Error).message }, 'cannot mark the source as migrated away'));
        const result = outcome(last, maxThrottle);
        this.log.info({ vmId, ...result }, 'outgoing migration completed');
        return result;
      }
      if ((last.status === 'failed' || last.status === 'cancelled') && seen()) {
        const why = last.status === 'failed' ? last['error-desc'] ?? 'QEMU gave no reason' : 'cancelled outside kumo';
        try {
          await this.runAtSource(vmId);
        } catch (e) {
          throw fail(new Error(`${why}, and the source did not run again: ${(e as Error).message}`));
        }
        throw fail(new Error(`${why}; the VM runs on at the source`));
      }
      if (signal.aborted) return this.abandon(vmId, 'cancelled', `migration of ${vmId} was cancelled`);
      if (Date.now() >= deadline) {
        const p = migrationProgress(last, Date.now() - t0);
        // QEMU knows the dirty rate only from the end of the first pass on.
        const dirtying = p.dirtyRateBytes > 0 ? `, guest dirtying ${mib(p.dirtyRateBytes)} MiB/s` : '';
        return this.abandon(vmId, 'timeout', `migration of ${vmId} did not complete within ${params.completionTimeoutMs} ms ` +
          `(${mib(p.transferredBytes)} of ${mib(p.totalBytes)} MiB sent, ${mib(p.remainingBytes)} MiB left in pass ${p.passes}${dirtying}, ` +
          `bandwidth ${mib(params.maxBandwidthBytes)} MiB/s)`);
      }
      await this.nextSample(signal, ended);
    }
  }

  /**
   * Until the next progress sample, or at once when QEMU's MIGRATION event says the migration
   * ended: the source sits paused from completion until the switch-over, so every millisecond spent
   * noticing the completion is added to the guest's pause.
   */
  private async nextSample(signal: AbortSignal, ended: Promise<void>): Promise<void> {
    const tick = new AbortController();
    const onAbort = () => tick.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([sleep(POLL_MS, undefined, { signal: tick.signal }).catch(() => undefined), ended]);
    } finally {
      tick.abort();
      signal.removeEventListener('abort', onAbort);
    }
  }

  async resumeIncoming(vmId: string): Promise<void> {
    const qmp = await this.host.qmp(vmId);
    // The source reports completion as soon as it has sent the last bytes; the destination may still
    // be loading them. `cont` while inmigrate would only make QEMU start the guest whenever they arrive.
    const deadline = Date.now() + SETTLE_MS;
    let state = (await qmp.queryStatus()).status;
    while (state === 'inmigrate') {
      if (Date.now() > deadline) throw new DriverError(vmId, `the incoming migration of ${vmId} has not completed ${SETTLE_MS} ms on`);
      await sleep(10);
      state = (await qmp.queryStatus()).status;
    }
    if (state !== 'running') await qmp.cont();
    await this.waitRunning(vmId);
    await qmp.announceSelf(ANNOUNCE);
    await this.host.setMigrationMark(vmId, null);
    this.log.info({ vmId }, 'VM resumed after its incoming migration');
  }

  async resumeOutgoing(vmId: string): Promise<void> {
    await this.runAtSource(vmId);
    this.log.info({ vmId }, 'VM resumed at the source after its migration');
  }

  /** migrate_cancel, then the source runs again (also if QEMU completed before the cancel took). */
  private async abandon(vmId: string, kind: MigrationFailure, message: string): Promise<never> {
    try {
      const qmp = await this.host.qmp(vmId);
      await qmp.migrateCancel();
      const deadline = Date.now() + SETTLE_MS;
      let status = (await qmp.queryMigrate()).status;
      while (UNDER_WAY.has(status)) {
        if (Date.now() > deadline) throw new Error(`the migration is still ${status} ${SETTLE_MS} ms after migrate_cancel`);
        await sleep(50);
        status = (await qmp.queryMigrate()).status;
      }
      await this.runAtSource(vmId);
    } catch (e) {
      throw new MigrationError(vmId, 'failed', `${message}, and cancelling it failed: ${(e as Error).message}`);
    }
    this.log.info({ vmId, kind }, message);
    throw new MigrationError(vmId, kind, `${message}; the VM runs on at the source`);
  }

  /** `cont` where QEMU left the guest paused (postmigrate re-activates the disks), then waits for running. */
  private async runAtSource(vmId: string): Promise<void> {
    const qmp = await this.host.qmp(vmId);
    const state = (await qmp.queryStatus()).status;
    if (state === 'postmigrate' || state === 'paused') await qmp.cont();
    await this.waitRunning(vmId);
    await this.host.setMigrationMark(vmId, null);
  }

  private async waitRunning(vmId: string): Promise<void> {
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      const state = (await (await this.host.qmp(vmId)).queryStatus()).status;
      if (state === 'running') return;
      if (Date.now() > deadline) throw new DriverError(vmId, `${vmId} is ${state}, not running, ${SETTLE_MS} ms on`);
      await sleep(50);
    }
  }
}
