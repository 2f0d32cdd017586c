import { Fault, KumoError } from '../core/errors.js';
import type { Q } from '../state/db.js';

/** A tenant's contract limits (seed 002: "contract limits, not system limits"). */
export interface Quota {
  vms: number; vcpus: number; memoryMiB: number;
  volumes: number; volumeGiB: number; networks: number; ipAddresses: number;
}

export const DEFAULT_QUOTA: Quota = { vms: 50, vcpus: 200, memoryMiB: 409600, volumes: 200, volumeGiB: 20480, networks: 20, ipAddresses: 16 };

export type Usage = Quota;

export async function usage(q: Q, tenantId: string): Promise<Usage> {
  const [vm, vol, net, ips] = await Promise.all([
    q.selectFrom('vms').where('tenant_id', '=', tenantId)
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('vcpus').as('c'), eb.fn.sum<number>('memory_mib').as('m')]).executeTakeFirst(),
    q.selectFrom('volumes').where('tenant_id', '=', tenantId)
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('size_gib').as('g')]).executeTakeFirst(),
    q.selectFrom('networks').where('tenant_id', '=', tenantId).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst(),
    q.selectFrom('ip_allocations').where('tenant_id', '=', tenantId).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst(),
  ]);
  // PostgreSQL returns COUNT/SUM as strings (bigint/numeric): normalise.
  return {
    vms: Number(vm?.n ?? 0), vcpus: Number(vm?.c ?? 0), memoryMiB: Number(vm?.m ?? 0),
    volumes: Number(vol?.n ?? 0), volumeGiB: Number(vol?.g ?? 0), networks: Number(net?.n ?? 0), ipAddresses: Number(ips?.n ?? 0),
  };
}

/** Throws QUOTA_EXCEEDED naming every limit that `delta` would pass. Call inside the writing transaction. */
export async function checkQuota(q: Q, tenantId: string, delta: Partial<Quota>): Promise<void> {
  const t = await q.selectFrom('tenants').select('quota').where('id', '=', tenantId).executeTakeFirstOrThrow();
  const limit: Quota = { ...DEFAULT_QUOTA, ...JSON.parse(t.quota) };
  const used = await usage(q, tenantId);
  const over = (Object.keys(delta) as (keyof Quota)[])
    .filter((k) => (delta[k] ?? 0) > 0 && used[k] + (delta[k] ?? 0) > limit[k])
    .map((k) => `${k} ${used[k]} + ${delta[k]} > ${limit[k]}`);
  if (over.length) throw new KumoError(Fault.QUOTA_EXCEEDED, `tenant quota exceeded: ${over.join(', ')}`);
}
