import type { Logger } from 'pino';
import type { Db } from '../state/db.js';
import { now } from '../state/db.js';
import type { VmReport } from '../compute/driver.js';
import type { Events } from './events.js';
import { activeOn } from './requests.js';

const REPORT_GRACE_MS = 15_000;

/**
 * Converges the VM rows with what agents report. A request in flight owns its VM, so a VM with
 * one is left to it; otherwise a VM the store thinks runs but its host does not is recorded as
 * stopped (guest shutdown) or error (anything else), and its capacity is given back.
 */
export class Reconciler {
  constructor(private readonly db: Db, private readonly events: Events, private readonly log: Logger) {}

  async vmGone(hostId: string, vmId: string, reason: 'shutdown' | 'crash' | 'missing'): Promise<void> {
    const vm = await this.db.k.selectFrom('vms').selectAll().where('id', '=', vmId).executeTakeFirst();
    if (!vm || vm.host_id !== hostId || vm.status !== 'running') return;
    if ((await activeOn(this.db.k, vmId)).length) return;
    const status = reason === 'shutdown' ? 'stopped' : 'error';
    const res = await this.db.k.updateTable('vms').set({ status, power: 'off', host_id: null, last_host_id: hostId, updated_at: now() })
      .where('id', '=', vmId).where('host_id', '=', hostId).where('status', '=', 'running').executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return;
    const why = { shutdown: 'the guest powered off', crash: 'its process died', missing: 'its host no longer runs it' }[reason];
    this.log.warn({ vmId, hostId, reason }, `VM stopped without a request: ${why}`);
    await this.events.publish(this.db.k, vm.tenant_id, `vm.${status}`, vmId, { reason: why });
  }

  async report(hostId: string, vms: VmReport[]): Promise<void> {
    const running = new Set(vms.filter((v) => v.power === 'running').map((v) => v.vmId));
    // A report may have been taken just before a start finished: only VMs settled for longer than
    // a report can be in flight are judged by it (exit events cover sudden deaths at once).
    const settled = new Date(Date.now() - REPORT_GRACE_MS).toISOString();
    const placed = await this.db.k.selectFrom('vms').select('id').where('host_id', '=', hostId).where('status', '=', 'running')
      .where('updated_at', '<', settled).execute();
    for (const v of placed) if (!running.has(v.id)) await this.vmGone(hostId, v.id, 'missing');
  }
}
