import { VLAN_MAX, VLAN_MIN } from '../types.js';

/**
 * Per-zone VLAN ID pools (DESIGN.md §5, seed 002): each zone is its own VLAN domain, so a VLAN ID
 * means something only together with its zone. A zone's pool is plain data, networkId → VLAN, so the
 * state store's rows (network_zone_vlans) and tests build the same thing.
 */
export type ZonePool = Readonly<Record<string, number>>;

/** IDs a zone can hand out: VLAN_MIN..VLAN_MAX (4,093). */
export const VLAN_COUNT = VLAN_MAX - VLAN_MIN + 1;

export const isVlan = (v: number) => Number.isInteger(v) && v >= VLAN_MIN && v <= VLAN_MAX;

/**
 * The lowest VLAN ID not in `used`, or null when the zone has none left. Lowest-first keeps the IDs
 * in use dense, which keeps edge trunk lists short and a returned ID the first one reused.
 */
export function lowestFreeVlan(used: Iterable<number>): number | null {
  const taken = new Uint8Array(VLAN_MAX + 1);
  for (const v of used) if (isVlan(v)) taken[v] = 1;
  for (let v = VLAN_MIN; v <= VLAN_MAX; v++) if (!taken[v]) return v;
  return null;
}

/** Gives `networkId` a VLAN in the pool (its current one when it has one); null when the pool is empty. */
export function allocateVlan(pool: ZonePool, networkId: string): { pool: ZonePool; vlan: number } | null {
  const held = pool[networkId];
  if (held !== undefined) return { pool, vlan: held };
  const vlan = lowestFreeVlan(Object.values(pool));
  return vlan === null ? null : { pool: { ...pool, [networkId]: vlan }, vlan };
}

/** Returns the network's VLAN to the pool (nothing happens when it held none). */
export function releaseVlan(pool: ZonePool, networkId: string): ZonePool {
  if (!(networkId in pool)) return pool;
  const { [networkId]: _gone, ...rest } = pool;
  return rest;
}
