import { passesCore } from './filters.js';
import type { Compiled } from './policy.js';
import { SdnMemo } from './sdn-memo.js';
import { NO_SDN, usesSdn, type SdnView } from './sdn-view.js';
import { freeMemory, freeVcpu } from './weighers.js';
import type { HostCapacity, VmDemand } from './types.js';

/**
 * The best host among `hosts` for the VM, or undefined. This is the hot loop: it allocates
 * nothing per host and keeps no tally, since why a placement failed is only worked out when it
 * does fail (see explain). The core filters and weighers are called directly so they inline;
 * filters and weighers added later go through their lists.
 */
export function scan(hosts: readonly HostCapacity[], vm: VmDemand, c: Compiled, sdn: SdnView = NO_SDN): HostCapacity | undefined {
  const { policy, extraFilters, memoryWeight, vcpuWeight, affinityWeight, extraWeighers, extraWeights } = c;
  const nf = extraFilters.length, nw = extraWeighers.length;
  // With no SDN view or a VM without NICs the SDN filters all pass and the weigher scores 0.
  const memo = sdn !== NO_SDN && usesSdn(vm) ? new SdnMemo(vm, sdn) : null;
  let best: HostCapacity | undefined;
  let bestScore = -Infinity;
  outer: for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i];
    if (!passesCore(h, vm, policy)) continue;
    if (memo !== null && !memo.passes(h)) continue;
    for (let f = 0; f < nf; f++) if (!extraFilters[f].pass(h, vm, policy, sdn)) continue outer;
    let score = 0;
    if (memoryWeight !== 0) score += memoryWeight * freeMemory(h, vm, policy);
    if (vcpuWeight !== 0) score += vcpuWeight * freeVcpu(h, vm, policy);
    if (affinityWeight !== 0 && memo !== null) score += affinityWeight * memo.affinity(h);
    for (let w = 0; w < nw; w++) score += extraWeights[w] * extraWeighers[w](h, vm, policy, sdn);
    // hostId breaks ties so the choice does not depend on the order hosts are listed in.
    if (best === undefined || score > bestScore || (score === bestScore && h.hostId < best.hostId)) {
      best = h;
      bestScore = score;
    }
  }
  return best;
}
