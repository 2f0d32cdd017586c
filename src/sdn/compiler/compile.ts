/**
 * The full compiler: Topology + Placement → one desired config per device (rules in ../types.ts).
 * Pure and deterministic: every array is sorted and objects are built with a fixed key order, so
 * the same input gives byte-identical JSON. It never invents a VLAN: a NIC whose network has no
 * VLAN in its host's zone is an error, as is any other disagreement (see checks.ts).
 */
import {
  EDGE_BRIDGE, GATEWAY_BRIDGE, GATEWAY_VXLAN, HOST_BRIDGE,
  type DesiredConfig, type EdgeConfig, type GatewayConfig, type HostConfig, type PlacedNetwork, type PlacedNic, type Placement,
  type PortConfig, type Topology, type TopologyHost, type TopologyZone,
} from '../types.js';
import { tapName } from '../../compute/qemu/taps.js';
import { gatewayAddress, indexNetworks, indexTopology, nicPort } from './checks.js';
import { raiseIfAny } from './errors.js';
import { byNumber, byText, sortedUnique } from './order.js';

export function compile(t: Topology, p: Placement): DesiredConfig {
  const problems: string[] = [];
  const topo = indexTopology(t, problems);
  const nets = indexNetworks(p.networks, topo.zones, problems);
  // One lookup per NIC: the host's record holds its port list.
  const slots = new Map<string, { host: TopologyHost; ports: PortConfig[] }>();
  for (const h of topo.hosts.values()) slots.set(h.hostId, { host: h, ports: [] });
  for (const nic of p.nics) {
    const slot = slots.get(nic.hostId);
    const vlan = slot ? nets.byZoneNetwork.get(slot.host.zoneId)?.get(nic.networkId) : undefined;
    const port = nicPort(nic, slot?.host, vlan !== undefined || nets.networks.has(nic.networkId), vlan, problems);
    if (port) slot!.ports.push(port);
  }
  for (const [hostId, { ports: list }] of slots) {
    list.sort(byPort);
    for (let i = 1; i < list.length; i++) if (list[i].port === list[i - 1].port) problems.push(tapTakenTwice(p.nics, hostId, list[i].port));
  }
  raiseIfAny(problems);

  const hosts: HostConfig[] = [...topo.hosts.values()].sort((a, b) => byText(a.hostId, b.hostId))
    .map((h) => hostConfig(h.hostId, h.uplink, slots.get(h.hostId)!.ports));
  const hostById = new Map(hosts.map((h) => [h.hostId, h]));

  const downlinks = new Map<string, EdgeConfig['downlinks']>();
  for (const h of topo.hosts.values()) {
    if (!h.edge) continue;
    let list = downlinks.get(h.edge.edgeId);
    if (!list) downlinks.set(h.edge.edgeId, (list = []));
    list.push({ port: h.edge.port, hostId: h.hostId, vlans: hostById.get(h.hostId)!.trunk.slice() });
  }
  const edges: EdgeConfig[] = [...topo.edges.values()].sort((a, b) => byText(a.edgeId, b.edgeId)).map((e) => {
    const list = (downlinks.get(e.edgeId) ?? []).sort(byPort);
    const all: number[] = [];
    for (const d of list) for (const v of d.vlans) all.push(v);
    return { edgeId: e.edgeId, bridge: EDGE_BRIDGE, uplink: { port: e.uplink, vlans: sortedVlans(all) }, downlinks: list };
  });

  const zones = [...topo.zones.values()].sort((a, b) => byText(a.zoneId, b.zoneId));
  const gateways = zones.filter((z) => z.gateway).map((z) => gatewayConfig(z, nets.byZoneVlan.get(z.zoneId), floodFor(zones, z.zoneId)));
  return { hosts, edges, gateways };
}

export function hostConfig(hostId: string, uplink: string, sortedPorts: PortConfig[]): HostConfig {
  const vlans = new Array<number>(sortedPorts.length);
  for (let i = 0; i < sortedPorts.length; i++) vlans[i] = sortedPorts[i].vlan;
  return { hostId, bridge: HOST_BRIDGE, uplink, trunk: sortedVlans(vlans), ports: sortedPorts };
}

/** Port names never tie within one device (a tie is refused), so this is a total order there. */
export const byPort = (a: { port: string }, b: { port: string }): number => (a.port < b.port ? -1 : a.port > b.port ? 1 : 0);

/** Sorts VLAN IDs in place and drops repeats; no Set, since it runs for every host and edge. */
function sortedVlans(vs: number[]): number[] {
  vs.sort(byNumber);
  let n = 0;
  for (let i = 0; i < vs.length; i++) if (n === 0 || vs[i] !== vs[n - 1]) vs[n++] = vs[i];
  vs.length = n;
  return vs;
}

/** The slow path, on error only: which NICs share the tap name. */
function tapTakenTwice(nics: readonly PlacedNic[], hostId: string, tap: string): string {
  const [x, y] = nics.filter((n) => n.hostId === hostId && (() => { try { return tapName(n.vmId, n.slot) === tap; } catch { return false; } })());
  return x.vmId === y.vmId && x.slot === y.slot
    ? `nic ${y.vmId}/${y.slot} is placed twice on host ${hostId}`
    : `nics ${x.vmId}/${x.slot} and ${y.vmId}/${y.slot} on host ${hostId} both get tap ${tap}`;
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
