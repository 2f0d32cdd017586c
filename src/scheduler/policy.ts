import { CORE_FILTERS, FILTERS, SDN_FILTERS, type Filter } from './filters.js';
import { WEIGHERS, freeMemory, freeVcpu, vlanAffinity, type Weigher } from './weighers.js';
import type { Overcommit, SchedulerPolicy, WeigherSpec } from './types.js';

export const DEFAULT_OVERCOMMIT: Readonly<Overcommit> = Object.freeze({ vcpu: 4, memory: 1 });

/**
 * Spread: most free memory after placement, then most free vCPU. The small vCPU weight makes it
 * act as a tie-breaker between hosts whose memory differs by less than a thousandth.
 * VLAN affinity (NHN) weighs as much as memory: an edge that carries all of the VM's VLANs beats
 * one that carries none unless the latter's host has the whole host's memory more free, so VMs of
 * a network gather behind few edges while memory still spreads them among those edges' hosts.
 * It scores 0 for VMs without networks and for snapshots without edges, which then place as before.
 */
export const DEFAULT_WEIGHERS: readonly WeigherSpec[] = Object.freeze([
  Object.freeze({ name: 'freeMemory', weight: 1 }),
  Object.freeze({ name: 'freeVcpu', weight: 0.001 }),
  Object.freeze({ name: 'vlanAffinity', weight: 1 }),
]);

export const DEFAULT_POLICY: SchedulerPolicy = Object.freeze({ overcommit: DEFAULT_OVERCOMMIT, weighers: DEFAULT_WEIGHERS });

export function makePolicy(p: { overcommit?: Partial<Overcommit>; weighers?: readonly WeigherSpec[] } = {}): SchedulerPolicy {
  const policy = { overcommit: { ...DEFAULT_OVERCOMMIT, ...p.overcommit }, weighers: p.weighers ?? DEFAULT_WEIGHERS };
  compile(policy);
  return policy;
}

/** A policy resolved once into flat arrays and numbers, so the per-host loop does no lookups. */
export interface Compiled {
  readonly policy: SchedulerPolicy;
  /** Every filter in order, for explaining failures and for fits(). */
  readonly filters: readonly Filter[];
  /** Filters beyond the core ones, which the scan calls through the list. */
  readonly extraFilters: readonly Filter[];
  /** Summed weights of the weighers the scan calls directly (0 when the policy omits them). */
  readonly memoryWeight: number;
  readonly vcpuWeight: number;
  readonly affinityWeight: number;
  readonly extraWeighers: readonly Weigher[];
  readonly extraWeights: readonly number[];
}

const FIXED = [...CORE_FILTERS, ...SDN_FILTERS];
if (FIXED.some((f, i) => FILTERS[i] !== f)) throw new Error('FILTERS must begin with CORE_FILTERS then SDN_FILTERS, in order');
const EXTRA_FILTERS = FILTERS.slice(FIXED.length);

const cache = new WeakMap<SchedulerPolicy, Compiled>();

/** Policies are treated as immutable once used: the compiled form is cached per object. */
export function compile(policy: SchedulerPolicy): Compiled {
  const hit = cache.get(policy);
  if (hit) return hit;
  for (const [dim, r] of Object.entries(policy.overcommit)) {
    if (!(Number.isFinite(r) && r > 0)) throw new RangeError(`overcommit ${dim} must be a positive number, got ${r}`);
  }
  let memoryWeight = 0, vcpuWeight = 0, affinityWeight = 0;
  const extraWeighers: Weigher[] = [];
  const extraWeights: number[] = [];
  for (const { name, weight } of policy.weighers) {
    const w = Object.hasOwn(WEIGHERS, name) ? WEIGHERS[name] : undefined;
    if (!w) throw new RangeError(`unknown weigher ${name}; known: ${Object.keys(WEIGHERS).join(', ')}`);
    if (!Number.isFinite(weight)) throw new RangeError(`weigher ${name} needs a finite weight, got ${weight}`);
    if (w === freeMemory) memoryWeight += weight;
    else if (w === freeVcpu) vcpuWeight += weight;
    else if (w === vlanAffinity) affinityWeight += weight;
    else { extraWeighers.push(w); extraWeights.push(weight); }
  }
  const compiled: Compiled = {
    policy, filters: FILTERS, extraFilters: EXTRA_FILTERS, memoryWeight, vcpuWeight, affinityWeight, extraWeighers, extraWeights,
  };
  cache.set(policy, compiled);
  return compiled;
}
