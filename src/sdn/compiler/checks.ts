/**
 * The consistency rules of Topology + Placement, shared by compile() and SdnState so both refuse
 * exactly the same inputs. Each check appends human-readable problems instead of throwing, so a
 * caller can report every problem at once (see errors.ts).
 */
import { isIPv4 } from 'node:net';
import { tapName } from '../../compute/qemu/taps.js';
import { isInterfaceName } from '../model/names.js';
import {
  VLAN_MAX, VLAN_MIN,
  type PlacedNetwork, type PlacedNic, type PortConfig, type Topology, type TopologyEdge, type TopologyHost, type TopologyZone,
} from '../types.js';
import { sortedUnique } from './order.js';

/** VXLAN carries 24 bits; 0 is left out because no network should ever mean "no VNI". */
const VNI_WIRE_MAX = 0xffffff;

export interface TopologyIndex {
  zones: Map<string, TopologyZone>;
  edges: Map<string, TopologyEdge>;
  hosts: Map<string, TopologyHost>;
  /** The zone flagged gatewayZone, if any. */
  gatewayZone: string | null;
}

export function indexTopology(t: Topology, problems: string[]): TopologyIndex {
  const zones = new Map<string, TopologyZone>(), edges = new Map<string, TopologyEdge>(), hosts = new Map<string, TopologyHost>();
  let gatewayZone: string | null = null;
  const underlay = new Map<string, string>();
  for (const z of t.zones) {
    if (zones.has(z.zoneId)) { problems.push(`zone ${z.zoneId} is listed twice`); continue; }
    zones.set(z.zoneId, z);
    if (z.gatewayZone) {
      if (gatewayZone !== null) problems.push(`zones ${gatewayZone} and ${z.zoneId} are both the gateway zone`);
      else gatewayZone = z.zoneId;
    }
    if (z.gateway) {
      const other = underlay.get(z.gateway.underlayIp);
      if (other !== undefined) problems.push(`zones ${other} and ${z.zoneId} give their gateways the same underlay address ${z.gateway.underlayIp}`);
      underlay.set(z.gateway.underlayIp, z.zoneId);
      if (!isInterfaceName(z.gateway.downlink)) problems.push(`zone ${z.zoneId}: gateway downlink "${z.gateway.downlink}" is not an interface name`);
    }
  }
  for (const e of t.edges) {
    if (edges.has(e.edgeId)) { problems.push(`edge ${e.edgeId} is listed twice`); continue; }
    edges.set(e.edgeId, e);
    if (!zones.has(e.zoneId)) problems.push(`edge ${e.edgeId}: unknown zone ${e.zoneId}`);
    if (!isInterfaceName(e.uplink)) problems.push(`edge ${e.edgeId}: uplink "${e.uplink}" is not an interface name`);
  }
  const edgePorts = new Map<string, string>();
  for (const h of t.hosts) {
    if (hosts.has(h.hostId)) { problems.push(`host ${h.hostId} is listed twice`); continue; }
    hosts.set(h.hostId, h);
    if (!zones.has(h.zoneId)) problems.push(`host ${h.hostId}: unknown zone ${h.zoneId}`);
    if (!isInterfaceName(h.uplink)) problems.push(`host ${h.hostId}: uplink "${h.uplink}" is not an interface name`);
    if (h.edge === null) continue;
    const e = edges.get(h.edge.edgeId);
    if (!e) { problems.push(`host ${h.hostId}: unknown edge ${h.edge.edgeId}`); continue; }
    if (e.zoneId !== h.zoneId) problems.push(`host ${h.hostId} is in zone ${h.zoneId} but its edge ${e.edgeId} is in zone ${e.zoneId}`);
    if (!isInterfaceName(h.edge.port)) problems.push(`host ${h.hostId}: edge port "${h.edge.port}" is not an interface name`);
    const key = `${e.edgeId}\0${h.edge.port}`;
    const other = edgePorts.get(key);
    if (other !== undefined) problems.push(`hosts ${other} and ${h.hostId} share port ${h.edge.port} on edge ${e.edgeId}`);
    else edgePorts.set(key, h.hostId);
  }
  return { zones, edges, hosts, gatewayZone };
}

/** The checks on one network alone; uniqueness across networks is the caller's (see NetworkIndex). */
export function checkNetwork(n: PlacedNetwork, zones: ReadonlyMap<string, TopologyZone>, problems: string[]): void {
  if (!Number.isInteger(n.vni) || n.vni < 1 || n.vni > VNI_WIRE_MAX) problems.push(`network ${n.networkId}: VNI ${n.vni} is not in 1..${VNI_WIRE_MAX}`);
  if (!Number.isInteger(n.prefix) || n.prefix < 0 || n.prefix > 32) problems.push(`network ${n.networkId}: prefix ${n.prefix} is not in 0..32`);
  for (const zoneId in n.zoneVlans) {
    const vlan = n.zoneVlans[zoneId];
    if (!zones.has(zoneId)) problems.push(`network ${n.networkId}: VLAN ${vlan} in unknown zone ${zoneId}`);
    if (!isVlanId(vlan)) problems.push(`network ${n.networkId}: VLAN ${vlan} in zone ${zoneId} is outside ${VLAN_MIN}..${VLAN_MAX}`);
  }
}

export const isVlanId = (v: number): boolean => Number.isInteger(v) && v >= VLAN_MIN && v <= VLAN_MAX;

/**
 * The port a NIC becomes on its host, or null with the reasons appended. The caller looks up the
 * host (undefined: unknown) and the network's VLAN in the host's zone, each in its own maps. This runs once per NIC
 * in a full compile (300,000 in bench/sdn): it allocates nothing beyond the port unless it fails.
 */
export function nicPort(
  nic: PlacedNic, host: TopologyHost | undefined, networkKnown: boolean, vlan: number | undefined, problems: string[],
): PortConfig | null {
  const start = problems.length;
  let port = '';
  try { port = tapName(nic.vmId, nic.slot); } catch (e) { problems.push(`${nicWhere(nic)}: ${(e as Error).message}`); }
  if (!host) problems.push(`${nicWhere(nic)}: unknown host`);
  if (!MAC.test(nic.mac)) problems.push(`${nicWhere(nic)}: MAC "${nic.mac}" is not of the form 52:54:00:12:34:56`);
  for (const ip of nic.ips) if (!isIPv4(ip)) problems.push(`${nicWhere(nic)}: "${ip}" is not an IPv4 address (the anti-spoofing rules are IPv4 only)`);
  if (!networkKnown) problems.push(`${nicWhere(nic)}: unknown network ${nic.networkId}`);
  else if (host && vlan === undefined) problems.push(`${nicWhere(nic)}: network ${nic.networkId} has no VLAN in zone ${host.zoneId}`);
  if (problems.length > start || vlan === undefined) return null;
  const ips = nic.ips.length < 2 ? nic.ips.slice() : sortedUnique(nic.ips);
  return { port, vlan, mac: nic.mac.toLowerCase(), ips };
}

const nicWhere = (nic: PlacedNic): string => `nic ${nic.vmId}/${nic.slot} on host ${nic.hostId}`;

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** `address/prefix`, what `ip address add` takes. */
export const gatewayAddress = (n: PlacedNetwork): string => `${n.gateway}/${n.prefix}`;

export interface NetworkIndex {
  networks: Map<string, PlacedNetwork>;
  /** zoneId → VLAN → the network holding it there. */
  byZoneVlan: Map<string, Map<number, PlacedNetwork>>;
  /** zoneId → networkId → its VLAN there: a NIC's lookup, in a map a tenth the size of `networks`. */
  byZoneNetwork: Map<string, Map<string, number>>;
}

/** Indexes the networks, refusing shared ids, shared VNIs and two networks on one VLAN in a zone. */
export function indexNetworks(nets: readonly PlacedNetwork[], zones: ReadonlyMap<string, TopologyZone>, problems: string[]): NetworkIndex {
  const networks = new Map<string, PlacedNetwork>();
  const byVni = new Map<number, string>();
  const byZoneVlan = new Map<string, Map<number, PlacedNetwork>>();
  const byZoneNetwork = new Map<string, Map<string, number>>();
  for (const n of nets) {
    if (networks.has(n.networkId)) { problems.push(`network ${n.networkId} is listed twice`); continue; }
    networks.set(n.networkId, n);
    checkNetwork(n, zones, problems);
    const other = byVni.get(n.vni);
    if (other !== undefined) problems.push(`networks ${other} and ${n.networkId} share VNI ${n.vni}`);
    else byVni.set(n.vni, n.networkId);
    for (const zoneId in n.zoneVlans) {
      const vlan = n.zoneVlans[zoneId];
      let z = byZoneVlan.get(zoneId);
      if (!z) byZoneVlan.set(zoneId, (z = new Map()));
      const holder = z.get(vlan);
      if (holder) problems.push(`networks ${holder.networkId} and ${n.networkId} share VLAN ${vlan} in zone ${zoneId}`);
      else z.set(vlan, n);
      let zn = byZoneNetwork.get(zoneId);
      if (!zn) byZoneNetwork.set(zoneId, (zn = new Map()));
      zn.set(n.networkId, vlan);
    }
  }
  return { networks, byZoneVlan, byZoneNetwork };
}
