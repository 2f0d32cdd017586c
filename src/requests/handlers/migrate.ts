import { setTimeout as sleep } from 'node:timers/promises';
import { agentFault, type AgentClient } from '../../agent/client.js';
import { MigrationError, type MigrationOutcome, type MigrationProgress } from '../../compute/migration.js';
import { Fault, KumoError, invalidState } from '../../core/errors.js';
import { place, rejectedBy, type Arch, type VmDemand } from '../../scheduler/index.js';
import { capacitySnapshot } from '../../services/capacity.js';
import type { Services } from '../../services/index.js';
import { decideMigration, type MigrationDecision, type MigrationPolicyConfig } from '../../services/migration-policy.js';
import { now } from '../../state/db.js';
import type { HostRow, VmRow } from '../../state/schema.js';
import type { ControllerStorage } from '../../storage/controller/sessions.js';
import { RequestCancelled, type Handler, type RequestContext } from '../engine.js';
import { followStorage, type FollowReport } from './follow-storage.js';
import { vmSpec } from './vm-spec.js';

export interface MigrateDeps { s: Services; agents: AgentClient; storage: ControllerStorage; migration: MigrationPolicyConfig }

/** Where a migration got to, saved so a controller that resumes the request knows what to undo or finish. */
interface Checkpoint { phase?: 'prepared' | 'switching'; dest?: string }

const MiB = 1024 * 1024;
const mib = (bytes: number) => (bytes / MiB).toFixed(1);

/**
 * migrateVm: seed 000's seven steps (DESIGN.md §8) across two agents. Measure the dirty rate and
 * predict; reserve the destination; prepare it (volumes exported, QEMU waiting on `-incoming`);
 * pre-copy with the policy's downtime limit and bandwidth, progress into the request; switch over
 * (the source's volume leases handed to the destination, which resumes and announces the MACs);
 * tear the source down. Until the hand-over every failure and cancelRequest end with the VM
 * running at the source and nothing left at the destination; after it, the migration is finished
 * forward, or — when the destination cannot resume — the leases are handed back and the source
 * resumes.
 */
export function migrateHandlers(d: MigrateDeps): Record<string, Handler> {
  const db = d.s.db;
  const vmRow = (id: string) => db.k.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const hostRow = (id: string) => db.k.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const volumeIds = async (vmId: string) =>
    (await db.k.selectFrom('vm_disks').select('volume_id').where('vm_id', '=', vmId).orderBy('slot').execute()).map((r) => r.volume_id);

  async function setVm(vm: VmRow, set: Partial<Pick<VmRow, 'status' | 'host_id' | 'migration_host_id' | 'zone_id' | 'last_host_id'>>, kind?: string, data?: Record<string, unknown>): Promise<void> {
    await db.k.updateTable('vms').set({ ...set, updated_at: now() }).where('id', '=', vm.id).execute();
    if (kind) await d.s.events.publish(db.k, vm.tenant_id, kind, vm.id, data ?? {});
  }

  /** Picks and reserves the destination in one locked transaction, as placement does for a start. */
  async function reserve(vm: VmRow, src: HostRow, target: { host?: string; zone?: string }): Promise<HostRow> {
    const hostId = await db.k.transaction().execute(async (trx) => {
      await db.lock(trx, 'placement');
      const snap = await capacitySnapshot(trx);
      const demand: VmDemand = {
        vmId: vm.id, tenantId: vm.tenant_id, vcpus: vm.vcpus, memoryMiB: vm.memory_mib, resourceType: vm.resource_type as never,
        architecture: vm.architecture as Arch, zone: target.zone ?? src.zone_id, excludeHosts: [src.id],
      };
      let chosen: string;
      if (target.host) {
        const h = snap.hosts.find((x) => x.hostId === target.host);
        const why = h ? rejectedBy(h, demand, d.s.policy) : 'unknown host';
        if (why) throw new KumoError(Fault.NO_CAPACITY, `host ${target.host} cannot take ${vm.id}: ${why}`);
        chosen = target.host;
      } else {
        const r = place(snap, demand, d.s.policy);
        if (!r.ok) throw new KumoError(Fault.NO_CAPACITY, `no host can take ${vm.id}: ${r.reason}`);
        chosen = r.hostId;
      }
      await trx.updateTable('vms').set({ migration_host_id: chosen, status: 'migrating', updated_at: now() }).where('id', '=', vm.id).execute();
      return chosen;
    });
    await d.s.events.publish(db.k, vm.tenant_id, 'vm.migrating', vm.id, { status: 'migrating', from: src.id, to: hostId });
    return hostRow(hostId);
  }

  /** Before the hand-over: the destination goes, the VM runs on at the source. */
  async function rollback(ctx: RequestContext, vm: VmRow, dest: HostRow | null): Promise<void> {
    if (dest) {
      await d.agents.stop(dest, vm.id, { force: true, timeoutMs: 0 })
        .catch((e: Error) => ctx.log.error({ err: e.message, host: dest.id }, 'could not remove the migration destination; the agent drops it when it sees it'));
    }
    await setVm(vm, { status: 'running', migration_host_id: null }, 'vm.running', { status: 'running', hostId: vm.host_id });
  }

  /**
   * After QEMU completed but before the destination ran: the destination goes, leases it was
   * handed come back to the source, and the source resumes (QEMU re-activates its disks).
   */
  async function rollbackAfterCompletion(ctx: RequestContext, vm: VmRow, src: HostRow, dest: HostRow): Promise<void> {
    await d.agents.stop(dest, vm.id, { force: true, timeoutMs: 0 }).catch((e: Error) => ctx.log.error({ err: e.message }, 'could not stop the migration destination'));
    const vols = await volumeIds(vm.id);
    for (const v of vols) {
      const l = await d.s.blockMaps.leaseOf(v);
      if (l && l.holder === dest.id && Date.parse(l.expiresAt) > Date.now()) await d.s.blockMaps.handover(v, dest.id, l.epoch, src.id);
    }
    // A destination that opened a volume and died holds its lease until it lapses.
    const deadline = Date.now() + 45_000;
    for (;;) {
      try {
        await d.agents.resumeOutgoing(src, vm.id, vols);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw agentFault(`resuming ${vm.id} at the source after a failed switch-over`, src, e);
        await sleep(2000);
      }
    }
    await rollback(ctx, vm, null);
  }

  async function precopy(ctx: RequestContext, vm: VmRow, src: HostRow, dest: HostRow, uri: string, decision: MigrationDecision): Promise<MigrationOutcome> {
    let shown = 0;
    const onProgress = async (p: MigrationProgress) => {
      if (Date.now() - shown < 250 && p.status === 'active') return;
      shown = Date.now();
      const firstPass = p.totalBytes > 0 ? Math.min(1, p.transferredBytes / p.totalBytes) : 0;
      const percent = p.passes <= 1 ? 12 + 70 * firstPass : Math.min(92, 82 + p.passes);
      await ctx.progress(percent, `pass ${p.passes}: ${mib(p.transferredBytes)} of ${mib(p.totalBytes)} MiB sent, ${mib(p.remainingBytes)} MiB left, `
        + `dirty ${mib(p.dirtyRateBytes)} MiB/s, expected downtime ${p.expectedDowntimeMs} ms${p.throttlePercent ? `, CPU throttled ${p.throttlePercent}%` : ''}`);
    };
    const cancel = () => void d.agents.migrateCancel(src, vm.id).catch((e: Error) => ctx.log.warn({ err: e.message }, 'could not pass the cancel on'));
    ctx.cancelled.addEventListener('abort', cancel, { once: true });
    try {
      await ctx.progress(12, `migrating ${vm.id} from ${src.name} to ${dest.name}: ${decision.reason}`);
      // Losing the request (ctx.signal) hangs up, as a dying controller would: the agent cancels.
      return await d.agents.migrate(src, vm.id, { uri, params: decision.params }, onProgress, ctx.signal);
    } finally {
      ctx.cancelled.removeEventListener('abort', cancel);
    }
  }

  /** The switch-over: leases to the destination, which resumes; the source goes. */
  async function switchOver(ctx: RequestContext, vm: VmRow, src: HostRow, dest: HostRow): Promise<number> {
    const t0 = Date.now();
    try {
      await d.agents.handover(src, vm.id, dest.id);
      await d.agents.resumeIncoming(dest, vm.id);
    } catch (e) {
      ctx.log.warn({ err: (e as Error).message }, 'switch-over failed; handing the VM back to its source');
      await rollbackAfterCompletion(ctx, vm, src, dest);
      throw agentFault(`switching ${vm.id} over to ${dest.name}`, dest, e);
    }
    const switchoverMs = Date.now() - t0;
    await setVm(vm, { status: 'running', host_id: dest.id, migration_host_id: null, last_host_id: src.id, ...(dest.zone_id !== src.zone_id && vm.zone_id ? { zone_id: dest.zone_id } : {}) },
      'vm.migrated', { status: 'running', from: src.id, hostId: dest.id });
    await d.agents.stop(src, vm.id, { force: true, timeoutMs: 0 })
      .catch((e: Error) => ctx.log.error({ err: e.message, host: src.id }, 'the migrated VM\'s old QEMU could not be stopped at its source'));
    return switchoverMs;
  }

  function throwIfCancelled(ctx: RequestContext, what: string): void {
    if (ctx.cancelled.aborted) throw new RequestCancelled(`cancelled ${what}; the VM runs on at its source`);
  }

  /** A resumed request (its controller died): finish what was handed over, undo what was not. */
  async function resume(ctx: RequestContext, vm: VmRow, cp: Checkpoint): Promise<Record<string, unknown> | null> {
    const dest = await hostRow(cp.dest!);
    const src = vm.host_id ? await hostRow(vm.host_id) : null;
    if (cp.phase === 'switching' && src) {
      ctx.log.warn({ dest: dest.id }, 'resuming a migration cut off during its switch-over');
      const switchoverMs = await switchOver(ctx, vm, src, dest);
      return { host: dest.id, from: src.id, switchoverMs, resumed: true };
    }
    ctx.log.warn({ dest: dest.id }, 'resuming a migration cut off before its switch-over: starting again');
    await rollback(ctx, vm, dest);
    await ctx.saveCheckpoint({});
    return null;
  }

  async function migrateVm(ctx: RequestContext): Promise<unknown> {
    let vm = await vmRow(ctx.req.resource_id);
    const cp = ctx.checkpoint as Checkpoint;
    if (ctx.resumed && cp.dest) {
      const done = await resume(ctx, vm, cp);
      if (done) return done;
      vm = await vmRow(vm.id);
    }
    if ((vm.status !== 'running' && vm.status !== 'migrating') || !vm.host_id) throw invalidState(`migrateVm needs ${vm.id} running; it is ${vm.status}`);
    const target = ctx.params as { host?: string; zone?: string; followStorage?: boolean };
    const src = await hostRow(vm.host_id);
    const cfg = d.migration;

    await ctx.progress(2, `measuring how fast ${vm.id} dirties its memory (${cfg.dirtyRateSampleSeconds} s)`);
    let dirty: number;
    try {
      dirty = await d.agents.dirtyRate(src, vm.id, cfg.dirtyRateSampleSeconds);
    } catch (e) {
      throw agentFault(`measuring the dirty rate of ${vm.id}`, src, e);
    }
    const decision = decideMigration({ resourceType: vm.resource_type as never, memoryBytes: vm.memory_mib * MiB, dirtyRateBytes: dirty }, cfg);
    if (!decision.go) throw invalidState(`${vm.id} cannot be live-migrated now, it would not converge: ${decision.reason}`);
    throwIfCancelled(ctx, 'before the migration started');

    const dest = await reserve(vm, src, target);
    let outcome: MigrationOutcome;
    try {
      await ctx.saveCheckpoint({ phase: 'prepared', dest: dest.id } satisfies Checkpoint);
      await ctx.progress(6, `preparing ${dest.name} to receive ${vm.id}`);
      let uri: string;
      try {
        uri = (await d.agents.incoming(dest, await vmSpec(db, vm))).uri;
      } catch (e) {
        throw agentFault(`preparing ${dest.name} to receive ${vm.id}`, dest, e);
      }
      throwIfCancelled(ctx, 'while the destination was prepared');
      outcome = await precopy(ctx, vm, src, dest, uri, decision);
    } catch (e) {
      // Another controller runs the request now; what to undo is its call (see resume()).
      if (ctx.signal.aborted) throw e;
      await rollback(ctx, vm, dest);
      if (e instanceof MigrationError && e.kind === 'cancelled' && ctx.cancelled.aborted) throw new RequestCancelled(`cancelled during the pre-copy; ${vm.id} runs on at ${src.name}`);
      if (e instanceof RequestCancelled) throw e;
      if (e instanceof MigrationError) {
        const why = e.kind === 'timeout' ? `did not complete within ${cfg.completionTimeoutMs / 1000} s (the completion timeout)` : e.message;
        const where = /runs on at the source/.test(why) ? '' : `; it runs on at ${src.name}`;
        throw invalidState(`live migration of ${vm.id} to ${dest.name} ${e.kind === 'timeout' ? why : `failed: ${why}`}${where}`);
      }
      throw e instanceof KumoError ? e : agentFault(`migrating ${vm.id} to ${dest.name}`, src, e);
    }

    await ctx.saveCheckpoint({ phase: 'switching', dest: dest.id } satisfies Checkpoint);
    await ctx.progress(94, `switching ${vm.id} over to ${dest.name}`);
    const switchoverMs = await switchOver(ctx, vm, src, dest);
    let follow: FollowReport | undefined;
    if (target.followStorage && dest.zone_id !== src.zone_id) {
      follow = await followStorage({ s: d.s, agents: d.agents, storage: d.storage }, vm.id, dest.zone_id, async (m) => ctx.progress(97, m));
    }
    return {
      host: dest.id, from: src.id, downtimeMs: outcome.downtimeMs + switchoverMs, qemuDowntimeMs: outcome.downtimeMs, switchoverMs,
      totalMs: outcome.totalMs, transferredBytes: outcome.transferredBytes, passes: outcome.passes, throttlePercent: outcome.throttlePercent,
      dirtyRateBytes: dirty,
      predicted: { converges: decision.prediction.converges, totalMs: Math.round(decision.prediction.totalMs), downtimeMs: Math.round(decision.prediction.downtimeMs), passes: decision.prediction.passes },
      ...(follow ? { storage: follow } : {}),
    };
  }

  return { migrateVm };
}
