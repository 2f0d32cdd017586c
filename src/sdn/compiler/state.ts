/**
 * The incremental compiler. Built once from Topology + Placement, it then takes one placement change
 * at a time (a NIC placed or removed, a zone VLAN given or taken back, a network added or removed)
 * and returns the changes of just the devices that one change touches, in time proportional to
 * them: a NIC touches its host, perhaps its edge, never a gateway; a zone VLAN touches only its
 * zone's gateway. Reference counts (ports per VLAN on a host, hosts per VLAN behind an edge) tell
 * when a VLAN first appears on, or last leaves, a trunk.
 *
 * config() is always exactly what compile(topology, placement()) gives (the property tests hold it
 * to that), and an operation that fails changes nothing: every check runs before any mutation and
 * the same rules as compile()'s apply (checks.ts). Topology changes rebuild the state.
 *
 * Configs and changes it returns share their port objects with the state: read them, do not
 * change them.
 */
import {
  EDGE_BRIDGE,
  type DesiredConfig, type EdgeConfig, type GatewayConfig, type HostConfig, type PlacedNetwork, type PlacedNic,
  type Placement, type PortConfig, type Topology, type TopologyEdge, type TopologyHost, type TopologyZone,
} from '../types.js';
import { tapName } from '../../compute/qemu/taps.js';
import { emptyDelta, type DeviceChange, type EdgeChange, type GatewayChange, type HostChange } from './change.js';
import {
  checkNetwork, gatewayAddress, indexNetworks, indexTopology, isVlanId, nicPort, type TopologyIndex,
} from './checks.js';
import { floodFor, gatewayConfig, hostConfig } from './compile.js';
import { raiseIfAny, SdnCompileError } from './errors.js';
import { byNumber, byText } from './order.js';

/** A host's ports by tap name, each with the NIC it stands for. */
interface HostSlot { topo: TopologyHost; ports: Map<string, NicSlot>; vlanRefs: Map<number, number> }
interface EdgeSlot { topo: TopologyEdge; hosts: HostSlot[]; vlanRefs: Map<number, number> }
interface ZoneSlot { topo: TopologyZone; vlans: Map<number, PlacedNetwork> }
interface NetSlot { net: PlacedNetwork; nicsInZone: Map<string, number> }
interface NicSlot { nic: PlacedNic; port: PortConfig }

const bump = (m: Map<number, number>, k: number, by: number): number => {
  const n = (m.get(k) ?? 0) + by;
  if (n === 0) m.delete(k); else m.set(k, n);
  return n;
};
const copyNetwork = (n: PlacedNetwork): PlacedNetwork => ({ ...n, zoneVlans: { ...n.zoneVlans } });
/** The state keeps copies: callers may reuse their objects. A literal is cheaper than a spread, 300,000 times over. */
const copyNic = (n: PlacedNic): PlacedNic => ({ vmId: n.vmId, slot: n.slot, hostId: n.hostId, networkId: n.networkId, mac: n.mac, ips: n.ips.slice() });
const sortedKeys = (m: ReadonlyMap<number, unknown>): number[] => [...m.keys()].sort(byNumber);

export class SdnState {
  private readonly topo: TopologyIndex;
  private readonly zoneList: TopologyZone[];
  private readonly hosts = new Map<string, HostSlot>();
  private readonly edges = new Map<string, EdgeSlot>();
  private readonly zones = new Map<string, ZoneSlot>();
  private readonly networks = new Map<string, NetSlot>();
  private readonly byVni = new Map<number, string>();
  /**
   * vmId → the hosts holding NICs of it (two while it migrates). Keyed by the VM id as given, so
   * that building the state for 300,000 NICs makes no key strings of its own.
   */
  private readonly vmHosts = new Map<string, string[]>();

  constructor(t: Topology, p: Placement) {
    const problems: string[] = [];
    this.topo = indexTopology(t, problems);
    const nets = indexNetworks(p.networks, this.topo.zones, problems);
    raiseIfAny(problems);
    this.zoneList = [...this.topo.zones.values()].sort((a, b) => byText(a.zoneId, b.zoneId));
    for (const z of this.zoneList) this.zones.set(z.zoneId, { topo: z, vlans: new Map() });
    for (const e of this.topo.edges.values()) this.edges.set(e.edgeId, { topo: e, hosts: [], vlanRefs: new Map() });
    for (const h of this.topo.hosts.values()) {
      const slot: HostSlot = { topo: h, ports: new Map(), vlanRefs: new Map() };
      this.hosts.set(h.hostId, slot);
      if (h.edge) this.edges.get(h.edge.edgeId)!.hosts.push(slot);
    }
    for (const n of nets.networks.values()) this.insertNetwork(copyNetwork(n));
    for (const nic of p.nics) {
      const port = this.checkNic(nic, problems);
      if (port) this.link(copyNic(nic), port, true);
    }
    raiseIfAny(problems);
  }

  /* ------------------------------------------------------------ reading */

  /** The whole desired config, equal to compile(topology, this.placement()). */
  config(): DesiredConfig {
    return {
      hosts: [...this.hosts.keys()].sort(byText).map((id) => this.hostConfig(id)),
      edges: [...this.edges.keys()].sort(byText).map((id) => this.edgeConfig(id)),
      gateways: this.zoneList.filter((z) => z.gateway).map((z) => this.gatewayConfig(z.zoneId)),
    };
  }

  hostConfig(hostId: string): HostConfig {
    const h = this.mustHost(hostId);
    return hostConfig(hostId, h.topo.uplink, [...h.ports.values()].map((x) => x.port).sort((a, b) => byText(a.port, b.port)));
  }

  edgeConfig(edgeId: string): EdgeConfig {
    const e = this.edges.get(edgeId);
    if (!e) throw new Error(`unknown edge ${edgeId}`);
    const downlinks = e.hosts.map((h) => ({ port: h.topo.edge!.port, hostId: h.topo.hostId, vlans: sortedKeys(h.vlanRefs) }))
      .sort((a, b) => byText(a.port, b.port));
    return { edgeId, bridge: EDGE_BRIDGE, uplink: { port: e.topo.uplink, vlans: sortedKeys(e.vlanRefs) }, downlinks };
  }

  gatewayConfig(zoneId: string): GatewayConfig {
    const z = this.zones.get(zoneId);
    if (!z?.topo.gateway) throw new Error(`zone ${zoneId} has no gateway`);
    return gatewayConfig(z.topo, z.vlans, floodFor(this.zoneList, zoneId));
  }

  /** The placement this state stands for, sorted like the state store's (networks by id, NICs by VM, slot, host). */
  placement(): Placement {
    const networks = [...this.networks.values()].map((s) => copyNetwork(s.net)).sort((a, b) => byText(a.networkId, b.networkId));
    for (const n of networks) n.zoneVlans = Object.fromEntries(Object.entries(n.zoneVlans).sort((a, b) => byText(a[0], b[0])));
    const nics = [...this.hosts.values()].flatMap((h) => [...h.ports.values()].map((s) => ({ ...s.nic, ips: [...s.nic.ips] })))
      .sort((a, b) => byText(a.vmId, b.vmId) || a.slot - b.slot || byText(a.hostId, b.hostId));
    return { networks, nics };
  }

  /* ------------------------------------------------------------ NICs */

  /** Places a NIC on its host: its port, and its VLAN on the host trunk and edge when first there. */
  addNic(nic: PlacedNic): DeviceChange[] {
    const problems: string[] = [];
    const port = this.checkNic(nic, problems);
    raiseIfAny(problems);
    const trunked = this.link(copyNic(nic), port!);
    const hc = hostChange(nic.hostId);
    hc.ports.added.push(port!);
    const out: DeviceChange[] = [hc];
    if (trunked) {
      hc.trunk.added.push(port!.vlan);
      const ec = this.trunkOnEdge(this.hosts.get(nic.hostId)!, port!.vlan, 1);
      if (ec) out.push(ec);
    }
    return out;
  }

  /** Takes a NIC off its host; `hostId` is needed only while the NIC is on two hosts (migration). */
  removeNic(vmId: string, slot: number, hostId?: string): DeviceChange[] {
    let tap = '';
    try { tap = tapName(vmId, slot); } catch { /* no such NIC can have been placed */ }
    const on = [...new Set(this.vmHosts.get(vmId))].filter((id) => {
      const had = this.hosts.get(id)!.ports.get(tap)?.nic;
      return had !== undefined && had.vmId === vmId && had.slot === slot;
    });
    if (on.length === 0) throw new SdnCompileError([`nic ${vmId}/${slot} is not placed`]);
    if (hostId === undefined) {
      if (on.length > 1) throw new SdnCompileError([`nic ${vmId}/${slot} is on hosts ${on.sort(byText).join(' and ')}: name the one to remove it from`]);
      hostId = on[0];
    } else if (!on.includes(hostId)) throw new SdnCompileError([`nic ${vmId}/${slot} is not placed on host ${hostId}`]);
    const h = this.hosts.get(hostId)!;
    const { nic, port } = h.ports.get(tap)!;
    h.ports.delete(tap);
    this.unlinkVm(vmId, hostId);
    const counts = this.networks.get(nic.networkId)!.nicsInZone;
    const left = counts.get(h.topo.zoneId)! - 1;
    if (left === 0) counts.delete(h.topo.zoneId); else counts.set(h.topo.zoneId, left);
    const hc = hostChange(hostId);
    hc.ports.removed.push(port.port);
    const out: DeviceChange[] = [hc];
    if (bump(h.vlanRefs, port.vlan, -1) === 0) {
      hc.trunk.removed.push(port.vlan);
      const ec = this.trunkOnEdge(h, port.vlan, -1);
      if (ec) out.push(ec);
    }
    return out;
  }

  /* ------------------------------------------------------------ networks and zone VLANs */

  /** A network and the zone VLANs it already holds; touches the gateways of those zones. */
  addNetwork(net: PlacedNetwork): DeviceChange[] {
    const problems: string[] = [];
    if (this.networks.has(net.networkId)) problems.push(`network ${net.networkId} already exists`);
    checkNetwork(net, this.topo.zones, problems);
    const vniHolder = this.byVni.get(net.vni);
    if (vniHolder !== undefined) problems.push(`networks ${vniHolder} and ${net.networkId} share VNI ${net.vni}`);
    for (const [zoneId, vlan] of Object.entries(net.zoneVlans)) {
      const holder = this.zones.get(zoneId)?.vlans.get(vlan);
      if (holder) problems.push(`networks ${holder.networkId} and ${net.networkId} share VLAN ${vlan} in zone ${zoneId}`);
    }
    raiseIfAny(problems);
    const n = copyNetwork(net);
    this.insertNetwork(n);
    return this.gatewayChanges(Object.entries(n.zoneVlans).map(([zoneId, vlan]) => ({ zoneId, net: n, added: vlan })));
  }

  /** Removes a network that no NIC uses any more, with its zone VLANs. */
  removeNetwork(networkId: string): DeviceChange[] {
    const s = this.networks.get(networkId);
    if (!s) throw new SdnCompileError([`network ${networkId} does not exist`]);
    const inUse = [...s.nicsInZone.entries()].filter(([, n]) => n > 0);
    if (inUse.length) throw new SdnCompileError([`network ${networkId} still has NICs in ${inUse.map(([z, n]) => `zone ${z} (${n})`).join(', ')}`]);
    const gone = Object.entries(s.net.zoneVlans).map(([zoneId, vlan]) => ({ zoneId, net: s.net, removed: vlan }));
    for (const { zoneId, removed } of gone) this.zones.get(zoneId)!.vlans.delete(removed);
    this.networks.delete(networkId);
    this.byVni.delete(s.net.vni);
    return this.gatewayChanges(gone);
  }

  /**
   * Gives the network `vlan` in the zone, or takes its VLAN there back (null). A VLAN cannot change
   * or go while NICs of the network sit in the zone: their ports would be left on the old one.
   */
  setZoneVlan(networkId: string, zoneId: string, vlan: number | null): DeviceChange[] {
    const s = this.networks.get(networkId), z = this.zones.get(zoneId);
    const problems: string[] = [];
    if (!s) problems.push(`network ${networkId} does not exist`);
    if (!z) problems.push(`zone ${zoneId} does not exist`);
    if (vlan !== null && !isVlanId(vlan)) problems.push(`network ${networkId}: VLAN ${vlan} in zone ${zoneId} is outside 2..4094`);
    raiseIfAny(problems);
    const now = s!.net.zoneVlans[zoneId];
    if ((now ?? null) === vlan) return [];
    const holder = vlan === null ? undefined : z!.vlans.get(vlan);
    if (holder) problems.push(`networks ${holder.networkId} and ${networkId} share VLAN ${vlan} in zone ${zoneId}`);
    const members = s!.nicsInZone.get(zoneId) ?? 0;
    if (members > 0) problems.push(`network ${networkId} has ${members} NIC(s) in zone ${zoneId}: its VLAN there cannot ${vlan === null ? 'go' : 'change'} under them`);
    raiseIfAny(problems);
    if (now !== undefined) z!.vlans.delete(now);
    if (vlan === null) delete s!.net.zoneVlans[zoneId];
    else { s!.net.zoneVlans[zoneId] = vlan; z!.vlans.set(vlan, s!.net); }
    return this.gatewayChanges([{ zoneId, net: s!.net, removed: now, added: vlan ?? undefined }]);
  }

  /* ------------------------------------------------------------ internals */

  private mustHost(hostId: string): HostSlot {
    const h = this.hosts.get(hostId);
    if (!h) throw new Error(`unknown host ${hostId}`);
    return h;
  }

  private checkNic(nic: PlacedNic, problems: string[]): PortConfig | null {
    const host = this.topo.hosts.get(nic.hostId), net = this.networks.get(nic.networkId)?.net;
    const port = nicPort(nic, host, net !== undefined, host && net ? net.zoneVlans[host.zoneId] : undefined, problems);
    if (!port) return null;
    const who = `${nic.vmId}/${nic.slot}`;
    const had = this.hosts.get(nic.hostId)!.ports.get(port.port);
    if (had) {
      const other = had.nic;
      problems.push(other.vmId === nic.vmId && other.slot === nic.slot
        ? `nic ${who} is placed twice on host ${nic.hostId}`
        : `nics ${other.vmId}/${other.slot} and ${who} on host ${nic.hostId} both get tap ${port.port}`);
      return null;
    }
    return port;
  }

  private insertNetwork(n: PlacedNetwork): void {
    this.networks.set(n.networkId, { net: n, nicsInZone: new Map() });
    this.byVni.set(n.vni, n.networkId);
    for (const [zoneId, vlan] of Object.entries(n.zoneVlans)) this.zones.get(zoneId)!.vlans.set(vlan, n);
  }

  /**
   * Records a checked NIC on its host; true when its VLAN is new on the host's trunk. The edge's
   * counts follow at once only when called from the constructor (addNic does it in trunkOnEdge,
   * which also builds the edge's change).
   */
  private link(nic: PlacedNic, port: PortConfig, building = false): boolean {
    const h = this.hosts.get(nic.hostId)!;
    h.ports.set(port.port, { nic, port });
    const on = this.vmHosts.get(nic.vmId);
    if (!on) this.vmHosts.set(nic.vmId, [nic.hostId]);
    else on.push(nic.hostId);
    const counts = this.networks.get(nic.networkId)!.nicsInZone;
    counts.set(h.topo.zoneId, (counts.get(h.topo.zoneId) ?? 0) + 1);
    const fresh = bump(h.vlanRefs, port.vlan, 1) === 1;
    if (fresh && building && h.topo.edge) bump(this.edges.get(h.topo.edge.edgeId)!.vlanRefs, port.vlan, 1);
    return fresh;
  }

  /** One NIC of the VM left the host (the list holds the host once per NIC). */
  private unlinkVm(vmId: string, hostId: string): void {
    const on = this.vmHosts.get(vmId)!;
    on.splice(on.indexOf(hostId), 1);
    if (on.length === 0) this.vmHosts.delete(vmId);
  }

  /** A VLAN appeared on (+1) or left (−1) a host's trunk: the edge's downlink, and its uplink when first or last. */
  private trunkOnEdge(h: HostSlot, vlan: number, by: 1 | -1): EdgeChange | null {
    if (!h.topo.edge) return null;
    const e = this.edges.get(h.topo.edge.edgeId)!;
    const side = by > 0 ? 'added' : 'removed';
    const c: EdgeChange = {
      kind: 'edge', id: e.topo.edgeId, op: 'update', uplink: { vlans: emptyDelta() },
      downlinks: { added: [], removed: [], changed: [{ port: h.topo.edge.port, hostId: h.topo.hostId, vlans: emptyDelta() }] },
    };
    c.downlinks.changed[0].vlans[side].push(vlan);
    const n = bump(e.vlanRefs, vlan, by);
    if ((by > 0 && n === 1) || (by < 0 && n === 0)) c.uplink.vlans[side].push(vlan);
    return c;
  }

  /** One change per zone with a gateway, for VLANs of networks appearing or leaving there. */
  private gatewayChanges(moves: { zoneId: string; net: PlacedNetwork; added?: number; removed?: number }[]): DeviceChange[] {
    const byZone = new Map<string, GatewayChange>();
    for (const m of moves) {
      const z = this.zones.get(m.zoneId)!.topo;
      if (!z.gateway) continue;
      let c = byZone.get(m.zoneId);
      if (!c) {
        c = { kind: 'gateway', id: m.zoneId, op: 'update', downlink: emptyDelta(), maps: emptyDelta(), flood: emptyDelta(), addresses: emptyDelta() };
        byZone.set(m.zoneId, c);
      }
      const address = gatewayAddress(m.net);
      for (const [side, vlan] of [['removed', m.removed], ['added', m.added]] as const) {
        if (vlan === undefined) continue;
        c.downlink[side].push(vlan);
        c.maps[side].push({ vlan, vni: m.net.vni });
        if (z.gatewayZone) c.addresses[side].push({ vlan, address });
      }
    }
    return [...byZone.keys()].sort(byText).map((id) => byZone.get(id)!);
  }
}

function hostChange(id: string): HostChange {
  return { kind: 'host', id, op: 'update', trunk: emptyDelta(), ports: { added: [], removed: [], changed: [] } };
}
