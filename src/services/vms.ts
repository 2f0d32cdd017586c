import { Fault, KumoError, invalidParams, invalidState, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db, Q, Tx } from '../state/db.js';
import { Precompiled, now } from '../state/db.js';
import type { VmRow } from '../state/schema.js';
import { place, type Arch, type SchedulerPolicy } from '../scheduler/index.js';
import type { BlockMaps } from './blockmaps.js';
import { capacitySnapshot } from './capacity.js';
import type { Events } from './events.js';
import { visible, type Principal } from './principal.js';
import { checkQuota } from './quota.js';
import { activeOn, type Requests } from './requests.js';
import { checkUserData } from './guest-config.js';
import { checkName, checkRange } from './validate.js';
import type { VmTypes } from './vm-types.js';
import { defaultReplicas } from './volume-placement.js';
import type { Zones } from './zones.js';

export const ARCHITECTURES = ['x86_64', 'i686'] as const;
export const MAX_SLOTS = 16;

export interface AllocateVmArgs {
  type: string; name?: string; zone?: string; architecture?: string; systemDiskGiB?: number;
  /** Handed to the guest untouched through the metadata service (a `#!` script, `#cloud-config`, …). */
  userData?: string;
}

function checkArch(a: string): asserts a is Arch {
  if (!(ARCHITECTURES as readonly string[]).includes(a)) throw invalidParams(`architecture must be one of ${ARCHITECTURES.join(', ')} (got ${JSON.stringify(a.slice(0, 20))})`);
}

// The hot reads, compiled once (state/db.ts Precompiled): getVmStatus, getVmInfo, and row(), which
// nearly every VM call starts with.
const VM_ROW = new Precompiled((k, vmId: string) => k.selectFrom('vms').selectAll().where('id', '=', vmId));
const VM_STATUS = new Precompiled((k, vmId: string) => k.selectFrom('vms').select(['id', 'tenant_id', 'power', 'status']).where('id', '=', vmId));
/** The VM with its comment and its zone's name. A VM allocated without a zone is in its host's zone
 * while it is placed; `zone_ref` is the zone id it is in (null: none), `zone_name` null if that zone is gone. */
const VM_INFO = new Precompiled((k, vmId: string) => k.selectFrom('vms')
  .leftJoin('comments', 'comments.resource_id', 'vms.id')
  .leftJoin('hosts', (j) => j.onRef('hosts.id', '=', 'vms.host_id').on('vms.zone_id', 'is', null))
  .leftJoin('zones', (j) => j.on((eb) => eb('zones.id', '=', eb.fn.coalesce('vms.zone_id', 'hosts.zone_id'))))
  .select([
    'vms.id', 'vms.tenant_id', 'vms.name', 'vms.type', 'vms.architecture', 'vms.resource_type', 'vms.vcpus', 'vms.memory_mib',
    'vms.status', 'vms.power', 'vms.host_id', 'vms.created_at', 'comments.comment', 'zones.name as zone_name',
  ])
  .select((eb) => eb.fn.coalesce('vms.zone_id', 'hosts.zone_id').as('zone_ref'))
  .where('vms.id', '=', vmId));
const VM_DISKS = new Precompiled((k, vmId: string) => k.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
  .select(['vm_disks.slot', 'vm_disks.volume_id', 'volumes.size_gib']).where('vm_disks.vm_id', '=', vmId).orderBy('vm_disks.slot'));
/** The NICs with their addresses, one row per address (ip null: a NIC without any). An address is always
 * on its NIC's network (networks.ts assignIp); joining on that too lets the lookup use nic_addresses'
 * primary key (network_id, ip), as the table has no index on vm_id. */
const VM_NICS = new Precompiled((k, vmId: string) => k.selectFrom('vm_nics')
  .leftJoin('nic_addresses', (j) => j.onRef('nic_addresses.network_id', '=', 'vm_nics.network_id')
    .onRef('nic_addresses.vm_id', '=', 'vm_nics.vm_id').onRef('nic_addresses.slot', '=', 'vm_nics.slot'))
  .select(['vm_nics.slot', 'vm_nics.network_id', 'vm_nics.mac', 'nic_addresses.ip'])
  .where('vm_nics.vm_id', '=', vmId).orderBy('vm_nics.slot').orderBy('nic_addresses.ip'));

export class Vms {
  constructor(
    private readonly db: Db, private readonly events: Events, private readonly requests: Requests,
    private readonly types: VmTypes, private readonly zones: Zones, private readonly policy: SchedulerPolicy,
    private readonly maps: BlockMaps,
  ) {}

  /** A VM the caller may see; another tenant's VM is "not found", never "forbidden". */
  async row(q: Q, p: Principal, vmId: string): Promise<VmRow> {
    const vm = await VM_ROW.first(this.db, q, vmId);
    if (!vm || !visible(p, vm.tenant_id)) throw notFound('VM', vmId);
    return vm;
  }

  /** Slot changes and type changes need a VM that is off with nothing queued that could start it. */
  async requireStopped(q: Q, vm: VmRow, action: string): Promise<void> {
    // Inside a transaction, hold the VM's lock (as submitPower does) so that no request is queued
    // and no other slot change made between this check and the caller's commit.
    if (q.isTransaction) await this.db.lock(q as Tx, `vm:${vm.id}`);
    if (vm.status !== 'stopped') throw invalidState(`${action} needs ${vm.id} stopped; it is ${vm.status}`);
    const active = await activeOn(q, vm.id);
    if (active.length) throw new KumoError(Fault.CONFLICT, `${vm.id} has ${active[0].method} ${active[0].id} ${active[0].status}`);
  }

  async list(p: Principal) {
    let q = this.db.k.selectFrom('vms').select(['id', 'name', 'type', 'status']).orderBy('created_at').orderBy('id');
    if (!p.admin) q = q.where('tenant_id', '=', p.tenantId);
    return (await q.execute()).map((v) => ({ vmId: v.id, name: v.name, type: v.type, status: v.status }));
  }

  async info(p: Principal, vmId: string) {
    const vm = await VM_INFO.first(this.db, this.db.k, vmId);
    if (!vm || !visible(p, vm.tenant_id)) throw notFound('VM', vmId);
    if (vm.zone_ref !== null && vm.zone_name === null) throw notFound('zone', vm.zone_ref);
    const [disks, nics] = await Promise.all([VM_DISKS.execute(this.db, this.db.k, vmId), VM_NICS.execute(this.db, this.db.k, vmId)]);
    const nicList: { slot: number; networkId: string; mac: string; ipAddresses: string[] }[] = [];
    for (const n of nics) {
      let nic = nicList[nicList.length - 1];
      if (nic?.slot !== n.slot) nicList.push(nic = { slot: n.slot, networkId: n.network_id, mac: n.mac, ipAddresses: [] });
      if (n.ip !== null) nic.ipAddresses.push(n.ip);
    }
    return {
      vmId: vm.id, name: vm.name, type: vm.type, architecture: vm.architecture, resourceType: vm.resource_type,
      vcpus: vm.vcpus, memoryMiB: vm.memory_mib, status: vm.status, power: vm.power, zone: vm.zone_name ?? '', host: vm.host_id ?? '',
      disks: disks.map((d) => ({ slot: d.slot, volumeId: d.volume_id, sizeGiB: d.size_gib })),
      nics: nicList,
      createdAt: vm.created_at, comment: vm.comment ?? '',
    };
  }

  async status(p: Principal, vmId: string) {
    const vm = await VM_STATUS.first(this.db, this.db.k, vmId);
    if (!vm || !visible(p, vm.tenant_id)) throw notFound('VM', vmId);
    const active = await activeOn(this.db.k, vmId, this.db);
    return { vmId: vm.id, power: vm.power, status: vm.status, requestId: active[0]?.id ?? '' };
  }

  async allocate(p: Principal, a: AllocateVmArgs): Promise<string> {
    const vmId = newId('vm');
    const name = a.name ?? vmId;
    checkName(name);
    const arch = a.architecture ?? 'x86_64';
    checkArch(arch);
    if (a.userData !== undefined) checkUserData(a.userData);
    await this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `tenant:${p.tenantId}`);
      const t = await this.types.get(trx, a.type);
      const diskGiB = a.systemDiskGiB ?? t.systemDiskGiB;
      checkRange(diskGiB, t.systemDiskGiB, 16384, `systemDiskGiB for ${t.type}`);
      const zone = a.zone === undefined || a.zone === '' ? null : (await this.zones.resolve(trx, a.zone)).id;
      await checkQuota(trx, p.tenantId, { vms: 1, vcpus: t.vcpus, memoryMiB: t.memoryMiB, volumes: 1, volumeGiB: diskGiB });
      const at = now();
      await trx.insertInto('vms').values({
        id: vmId, tenant_id: p.tenantId, name, type: t.type, architecture: arch, resource_type: t.resourceType,
        vcpus: t.vcpus, memory_mib: t.memoryMiB, status: 'stopped', power: 'off', zone_id: zone, host_id: null, created_at: at, updated_at: at,
      }).execute();
      const volId = newId('vol');
      await trx.insertInto('volumes').values({
        id: volId, tenant_id: p.tenantId, name: `${name}-system`.slice(0, 63), size_gib: diskGiB, class: 'best-effort', iops: 0,
        replicas: await defaultReplicas(trx), zone_id: zone, encrypted: 0, system: 1, created_at: at,
      }).execute();
      await this.maps.placeNew(trx, volId);
      await trx.insertInto('vm_disks').values({ vm_id: vmId, slot: 0, volume_id: volId }).execute();
      if (a.userData) await trx.insertInto('vm_user_data').values({ vm_id: vmId, data: Buffer.from(a.userData, 'utf8').toString('base64') }).execute();
      await this.events.publish(trx, p.tenantId, 'vm.allocated', vmId, { type: t.type });
    });
    return vmId;
  }

  async deallocate(p: Principal, vmId: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      const vm = await this.row(trx, p, vmId);
      await this.requireStopped(trx, vm, 'deallocateVm');
      const system = await trx.selectFrom('vm_disks').select('volume_id').where('vm_id', '=', vmId).where('slot', '=', 0).executeTakeFirst();
      await trx.deleteFrom('vm_disks').where('vm_id', '=', vmId).execute();
      if (system) {
        await this.maps.dropVolume(trx, system.volume_id);
        await trx.deleteFrom('comments').where('resource_id', '=', system.volume_id).execute();
        await trx.deleteFrom('volumes').where('id', '=', system.volume_id).execute();
      }
      await trx.deleteFrom('nic_addresses').where('vm_id', '=', vmId).execute();
      await trx.deleteFrom('vm_nics').where('vm_id', '=', vmId).execute();
      await trx.deleteFrom('comments').where('resource_id', '=', vmId).execute();
      await trx.deleteFrom('vms').where('id', '=', vmId).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.deallocated', vmId);
    });
    return true;
  }

  /** The same check the engine makes when it runs the request, made early so a full cloud answers
   * NO_CAPACITY at once instead of through a failed request. */
  private async dryRunPlacement(q: Q, vm: VmRow): Promise<void> {
    if (vm.host_id) return;
    const r = place(await capacitySnapshot(q), {
      vmId: vm.id, tenantId: vm.tenant_id, vcpus: vm.vcpus, memoryMiB: vm.memory_mib,
      resourceType: vm.resource_type as never, architecture: vm.architecture as Arch, zone: vm.zone_id,
    }, this.policy);
    if (!r.ok) throw new KumoError(Fault.NO_CAPACITY, r.reason);
  }

  private async submitPower(p: Principal, vmId: string, method: string, params: Record<string, unknown>,
    admissible: (vm: VmRow, pending: boolean) => void): Promise<string> {
    return this.db.k.transaction().execute(async (trx) => {
      // Same lock as slot changes: a request check and its insert must not interleave with another's.
      await this.db.lock(trx, `vm:${vmId}`);
      const vm = await this.row(trx, p, vmId);
      const active = await activeOn(trx, vmId);
      const same = active.find((r) => r.method === method);
      if (same) throw new KumoError(Fault.CONFLICT, `${vmId} already has ${method} ${same.id} ${same.status}`);
      admissible(vm, active.length > 0);
      if (method === 'powerOnVm' && active.length === 0) await this.dryRunPlacement(trx, vm);
      return this.requests.submit(trx, vm.tenant_id, method, vmId, params);
    });
  }

  powerOn(p: Principal, vmId: string) {
    return this.submitPower(p, vmId, 'powerOnVm', {}, (vm, pending) => {
      if (!pending && vm.status !== 'stopped' && vm.status !== 'error') throw invalidState(`${vmId} is ${vm.status}`);
    });
  }

  powerOff(p: Principal, vmId: string, force = false) {
    return this.submitPower(p, vmId, 'powerOffVm', { force }, (vm, pending) => {
      if (!pending && vm.status === 'stopped') throw invalidState(`${vmId} is already stopped`);
    });
  }

  reset(p: Principal, vmId: string) {
    return this.submitPower(p, vmId, 'resetVm', {}, (vm, pending) => {
      if (!pending && vm.status !== 'running') throw invalidState(`resetVm needs ${vmId} running; it is ${vm.status}`);
    });
  }

  async changeType(p: Principal, vmId: string, type: string): Promise<true> {
    await this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `tenant:${p.tenantId}`);
      const vm = await this.row(trx, p, vmId);
      const t = await this.types.get(trx, type);
      await this.requireStopped(trx, vm, 'changeVmType');
      await checkQuota(trx, vm.tenant_id, { vcpus: t.vcpus - vm.vcpus, memoryMiB: t.memoryMiB - vm.memory_mib });
      await trx.updateTable('vms').set({ type: t.type, vcpus: t.vcpus, memory_mib: t.memoryMiB, resource_type: t.resourceType, updated_at: now() })
        .where('id', '=', vmId).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.changed', vmId, { type: t.type });
    });
    return true;
  }

  async changeArchitecture(p: Principal, vmId: string, arch: string): Promise<true> {
    checkArch(arch);
    await this.db.k.transaction().execute(async (trx) => {
      const vm = await this.row(trx, p, vmId);
      await this.requireStopped(trx, vm, 'changeVmArchitecture');
      await trx.updateTable('vms').set({ architecture: arch, updated_at: now() }).where('id', '=', vmId).execute();
      await this.events.publish(trx, vm.tenant_id, 'vm.changed', vmId, { architecture: arch });
    });
    return true;
  }

  /** Queues the write of an image onto the VM's system volume (requests/handlers/restore.ts). */
  async restoreImage(p: Principal, vmId: string, imageId: string): Promise<string> {
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vm:${vmId}`);
      const vm = await this.row(trx, p, vmId);
      const img = await trx.selectFrom('images').select(['id', 'tenant_id', 'dir', 'size_bytes']).where('id', '=', imageId).executeTakeFirst();
      // The image must be one the VM's own tenant may use, whoever asks (an admin too).
      if (!img || !visible(p, img.tenant_id) || (img.tenant_id !== null && img.tenant_id !== vm.tenant_id)) throw notFound('image', imageId);
      if (img.dir === '') throw invalidState(`image ${imageId} has no disk in the image store`);
      const sys = await trx.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
        .select(['volumes.id', 'volumes.size_gib']).where('vm_disks.vm_id', '=', vmId).where('vm_disks.slot', '=', 0).executeTakeFirst();
      if (!sys) throw invalidState(`${vmId} has no system volume`);
      if (Number(img.size_bytes) > sys.size_gib * 1024 ** 3) {
        throw invalidParams(`image ${imageId} (${Number(img.size_bytes)} bytes) does not fit ${vmId}'s system volume ${sys.id} (${sys.size_gib} GiB)`);
      }
      await this.requireStopped(trx, vm, 'restoreImage');
      return this.requests.submit(trx, vm.tenant_id, 'restoreImage', vmId, { imageId });
    });
  }

  /**
   * migrateVm: queues a live migration (requests/handlers/migrate.ts). The destination is checked
   * here for what the caller can fix (no such host or zone, the VM's own host); capacity and the
   * pre-copy prediction are the request's to judge, with the numbers in its error.
   */
  async migrate(p: Principal, vmId: string, target: { host?: string; zone?: string; followStorage?: boolean }): Promise<string> {
    if (target.host !== undefined && !p.admin) throw new KumoError(Fault.AUTHORIZATION, 'choosing the destination host is for administrators');
    if (target.host !== undefined) {
      const h = await this.db.k.selectFrom('hosts').select('id').where('id', '=', target.host).executeTakeFirst();
      if (!h) throw notFound('host', target.host);
    }
    const zone = target.zone === undefined ? undefined : (await this.zones.resolve(this.db.k, target.zone)).id;
    return this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `vm:${vmId}`);
      const vm = await this.row(trx, p, vmId);
      if (vm.status !== 'running' || !vm.host_id) throw invalidState(`migrateVm needs ${vmId} running; it is ${vm.status}`);
      if (target.host === vm.host_id) throw invalidState(`${vmId} already runs on ${target.host}`);
      const active = await activeOn(trx, vm.id);
      if (active.length) throw new KumoError(Fault.CONFLICT, `${vm.id} has ${active[0].method} ${active[0].id} ${active[0].status}`);
      return this.requests.submit(trx, vm.tenant_id, 'migrateVm', vmId, {
        ...(target.host !== undefined ? { host: target.host } : {}), ...(zone !== undefined ? { zone } : {}),
        followStorage: target.followStorage === true,
      });
    });
  }
}
