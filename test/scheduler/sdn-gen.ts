/** Arbitraries for the SDN side of the scheduler: edges, VLAN pools, and VMs with networks. */
import fc from 'fast-check';
import type { EdgeCapacity, HostCapacity, NetworkDemand, Overcommit, Snapshot, VlanPool, VmDemand } from '../../src/scheduler/index.js';
import { ZONES, demandArb, hostsArb } from './gen.js';

export const EDGES_PER_ZONE = 2;
export const edgeId = (zone: string, k: number): string => `e-${zone}-${k}`;
export const NETWORKS = ['n0', 'n1', 'n2', 'n3'];

/** Network i's VLAN in a zone: distinct within each zone, different across zones (a VLAN ID means something only in its zone). */
export const vlanOf = (i: number, zone: string): number => 10 + ((i + ZONES.indexOf(zone)) % NETWORKS.length);

/** Zone VLANs of the networks: a network holds a VLAN in some zones, distinct within each zone. */
export const networkTableArb: fc.Arbitrary<NetworkDemand[]> = fc.array(
  fc.array(fc.boolean(), { minLength: ZONES.length, maxLength: ZONES.length }), { minLength: NETWORKS.length, maxLength: NETWORKS.length },
).map((has) => NETWORKS.map((networkId, i) => ({
  networkId,
  zoneVlans: Object.fromEntries(ZONES.flatMap((z, j) => (has[i][j] ? [[z, vlanOf(i, z)]] : []))),
})));

const edgeArb = (zone: string, k: number): fc.Arbitrary<EdgeCapacity> => fc.record({
  macBudget: fc.integer({ min: 0, max: 12 }),
  fill: fc.integer({ min: 0, max: 100 }),
  vlans: fc.subarray([10, 11, 12, 13]),
}).map(({ macBudget, fill, vlans }) => ({ edgeId: edgeId(zone, k), zone, macBudget, macs: Math.floor((macBudget * fill) / 100), vlans }));

export interface SdnWorld { snapshot: Snapshot; demands: VmDemand[]; table: NetworkDemand[] }

/** Hosts wired to their zone's edges (a few not wired), edges within budget, pools of 0–3 free VLANs. */
export const sdnWorldArb = (oc: Overcommit, maxDemands = 30): fc.Arbitrary<SdnWorld> => fc.record({
  hosts: hostsArb(oc, 20),
  wiring: fc.array(fc.integer({ min: -1, max: EDGES_PER_ZONE - 1 }), { minLength: 20, maxLength: 20 }),
  // A few hosts wired to another zone's edge: inconsistent, but the scheduler must still answer alike.
  crossed: fc.array(fc.option(fc.constantFrom(...ZONES), { freq: 8, nil: undefined }), { minLength: 20, maxLength: 20 }),
  edges: fc.tuple(...ZONES.flatMap((z) => Array.from({ length: EDGES_PER_ZONE }, (_, k) => edgeArb(z, k)))),
  pools: fc.array(fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }), { minLength: ZONES.length, maxLength: ZONES.length }),
  gatewayZone: fc.option(fc.constantFrom(...ZONES), { freq: 3, nil: null }),
  table: networkTableArb,
  demands: fc.array(fc.record({ d: demandArb, nets: fc.subarray(NETWORKS, { maxLength: 3 }), extraNics: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }) }), { minLength: 1, maxLength: maxDemands }),
}).map(({ hosts, wiring, crossed, edges, pools, gatewayZone, table, demands }) => {
  const wired: HostCapacity[] = hosts.map((h, i) => ({ ...h, edgeId: wiring[i] < 0 ? null : edgeId(crossed[i] ?? h.zone, wiring[i]) }));
  const vlanPools: VlanPool[] = ZONES.flatMap((zone, i) => (pools[i] === undefined ? [] : [{ zone, free: pools[i]! }]));
  return {
    snapshot: { hosts: wired, edges: [...edges], vlanPools, gatewayZone },
    table,
    demands: demands.map(({ d, nets, extraNics }, i) => {
      const networks = nets.map((id) => table.find((n) => n.networkId === id)!);
      return { ...d, vmId: `vm-${i}`, networks, ...(extraNics === undefined ? {} : { nics: networks.length + extraNics }) };
    }),
  };
});

/** The demand as it would be built once the network model gave VLANs: `extra` added to the table. */
export function withVlans(d: VmDemand, table: NetworkDemand[]): VmDemand {
  return { ...d, networks: (d.networks ?? []).map((n) => table.find((t) => t.networkId === n.networkId)!) };
}
