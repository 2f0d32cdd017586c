import type { Compiled } from './policy.js';
import { NO_SDN, type SdnView } from './sdn-view.js';
import type { HostCapacity, VmDemand } from './types.js';

const fmt = (n: number): string => String(Math.floor(n));

/**
 * Why no host took the VM: each host is charged to the first filter rejecting it, and capacity
 * filters add the closest miss. `preRejected` carries hosts a caller skipped without scanning
 * (CapacityIndex skips other zones and pools), keyed by filter name.
 */
export function explain(
  hosts: readonly HostCapacity[], vm: VmDemand, c: Compiled, preRejected: Readonly<Record<string, number>> = {}, sdn: SdnView = NO_SDN,
): string {
  const { filters, policy } = c;
  const count = filters.map((f) => preRejected[f.name] ?? 0);
  const bestFit = filters.map(() => -Infinity);
  for (const h of hosts) {
    const f = filters.findIndex((x) => !x.pass(h, vm, policy, sdn));
    if (f < 0) continue;
    count[f]++;
    const s = filters[f].shortfall;
    if (s) bestFit[f] = Math.max(bestFit[f], s.headroom(h, vm, policy, sdn));
  }
  const parts: string[] = [];
  filters.forEach((f, i) => {
    if (count[i] === 0) return;
    let part = `${count[i]} ${f.rejects(vm)}`;
    const s = f.shortfall;
    if (s && bestFit[i] > -Infinity) part += ` (best fit ${fmt(bestFit[i])} ${s.unit} free, need ${s.need(vm)} ${s.unit})`;
    parts.push(part);
  });
  return `no host can take ${vm.vmId}: ${parts.length ? parts.join(', ') : 'no hosts'}`;
}
