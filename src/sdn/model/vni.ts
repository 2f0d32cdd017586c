import { randomInt } from 'node:crypto';

/**
 * VXLAN network identifiers: one global VNI per private network (24 bits). The low 4096 are left
 * out so a VNI is never mistaken for a VLAN ID in logs and device dumps.
 */
export const VNI_MIN = 4096;
export const VNI_MAX = 16777215;

export interface VniRange { min: number; max: number }
export const VNI_RANGE: VniRange = { min: VNI_MIN, max: VNI_MAX };

export const isVni = (v: number, r: VniRange = VNI_RANGE) => Number.isInteger(v) && v >= r.min && v <= r.max;

/**
 * A VNI for which `taken` says no, or null after `tries` probes. Random probes cost O(1) expected
 * lookups while the space is far from full (50,000 networks use 0.3 % of it) and never depend on
 * how many are in use, which a lowest-free scan over the store would. `taken` may ask the store.
 */
export async function pickVni(
  taken: (vni: number) => boolean | Promise<boolean>,
  opts: { range?: VniRange; tries?: number; random?: (min: number, maxExclusive: number) => number } = {},
): Promise<number | null> {
  const { range = VNI_RANGE, tries = 64, random = randomInt } = opts;
  for (let i = 0; i < tries; i++) {
    const vni = random(range.min, range.max + 1);
    if (!(await taken(vni))) return vni;
  }
  return null;
}
