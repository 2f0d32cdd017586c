import { Fault, KumoError, invalidState } from '../../core/errors.js';
import { agentFault, type AgentClient } from '../../agent/client.js';
import { place, type Arch, type SchedulerPolicy } from '../../scheduler/index.js';
import type { Db } from '../../state/db.js';
import { now } from '../../state/db.js';
import type { HostRow, VmRow } from '../../state/schema.js';
import { capacitySnapshot } from '../../services/capacity.js';
import type { Events } from '../../services/events.js';
import type { Metrics } from '../../services/metrics.js';
import type { Handler, RequestContext } from '../engine.js';
import { vmSpec } from './vm-spec.js';

export interface PowerDeps { db: Db; events: Events; agents: AgentClient; policy: SchedulerPolicy; metrics: Metrics; gracefulStopMs: number }

/** Power requests: placement, then the idempotent agent call, then the VM row. Each step can be
 * repeated after a controller restart, which is what makes these requests resumable. */
export function powerHandlers(d: PowerDeps): Record<string, Handler> {
  const vmRow = (id: string) => d.db.k.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const hostRow = (id: string) => d.db.k.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  async function setVm(vm: VmRow, set: Partial<Pick<VmRow, 'status' | 'power' | 'host_id'>>): Promise<void> {
    const leaving = set.host_id === null && vm.host_id ? { last_host_id: vm.host_id } : {};
    await d.db.k.updateTable('vms').set({ ...set, ...leaving, updated_at: now() }).where('id', '=', vm.id).execute();
    if (set.status && set.status !== vm.status) await d.events.publish(d.db.k, vm.tenant_id, `vm.${set.status}`, vm.id, { status: set.status, power: set.power ?? vm.power, hostId: set.host_id === undefined ? vm.host_id : set.host_id });
  }

  /** Placement and the host reservation happen in one locked transaction so two controllers
   * never fill the same capacity. Volumes live on storage nodes, so any host can run the VM. */
  async function placeVm(vm: VmRow): Promise<HostRow> {
    const t0 = process.hrtime.bigint();
    const hostId = await d.db.k.transaction().execute(async (trx) => {
      await d.db.lock(trx, 'placement');
      const r = place(await capacitySnapshot(trx), {
        vmId: vm.id, tenantId: vm.tenant_id, vcpus: vm.vcpus, memoryMiB: vm.memory_mib,
        resourceType: vm.resource_type as never, architecture: vm.architecture as Arch, zone: vm.zone_id,
      }, d.policy);
      if (!r.ok) throw new KumoError(Fault.NO_CAPACITY, r.reason);
      await trx.updateTable('vms').set({ host_id: r.hostId, updated_at: now() }).where('id', '=', vm.id).execute();
      return r.hostId;
    });
    d.metrics.schedulerSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    return hostRow(hostId);
  }

  async function powerOn(ctx: RequestContext): Promise<unknown> {
    let vm = await vmRow(ctx.req.resource_id);
    if (vm.status === 'running' && vm.host_id) return { host: vm.host_id, message: 'already running' };
    await setVm(vm, { status: 'starting' });
    vm = await vmRow(vm.id);
    let host: HostRow;
    try {
      host = vm.host_id ? await hostRow(vm.host_id) : await placeVm(vm);
    } catch (e) {
      await setVm(vm, { status: 'stopped', power: 'off', host_id: null });
      throw e;
    }
    await ctx.progress(30, `placed on ${host.name} (${host.id}); starting`);
    try {
      await d.agents.start(host, await vmSpec(d.db, vm));
    } catch (e) {
      // Leave nothing half-started behind before giving the capacity back.
      await d.agents.stop(host, vm.id, { force: true, timeoutMs: 0 }).catch(() => {});
      await setVm(vm, { status: 'stopped', power: 'off', host_id: null });
      ctx.log.warn({ err: (e as Error).message }, 'agent failed to start the VM');
      throw agentFault(`starting ${vm.id}`, host, e);
    }
    await setVm(vm, { status: 'running', power: 'on', host_id: host.id });
    return { host: host.id };
  }

  async function powerOff(ctx: RequestContext): Promise<unknown> {
    const vm = await vmRow(ctx.req.resource_id);
    if (vm.status === 'stopped' || !vm.host_id) {
      if (vm.status !== 'stopped') await setVm(vm, { status: 'stopped', power: 'off', host_id: null });
      return { message: 'already stopped' };
    }
    const force = ctx.params.force === true;
    const before = vm.status;
    await setVm(vm, { status: 'stopping' });
    await ctx.progress(20, force ? 'forcing off' : `ACPI shutdown (forced after ${d.gracefulStopMs / 1000} s)`);
    const host = await hostRow(vm.host_id);
    try {
      await d.agents.stop(host, vm.id, { force, timeoutMs: d.gracefulStopMs });
    } catch (e) {
      await setVm(vm, { status: before === 'stopping' ? 'running' : before });
      ctx.log.warn({ err: (e as Error).message }, 'agent failed to stop the VM');
      throw agentFault(`stopping ${vm.id}`, host, e);
    }
    await setVm(vm, { status: 'stopped', power: 'off', host_id: null });
    return {};
  }

  async function reset(ctx: RequestContext): Promise<unknown> {
    const vm = await vmRow(ctx.req.resource_id);
    if (vm.status !== 'running' || !vm.host_id) throw invalidState(`resetVm needs ${vm.id} running; it is ${vm.status}`);
    const host = await hostRow(vm.host_id);
    try {
      await d.agents.reset(host, vm.id);
    } catch (e) {
      ctx.log.warn({ err: (e as Error).message }, 'agent failed to reset the VM');
      throw agentFault(`resetting ${vm.id}`, host, e);
    }
    await d.events.publish(d.db.k, vm.tenant_id, 'vm.reset', vm.id);
    return {};
  }

  return { powerOnVm: powerOn, powerOffVm: powerOff, resetVm: reset };
}
