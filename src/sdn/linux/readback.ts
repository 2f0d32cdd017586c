/**
 * The config a device holds, rebuilt from what the kernel reports (Observed), for read(): ports
 * and their VLANs from the bridge, MACs and addresses from the anti-spoofing sets, roles and host
 * ids from kumo's interface aliases, VLAN↔VNI maps and flood peers from the VXLAN device. Arrays
 * come sorted as the compiler sorts them (src/sdn/compiler/order.ts): ports and addresses by text
 * (UTF-16 code units, not locale), VLANs and VNIs numerically.
 */
import { EDGE_BRIDGE, GATEWAY_BRIDGE, GATEWAY_VXLAN, HOST_BRIDGE, type EdgeConfig, type GatewayConfig, type HostConfig } from '../types.js';
import type { LinkState, Observed } from './observe.js';
import { ALIAS_DOWNLINK, ALIAS_UPLINK, TAP_PREFIX } from './plan.js';

const num = (a: number, b: number) => a - b;
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byName = (a: { port: string }, b: { port: string }) => byText(a.port, b.port);

function portsOf(obs: Observed, bridge: string): LinkState[] {
  return [...obs.links.values()].filter((l) => l.master === bridge).sort((a, b) => (a.name < b.name ? -1 : 1));
}
const vids = (obs: Observed, dev: string) => (obs.vlans.get(dev) ?? []).map((v) => v.vid).sort(num);

/** The bridge exists and is not marked as another device's. */
function owned(obs: Observed, bridge: string, alias: string): boolean {
  const b = obs.links.get(bridge);
  return !!b && b.kind === 'bridge' && (b.alias === null || !b.alias.startsWith('kumo:') || b.alias === alias);
}

export function readHost(obs: Observed, hostId: string): HostConfig | null {
  if (!owned(obs, HOST_BRIDGE, `kumo:host:${hostId}`)) return null;
  const ports = portsOf(obs, HOST_BRIDGE);
  const uplink = ports.find((l) => l.alias === ALIAS_UPLINK) ?? ports.find((l) => !l.name.startsWith(TAP_PREFIX));
  const sets = obs.nft;
  const elems = (set: Set<string> | null | undefined, port: string) => [...(set ?? [])].filter((e) => e.startsWith(`${port} `)).map((e) => e.slice(port.length + 1));
  return {
    hostId,
    bridge: HOST_BRIDGE,
    uplink: uplink?.name ?? '',
    trunk: uplink ? vids(obs, uplink.name) : [],
    ports: ports.filter((l) => l.name.startsWith(TAP_PREFIX)).map((l) => {
      const vl = obs.vlans.get(l.name) ?? [];
      return {
        port: l.name,
        vlan: (vl.find((v) => v.pvid) ?? vl[0])?.vid ?? 0,
        mac: elems(sets?.macs, l.name)[0] ?? '',
        ips: elems(sets?.ips, l.name).sort(byText),
      };
    }).sort(byName),
  };
}

export function readEdge(obs: Observed, edgeId: string): EdgeConfig | null {
  if (!owned(obs, EDGE_BRIDGE, `kumo:edge:${edgeId}`)) return null;
  const ports = portsOf(obs, EDGE_BRIDGE);
  const up = ports.find((l) => l.alias === ALIAS_UPLINK);
  return {
    edgeId,
    bridge: EDGE_BRIDGE,
    uplink: { port: up?.name ?? '', vlans: up ? vids(obs, up.name) : [] },
    downlinks: ports.filter((l) => l !== up).map((l) => ({
      port: l.name,
      hostId: l.alias?.startsWith(`${ALIAS_DOWNLINK}:`) ? l.alias.slice(ALIAS_DOWNLINK.length + 1) : '',
      vlans: vids(obs, l.name),
    })).sort(byName),
  };
}

export function readGateway(obs: Observed, zoneId: string): GatewayConfig | null {
  if (!owned(obs, GATEWAY_BRIDGE, `kumo:gateway:${zoneId}`)) return null;
  const ports = portsOf(obs, GATEWAY_BRIDGE).filter((l) => l.name !== GATEWAY_VXLAN);
  const down = ports.find((l) => l.alias === ALIAS_DOWNLINK) ?? ports[0];
  const vx = obs.links.get(GATEWAY_VXLAN);
  const onBridge = vx?.master === GATEWAY_BRIDGE;
  const tunnels = onBridge ? obs.tunnels.get(GATEWAY_VXLAN) ?? new Map<number, number>() : new Map<number, number>();
  const addresses = [...obs.links.values()]
    .filter((l) => l.kind === 'vlan' && l.parent === GATEWAY_BRIDGE && l.name === `${GATEWAY_BRIDGE}.${l.data.id}`)
    .flatMap((l) => (obs.addrs.get(l.name) ?? []).map((address) => ({ vlan: l.data.id as number, address })))
    .sort((a, b) => a.vlan - b.vlan || byText(a.address, b.address));
  return {
    zoneId,
    bridge: GATEWAY_BRIDGE,
    vxlan: GATEWAY_VXLAN,
    underlayIp: typeof vx?.data.local === 'string' ? vx.data.local : '',
    downlink: { port: down?.name ?? '', vlans: down ? vids(obs, down.name) : [] },
    maps: onBridge ? vids(obs, GATEWAY_VXLAN).filter((v) => tunnels.has(v)).map((vlan) => ({ vlan, vni: tunnels.get(vlan)! })) : [],
    flood: [...new Set(obs.flood.map((f) => f.dst))].sort(byText),
    addresses,
  };
}
