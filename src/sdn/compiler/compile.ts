/**
 * The full compiler: Topology + Placement → one desired config per device (rules in ../types.ts).
 * Pure and deterministic: every array is sorted and objects are built with a fixed key order, so
 * the same input gives byte-identical JSON. It never invents a VLAN: a NIC whose network has no
 * VLAN in its host's zone is an error, as is any other disagreement (see checks.ts).
 */
import {
  EDGE_BRIDGE, GATEWAY_BRIDGE, GATEWAY_VXLAN, HOST_BRIDGE,
  type DesiredConfig, type EdgeConfig, type GatewayConfig, type HostConfig, type PlacedNetwork, type Placement,
  type PortConfig, type Topology, type TopologyZone,
} from '../types.js';
import { gatewayAddress, indexNetworks, indexTopology, nicPort } from './checks.js';
import { raiseIfAny } from './errors.js';
import { byNumber, byText, sortedUnique } from './order.js';

export function compile(t: Topology, p: Placement): DesiredConfig {
  const problems: string[] = [];
  const topo = indexTopology(t, problems);
  const nets = indexNetworks(p.networks, topo.zones, problems);
  const vlanOf = (networkId: string, zoneId: string) => nets.networks.get(networkId)?.zoneVlans[zoneId];
  const hasNetwork = (networkId: string) => nets.networks.has(networkId);

  const ports = new Map<string, PortConfig[]>();
  const owner = new Map<string, string>(); // host + tap → the NIC that has it
  for (const nic of p.nics) {
    const port = nicPort(nic, topo.hosts, hasNetwork, vlanOf, problems);
    if (!port) continue;
    const key = `${nic.hostId}\0${port.port}`, who = `${nic.vmId}/${nic.slot}`;
    const had = owner.get(key);
    if (had !== undefined) {
      problems.push(had === who ? `nic ${who} is placed twice on host ${nic.hostId}` : `nics ${had} and ${who} on host ${nic.hostId} both get tap ${port.port}`);
      continue;
    }
    owner.set(key, who);
    let list = ports.get(nic.hostId);
    if (!list) ports.set(nic.hostId, (list = []));
    list.push(port);
  }
  raiseIfAny(problems);

  const hosts: HostConfig[] = [...topo.hosts.values()].sort((a, b) => byText(a.hostId, b.hostId)).map((h) => {
    const list = (ports.get(h.hostId) ?? []).sort((a, b) => byText(a.port, b.port));
    return hostConfig(h.hostId, h.uplink, list);
  });
  const hostById = new Map(hosts.map((h) => [h.hostId, h]));

  const downlinks = new Map<string, EdgeConfig['downlinks']>();
  for (const h of topo.hosts.values()) {
    if (!h.edge) continue;
    let list = downlinks.get(h.edge.edgeId);
    if (!list) downlinks.set(h.edge.edgeId, (list = []));
    list.push({ port: h.edge.port, hostId: h.hostId, vlans: [...hostById.get(h.hostId)!.trunk] });
  }
  const edges: EdgeConfig[] = [...topo.edges.values()].sort((a, b) => byText(a.edgeId, b.edgeId)).map((e) => {
    const list = (downlinks.get(e.edgeId) ?? []).sort((a, b) => byText(a.port, b.port));
    return { edgeId: e.edgeId, bridge: EDGE_BRIDGE, uplink: { port: e.uplink, vlans: sortedUnique(list.flatMap((d) => d.vlans)) }, downlinks: list };
  });

  const zones = [...topo.zones.values()].sort((a, b) => byText(a.zoneId, b.zoneId));
  const gateways = zones.filter((z) => z.gateway).map((z) => gatewayConfig(z, nets.byZoneVlan.get(z.zoneId), floodFor(zones, z.zoneId)));
  return { hosts, edges, gateways };
}

export function hostConfig(hostId: string, uplink: string, sortedPorts: PortConfig[]): HostConfig {
  return { hostId, bridge: HOST_BRIDGE, uplink, trunk: sortedUnique(sortedPorts.map((p) => p.vlan)), ports: sortedPorts };
}

/**
 * Flood toward every other zone's gateway, not only zones sharing a network: the contract has one
 * flood list per gateway (the VXLAN device is shared by all VNIs), and a gateway drops frames of a
 * VNI it does not map. Per-VNI lists would save broadcast traffic at the price of a diff per zone
 * on every VLAN change.
 */
export function floodFor(zones: readonly TopologyZone[], zoneId: string): string[] {
  return sortedUnique(zones.filter((z) => z.zoneId !== zoneId && z.gateway).map((z) => z.gateway!.underlayIp));
}

export function gatewayConfig(z: TopologyZone, vlans: ReadonlyMap<number, PlacedNetwork> | undefined, flood: string[]): GatewayConfig {
  const inUse = [...(vlans?.entries() ?? [])].sort((a, b) => byNumber(a[0], b[0]));
  return {
    zoneId: z.zoneId,
    bridge: GATEWAY_BRIDGE,
    vxlan: GATEWAY_VXLAN,
    underlayIp: z.gateway!.underlayIp,
    downlink: { port: z.gateway!.downlink, vlans: inUse.map(([v]) => v) },
    maps: inUse.map(([vlan, n]) => ({ vlan, vni: n.vni })),
    flood,
    addresses: z.gatewayZone ? inUse.map(([vlan, n]) => ({ vlan, address: gatewayAddress(n) })) : [],
  };
}
