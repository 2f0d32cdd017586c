import { vlansAvailable } from './filters.js';
import { edgeOf, nicCount, type EdgeView, type SdnView } from './sdn-view.js';
import type { HostCapacity, NetworkDemand, VmDemand } from './types.js';

/**
 * The SDN filters and weigher for one scan, memoised: their answers depend on the host only
 * through its zone and its edge, and a scan meets hosts grouped by zone (CapacityIndex buckets)
 * and mostly by edge, so each zone and edge is worked out once instead of once per host (bench/sdn
 * scans 1,000 hosts per VM). It must answer exactly as vlansAvailable, withinMacBudget and
 * vlanAffinity do; the property tests compare scans with those.
 */
export class SdnMemo {
  private readonly nets: readonly NetworkDemand[];
  private readonly nics: number;
  private zone: string | null = null;
  private zoneOk = true;
  /** The VM's networks' VLANs in `zone` (networks without one there are left out). */
  private zoneVlans: number[] = [];
  private edgeKnown = false;
  private edgeId: string | null | undefined;
  private edge: EdgeView | undefined;
  private carried = 0;

  constructor(private readonly vm: VmDemand, private readonly sdn: SdnView) {
    this.nets = vm.networks ?? [];
    this.nics = nicCount(vm);
  }

  /** vlansAvailable && withinMacBudget. */
  passes(h: HostCapacity): boolean {
    this.at(h);
    if (!this.zoneOk) return false;
    const e = this.edge;
    return this.nics === 0 || e === undefined || e.macs + this.nics <= e.macBudget;
  }

  /** vlanAffinity. */
  affinity(h: HostCapacity): number {
    this.at(h);
    return this.nets.length === 0 || this.edge === undefined ? 0 : this.carried / this.nets.length;
  }

  private at(h: HostCapacity): void {
    if (h.zone !== this.zone) {
      this.zone = h.zone;
      this.zoneOk = vlansAvailable(h, this.vm, undefined, this.sdn);
      this.zoneVlans = [];
      for (const n of this.nets) {
        const v = n.zoneVlans[h.zone];
        if (v !== undefined) this.zoneVlans.push(v);
      }
      this.edgeKnown = false;
    }
    const id = h.edgeId;
    if (this.edgeKnown && id === this.edgeId) return;
    this.edgeKnown = true;
    this.edgeId = id;
    this.edge = edgeOf(h, this.sdn);
    this.carried = 0;
    if (this.edge) for (const v of this.zoneVlans) if (this.edge.carries(v)) this.carried++;
  }
}
