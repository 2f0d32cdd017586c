import { Fault, KumoError, invalidParams, invalidState, notAvailableYet, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db, Q, Tx } from '../state/db.js';
import { now } from '../state/db.js';
import type { VolumeRow } from '../state/schema.js';
import type { BlockMaps } from './blockmaps.js';
import type { Events } from './events.js';
import { visible, type Principal } from './principal.js';
import { checkQuota } from './quota.js';
import { activeOn, type Requests } from './requests.js';
import { checkName, checkRange } from './validate.js';
import { MAX_SLOTS, type Vms } from './vms.js';
import { defaultReplicas } from './volume-placement.js';
import type { Zones } from './zones.js';

export const VOLUME_CLASSES = ['best-effort', 'guaranteed'] as const;

export interface AllocateVolumeArgs { sizeGiB: number; name?: string; class?: string; iops?: number; replicas?: number; zone?: string; encrypted?: boolean }

export class Volumes {
  constructor(
    private readonly db: Db, private readonly events: Events, private readonly vms: Vms, private readonly zones: Zones,
    private readonly maps: BlockMaps, private readonly requests: Requests,
  ) {}

  async row(q: Q, p: Principal, volumeId: string): Promise<VolumeRow> {
    const v = await q.selectFrom('volumes').selectAll().where('id', '=', volumeId).executeTakeFirst();
    if (!v || !visible(p, v.tenant_id)) throw notFound('volume', volumeId);
    return v;
  }

  async list(p: Principal) {
    let q = this.db.k.selectFrom('volumes').leftJoin('vm_disks', 'vm_disks.volume_id', 'volumes.id')
      .select(['volumes.id', 'volumes.name', 'volumes.size_gib', 'volumes.class', 'vm_disks.vm_id']).orderBy('volumes.created_at').orderBy('volumes.id');
    if (!p.admin) q = q.where('volumes.tenant_id', '=', p.tenantId);
    return (await q.execute()).map((v) => ({ volumeId: v.id, name: v.name, sizeGiB: v.size_gib, class: v.class, attachedTo: v.vm_id ?? '' }));
  }

  async info(p: Principal, volumeId: string) {
    const v = await this.row(this.db.k, p, volumeId);
    const d = await this.db.k.selectFrom('vm_disks').selectAll().where('volume_id', '=', volumeId).executeTakeFirst();
    return {
      volumeId: v.id, name: v.name, sizeGiB: v.size_gib, class: v.class, iops: v.iops, replicas: v.replicas,
      attachedTo: d ? { vmId: d.vm_id, slot: d.slot } : {},
      locations: await this.maps.locations(volumeId),
      encrypted: v.encrypted === 1,
    };
  }

  async allocate(p: Principal, a: AllocateVolumeArgs): Promise<string> {
    const id = newId('vol');
    const name = a.name ?? id;
    checkName(name);
    checkRange(a.sizeGiB, 1, 16384, 'sizeGiB');
    const cls = a.class ?? 'best-effort';
    if (!(VOLUME_CLASSES as readonly string[]).includes(cls)) throw invalidParams(`class must be one of ${VOLUME_CLASSES.join(', ')}`);
    const iops = a.iops ?? 0;
    checkRange(iops, 0, 1000000, 'iops');
    if (iops > 0 && cls !== 'guaranteed') throw invalidParams('iops applies to guaranteed volumes only');
    if (a.replicas !== undefined) checkRange(a.replicas, 1, 3, 'replicas');
    if (a.encrypted) throw notAvailableYet('volume encryption arrives with kumo storage nodes (the UKAI storage issue)');
    await this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `tenant:${p.tenantId}`);
      const replicas = a.replicas ?? await defaultReplicas(trx);
      const zone = a.zone === undefined || a.zone === '' ? null : (await this.zones.resolve(trx, a.zone)).id;
      await checkQuota(trx, p.tenantId, { volumes: 1, volumeGiB: a.sizeGiB });
      await trx.insertInto('volumes').values({
        id, tenant_id: p.tenantId, name, size_gib: a.sizeGiB, class: cls as VolumeRow['class'], iops, replicas, zone_id: zone, encrypted: 0, system: 0, created_at: now(),
      }).execute();
      // Placed now when storage nodes are up, so getVolumeInfo shows where it lives; else at first use.
      await this.maps.placeNew(trx, id);
      await this.events.publish(trx, p.tenantId, 'volume.allocated', id, { sizeGiB: a.sizeGiB });
    });
    return id;
  }

  async deallocate(p: Principal, volumeId: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vol:${volumeId}`);
      const v = await this.row(trx, p, volumeId);
      const d = await trx.selectFrom('vm_disks').selectAll().where('volume_id', '=', volumeId).executeTakeFirst();
      if (d) throw invalidState(`${volumeId} is attached to ${d.vm_id} slot ${d.slot}; detach it first`);
      const active = await activeOn(trx, volumeId);
      if (active.length) throw new KumoError(Fault.CONFLICT, `${volumeId} has ${active[0].method} ${active[0].id} ${active[0].status}`);
      await this.maps.dropVolume(trx, volumeId);
      await trx.deleteFrom('comments').where('resource_id', '=', volumeId).execute();
      await trx.deleteFrom('volumes').where('id', '=', volumeId).execute();
      await this.events.publish(trx, v.tenant_id, 'volume.deallocated', volumeId);
    });
    return true;
  }

  async attach(p: Principal, vmId: string, volumeId: string): Promise<number> {
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vol:${volumeId}`);
      const vm = await this.vms.row(trx, p, vmId);
      const v = await this.row(trx, p, volumeId);
      if (v.tenant_id !== vm.tenant_id) throw notFound('volume', volumeId);
      await this.vms.requireStopped(trx, vm, 'attachVolume');
      const d = await trx.selectFrom('vm_disks').selectAll().where('volume_id', '=', volumeId).executeTakeFirst();
      if (d) throw invalidState(`${volumeId} is already attached to ${d.vm_id} slot ${d.slot}`);
      const used = new Set((await trx.selectFrom('vm_disks').select('slot').where('vm_id', '=', vmId).execute()).map((r) => r.slot));
      const slot = [...Array(MAX_SLOTS).keys()].find((s) => s > 0 && !used.has(s));
      if (slot === undefined) throw invalidState(`${vmId} already has ${MAX_SLOTS} disks, the limit`);
      await trx.insertInto('vm_disks').values({ vm_id: vmId, slot, volume_id: volumeId }).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.disk.attached', vmId, { slot, volumeId });
      return slot;
    });
  }

  async detach(p: Principal, vmId: string, slot: number): Promise<true> {
    if (slot === 0) throw invalidParams('slot 0 holds the system volume and cannot be detached');
    await this.db.k.transaction().execute(async (trx) => {
      const vm = await this.vms.row(trx, p, vmId);
      const d = await trx.selectFrom('vm_disks').selectAll().where('vm_id', '=', vmId).where('slot', '=', slot).executeTakeFirst();
      if (!d) throw notFound('disk', `${vmId} slot ${slot}`);
      await this.vms.requireStopped(trx, vm, 'detachVolume');
      await trx.deleteFrom('vm_disks').where('vm_id', '=', vmId).where('slot', '=', slot).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.disk.detached', vmId, { slot, volumeId: d.volume_id });
    });
    return true;
  }

  /**
   * addVolumeLocation / removeVolumeLocation: checked now (so a refusal is immediate), then queued —
   * the copy runs in the request engine while the volume stays in use. The handler checks again.
   */
  private async relocation(p: Principal, volumeId: string, nodeId: string, method: 'addVolumeLocation' | 'removeVolumeLocation'): Promise<string> {
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vol:${volumeId}`);
      const v = await this.row(trx, p, volumeId);
      if (method === 'addVolumeLocation') await this.maps.checkAddable(trx, volumeId, nodeId);
      else await this.maps.checkRemovable(trx, volumeId, nodeId);
      const same = await this.pending(trx, volumeId, (r) => r.method === method && r.nodeId === nodeId);
      if (same) throw new KumoError(Fault.CONFLICT, `${volumeId} already has ${method} ${same} for ${nodeId}`);
      return this.requests.submit(trx, v.tenant_id, method, volumeId, { nodeId });
    });
  }

  addLocation(p: Principal, volumeId: string, nodeId: string) { return this.relocation(p, volumeId, nodeId, 'addVolumeLocation'); }
  removeLocation(p: Principal, volumeId: string, nodeId: string) { return this.relocation(p, volumeId, nodeId, 'removeVolumeLocation'); }

  /**
   * Queues a resync of the volume's copy on `nodeId` (request method `syncVolume`) for the resync
   * reconciler — unless any request is queued or running on the volume (a relocation copies too;
   * the reconciler asks again later). Returns the request id, or null when nothing was queued.
   */
  async submitSync(volumeId: string, nodeId: string): Promise<string | null> {
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vol:${volumeId}`);
      const v = await trx.selectFrom('volumes').select(['id', 'tenant_id']).where('id', '=', volumeId).executeTakeFirst();
      if (!v) return null;
      if ((await activeOn(trx, volumeId)).length) return null;
      return this.requests.submit(trx, v.tenant_id, 'syncVolume', volumeId, { nodeId });
    });
  }

  /**
   * createImageFromVolume (kumo addition; P2's storage archive): queues a copy of the volume into a
   * private image of its tenant. The volume must not be in use: an attached VM must be stopped.
   */
  async submitCapture(p: Principal, volumeId: string, a: { name: string; os?: string }): Promise<string> {
    checkName(a.name, 'image name');
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vol:${volumeId}`);
      const v = await this.row(trx, p, volumeId);
      const d = await trx.selectFrom('vm_disks').innerJoin('vms', 'vms.id', 'vm_disks.vm_id').select(['vms.id', 'vms.status'])
        .where('vm_disks.volume_id', '=', volumeId).executeTakeFirst();
      if (d && d.status !== 'stopped') throw invalidState(`${volumeId} is in use by ${d.id}, which is ${d.status}; stop it first`);
      return this.requests.submit(trx, v.tenant_id, 'createImageFromVolume', volumeId, { name: a.name, os: a.os ?? 'linux' });
    });
  }

  /** The first queued or running request on the volume matching `f` (by method and params), or null. */
  private async pending(trx: Tx, volumeId: string, f: (r: { method: string; nodeId?: unknown }) => boolean): Promise<string | null> {
    const rows = await trx.selectFrom('requests').select(['id', 'method', 'params']).where('resource_id', '=', volumeId)
      .where('status', 'in', ['queued', 'running']).orderBy('seq').execute();
    return rows.find((r) => f({ ...(JSON.parse(r.params) as { nodeId?: unknown }), method: r.method }))?.id ?? null;
  }
}
