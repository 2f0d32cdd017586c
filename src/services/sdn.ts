import type { Placement } from '../sdn/types.js';
import type { Db, Q, Tx } from '../state/db.js';
import { placement, placementForHost } from './sdn-placement.js';
import { acquireZoneVlans, releaseVmVlans, releaseZoneVlans } from './zone-vlans.js';

/**
 * The SDN state for the request handlers and the compiler, with the store bound: zone VLANs that
 * follow placed members (zone-vlans.ts) and the Placement read from the rows (sdn-placement.ts).
 * The VLAN calls take the caller's transaction: the one that sets or clears vms.host_id.
 */
export class Sdn {
  constructor(private readonly db: Db) {}

  /** In the placement transaction: VLANs for the VM's private networks in `zoneId` and the gateway zone. */
  acquireZoneVlans(trx: Tx, vmId: string, zoneId: string): Promise<void> { return acquireZoneVlans(this.db, trx, vmId, zoneId); }

  /** Once the VM has left its host (host_id cleared or moved): VLANs no placed NIC needs go back. */
  releaseVmVlans(trx: Tx, vmId: string): Promise<number> { return releaseVmVlans(this.db, trx, vmId); }

  /** Sweeps a zone (e.g. after a crash took several VMs off a host): VLANs no placed NIC needs go back. */
  releaseZoneVlans(trx: Tx, zoneId: string): Promise<number> { return releaseZoneVlans(this.db, trx, zoneId); }

  placement(q: Q = this.db.k): Promise<Placement> { return placement(q); }

  placementForHost(hostId: string, q: Q = this.db.k): Promise<Placement> { return placementForHost(q, hostId); }
}
