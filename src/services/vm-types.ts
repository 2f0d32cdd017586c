import { invalidParams } from '../core/errors.js';
import type { Db, Q } from '../state/db.js';
import type { VmTypeRow } from '../state/schema.js';
import { requireAdmin, type Principal } from './principal.js';
import { checkRange } from './validate.js';

export const RESOURCE_TYPES = ['best-effort', 'guaranteed', 'dedicated'] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

export interface VmType { type: string; vcpus: number; memoryMiB: number; systemDiskGiB: number; resourceType: ResourceType }

/** The default "VM品目" catalog; an operator replaces it with `--vm-types FILE` or the admin API. */
export const DEFAULT_VM_TYPES: VmType[] = [
  { type: 'be.small', vcpus: 1, memoryMiB: 512, systemDiskGiB: 10, resourceType: 'best-effort' },
  { type: 'be.medium', vcpus: 2, memoryMiB: 2048, systemDiskGiB: 20, resourceType: 'best-effort' },
  { type: 'be.large', vcpus: 4, memoryMiB: 8192, systemDiskGiB: 40, resourceType: 'best-effort' },
  { type: 'gr.small', vcpus: 1, memoryMiB: 1024, systemDiskGiB: 10, resourceType: 'guaranteed' },
  { type: 'gr.medium', vcpus: 2, memoryMiB: 4096, systemDiskGiB: 20, resourceType: 'guaranteed' },
  { type: 'gr.large', vcpus: 8, memoryMiB: 16384, systemDiskGiB: 40, resourceType: 'guaranteed' },
  { type: 'dd.medium', vcpus: 4, memoryMiB: 8192, systemDiskGiB: 40, resourceType: 'dedicated' },
  { type: 'dd.large', vcpus: 16, memoryMiB: 65536, systemDiskGiB: 80, resourceType: 'dedicated' },
];

const fromRow = (r: VmTypeRow): VmType => ({ type: r.name, vcpus: r.vcpus, memoryMiB: r.memory_mib, systemDiskGiB: r.system_disk_gib, resourceType: r.resource_type as ResourceType });

export function checkVmType(t: VmType): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,31}$/.test(t.type)) throw invalidParams(`type name must be 1–32 of a-z 0-9 . _ - (got ${JSON.stringify(t.type)})`);
  checkRange(t.vcpus, 1, 256, 'vcpus');
  checkRange(t.memoryMiB, 64, 4194304, 'memoryMiB');
  checkRange(t.systemDiskGiB, 1, 16384, 'systemDiskGiB');
  if (!RESOURCE_TYPES.includes(t.resourceType)) throw invalidParams(`resourceType must be one of ${RESOURCE_TYPES.join(', ')}`);
}

export class VmTypes {
  constructor(private readonly db: Db) {}

  async list(): Promise<VmType[]> {
    return (await this.db.k.selectFrom('vm_types').selectAll().orderBy('name').execute()).map(fromRow);
  }

  async get(q: Q, type: string): Promise<VmType> {
    const r = await q.selectFrom('vm_types').selectAll().where('name', '=', type).executeTakeFirst();
    if (!r) throw invalidParams(`unknown VM type ${JSON.stringify(type)}; getVmTypeList lists the catalog`);
    return fromRow(r);
  }

  /** Adds or replaces catalog entries; existing VMs keep the shape they were given. */
  async put(p: Principal, types: VmType[]): Promise<void> {
    requireAdmin(p);
    types.forEach(checkVmType);
    await this.db.k.transaction().execute(async (trx) => {
      for (const t of types) {
        const row = { vcpus: t.vcpus, memory_mib: t.memoryMiB, system_disk_gib: t.systemDiskGiB, resource_type: t.resourceType };
        await trx.insertInto('vm_types').values({ name: t.type, ...row }).onConflict((oc) => oc.column('name').doUpdateSet(row)).execute();
      }
    });
  }

  async seedDefaults(): Promise<void> {
    const n = await this.db.k.selectFrom('vm_types').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    if (Number(n?.n ?? 0) === 0) {
      await this.db.k.insertInto('vm_types').values(DEFAULT_VM_TYPES.map((t) => ({ name: t.type, vcpus: t.vcpus, memory_mib: t.memoryMiB, system_disk_gib: t.systemDiskGiB, resource_type: t.resourceType }))).execute();
    }
  }
}
