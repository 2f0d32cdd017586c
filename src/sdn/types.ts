/**
 * The SDN contract (DESIGN.md §7, issue 5): what the controller knows (Topology + Placement), what
 * the pure compiler makes of it (DesiredConfig: one config per device), and what device drivers
 * apply. Everything here is plain data, JSON-serialisable, with arrays sorted so the same input
 * always compiles to byte-identical output.
 *
 * Devices and the Linux datapath they stand for:
 *  - host: one VLAN-aware bridge (`HOST_BRIDGE`); each VM NIC's tap is an access port (pvid
 *    untagged) on its network's VLAN in the host's zone; the host's uplink interface is a trunk port
 *    carrying exactly the VLANs of its ports. Anti-spoofing: a port may send only from its MAC and,
 *    for IPv4 (and ARP sender addresses), only from its addresses; no IPv6 source other than
 *    link-local from its own MAC is needed by the tiny guest, so IPv6 from ports is dropped.
 *  - edge: a VLAN-aware bridge (`EDGE_BRIDGE`) with one downlink port per host, trunking only the VLANs
 *    that host needs (NHN), and an uplink toward the zone's gateway/core carrying every VLAN any of its
 *    hosts needs.
 *  - gateway (one per zone): a VLAN-aware bridge (`GATEWAY_BRIDGE`) whose downlink trunks every VLAN
 *    in use in the zone, plus one external VXLAN device (`GATEWAY_VXLAN`, `external vnifilter` off,
 *    `vlan_tunnel on`) mapping each zone VLAN to its network's VNI, and flood entries (all-zero MAC)
 *    toward the other zones' gateways' underlay addresses. In the gateway zone it also holds each
 *    network's gateway address on a VLAN interface of the bridge, and the backbone route.
 */

/** Interface names on the devices (≤ 15 characters). */
export const HOST_BRIDGE = 'kbr0';
export const EDGE_BRIDGE = 'kedge0';
export const GATEWAY_BRIDGE = 'kgw0';
export const GATEWAY_VXLAN = 'kvx0';
/** VXLAN over UDP 4789 (IANA). */
export const VXLAN_PORT = 4789;
/** VLAN IDs usable per zone: 1 and 4095 are reserved (1 is the bridges' default PVID). */
export const VLAN_MIN = 2;
export const VLAN_MAX = 4094;

export interface TopologyZone {
  zoneId: string;
  /** The zone's SDN gateway; null while none is registered (the zone then has no cross-zone L2). */
  gateway: { underlayIp: string; downlink: string } | null;
  /** The gateway zone holds every network's gateway address and the backbone link. */
  gatewayZone: boolean;
}

export interface TopologyEdge {
  edgeId: string;
  zoneId: string;
  /** The edge's port toward its zone's gateway/core. */
  uplink: string;
  /** MAC addresses the edge's table may hold (VM NICs behind it); the scheduler filters on it. */
  macBudget: number;
}

export interface TopologyHost {
  hostId: string;
  zoneId: string;
  /** The edge the host hangs off, and the edge's port to it; null: not wired yet (no NIC config). */
  edge: { edgeId: string; port: string } | null;
  /** The host's own interface to its edge (the trunk). */
  uplink: string;
}

export interface Topology { zones: TopologyZone[]; edges: TopologyEdge[]; hosts: TopologyHost[] }

export interface PlacedNetwork {
  networkId: string;
  vni: number;
  /** The network's VLAN in each zone where it has members (allocated on first member, released with the last). */
  zoneVlans: Record<string, number>;
  /** Gateway address and prefix length, e.g. 10.0.0.1 and 20: held in the gateway zone. */
  gateway: string;
  prefix: number;
}

/** A VM NIC placed on a host (running, starting, or migrating there). */
export interface PlacedNic { vmId: string; slot: number; hostId: string; networkId: string; mac: string; ips: string[] }

export interface Placement { networks: PlacedNetwork[]; nics: PlacedNic[] }

/** A tap port on a host bridge: access VLAN, and what it may send from. */
export interface PortConfig { port: string; vlan: number; mac: string; ips: string[] }

export interface HostConfig { hostId: string; bridge: typeof HOST_BRIDGE; uplink: string; trunk: number[]; ports: PortConfig[] }

export interface EdgeConfig { edgeId: string; bridge: typeof EDGE_BRIDGE; uplink: { port: string; vlans: number[] }; downlinks: { port: string; hostId: string; vlans: number[] }[] }

export interface GatewayConfig {
  zoneId: string;
  bridge: typeof GATEWAY_BRIDGE;
  vxlan: typeof GATEWAY_VXLAN;
  underlayIp: string;
  downlink: { port: string; vlans: number[] };
  /** VLAN ↔ VNI of every network with members in this zone (and, in the gateway zone, of every network). */
  maps: { vlan: number; vni: number }[];
  /** Underlay addresses of the other zones' gateways. */
  flood: string[];
  /** Gateway zone only: each network's gateway address on its VLAN. */
  addresses: { vlan: number; address: string }[];
}

export interface DesiredConfig {
  hosts: HostConfig[];
  edges: EdgeConfig[];
  gateways: GatewayConfig[];
}

export type DeviceConfig = { kind: 'host'; config: HostConfig } | { kind: 'edge'; config: EdgeConfig } | { kind: 'gateway'; config: GatewayConfig };
