/**
 * The zone gateway (DESIGN.md §7): the VLAN-aware bridge kgw0 whose downlink trunks the zone's
 * VLANs, and one VXLAN device kvx0 in external (collect-metadata) mode enslaved with vlan_tunnel,
 * so each bridge VLAN maps to its network's VNI (`bridge vlan add … tunnel_info id VNI`).
 *
 * Flood entries: in external mode the VXLAN FDB is keyed by (MAC, VNI), so the all-zero entry that
 * floods BUM traffic must name the VNI it serves (`src_vni`); one entry per VNI × peer gateway.
 * Entries without src_vni would belong to VNI 0 and never match. Learning is on, so unicast to a
 * known remote MAC goes to its gateway only (`bridge fdb show dev kvx0` lists learned entries).
 *
 * In the gateway zone each network's gateway address sits on a VLAN interface kgw0.<vid> of the
 * bridge, which then carries that VLAN itself (`bridge vlan add dev kgw0 vid V self`).
 */
import { GATEWAY_BRIDGE, GATEWAY_VXLAN, VXLAN_PORT, type GatewayConfig } from '../types.js';
import type { Observed } from './observe.js';
import { ALIAS_DOWNLINK, Planner, checkId, checkIp, checkName, checkVlan, fail, tagged, type Plan } from './plan.js';

const ZERO_MAC = '00:00:00:00:00:00';
export const vlanIfName = (vid: number) => `${GATEWAY_BRIDGE}.${vid}`;
const VLAN_IF = new RegExp(`^${GATEWAY_BRIDGE.replace('.', '\\.')}\\.(\\d+)$`);

function validate(c: GatewayConfig): void {
  checkId('gateway zone', c.zoneId);
  if (c.bridge !== GATEWAY_BRIDGE || c.vxlan !== GATEWAY_VXLAN) fail(`gateway devices must be ${GATEWAY_BRIDGE} and ${GATEWAY_VXLAN}`);
  checkIp('gateway underlay', c.underlayIp);
  checkName('gateway downlink', c.downlink.port);
  if (c.downlink.port === GATEWAY_VXLAN || VLAN_IF.test(c.downlink.port)) fail(`gateway downlink cannot be ${c.downlink.port}`);
  c.downlink.vlans.forEach((v) => checkVlan('gateway downlink', v));
  for (const m of c.maps) {
    checkVlan('gateway map', m.vlan);
    if (!Number.isInteger(m.vni) || m.vni < 1 || m.vni > 0xffffff) fail(`gateway map: VNI ${m.vni} is outside 1..16777215`);
  }
  for (const key of ['vlan', 'vni'] as const) {
    const xs = c.maps.map((m) => m[key]);
    const dup = xs.find((x, i) => xs.indexOf(x) !== i);
    if (dup !== undefined) fail(`gateway maps: ${key} ${dup} is mapped twice`);
  }
  c.flood.forEach((ip) => { checkIp('gateway flood', ip); if (ip === c.underlayIp) fail(`gateway flood list holds its own address ${ip}`); });
  for (const a of c.addresses) {
    checkVlan('gateway address', a.vlan);
    const [ip, len, extra] = a.address.split('/');
    checkIp('gateway address', ip);
    if (extra !== undefined || !/^\d{1,2}$/.test(len ?? '') || Number(len) > 32) fail(`gateway address ${a.address} is not in CIDR form (a.b.c.d/len)`);
  }
}

export function planGateway(c: GatewayConfig, obs: Observed): Plan {
  validate(c);
  const pl = new Planner(obs);
  const addrVlans = [...new Set(c.addresses.map((a) => a.vlan))].sort((a, b) => a - b);
  pl.bridgeDevice(GATEWAY_BRIDGE, `kumo:gateway:${c.zoneId}`);
  pl.selfVlans(GATEWAY_BRIDGE, addrVlans);
  pl.port(GATEWAY_BRIDGE, c.downlink.port, tagged(c.downlink.vlans), ALIAS_DOWNLINK);

  // kvx0: its VXLAN parameters cannot be changed in place, so a device that differs is recreated.
  const vx = obs.links.get(GATEWAY_VXLAN);
  const d = vx?.data ?? {};
  const fresh = !(vx && vx.kind === 'vxlan' && d.external === true && d.local === c.underlayIp && d.port === VXLAN_PORT);
  if (vx && fresh) pl.ip.push(`link del dev ${GATEWAY_VXLAN}`);
  if (fresh) pl.ip.push(`link add ${GATEWAY_VXLAN} type vxlan dstport ${VXLAN_PORT} external local ${c.underlayIp} learning`);
  const enslaved = !fresh && vx!.master === GATEWAY_BRIDGE;
  if (!enslaved || vx!.slaveData.vlan_tunnel !== true) pl.bridge.push(`link set dev ${GATEWAY_VXLAN} vlan_tunnel on`);
  pl.port(GATEWAY_BRIDGE, GATEWAY_VXLAN, tagged(c.maps.map((m) => m.vlan)), null, fresh);

  // VLAN → VNI. Deleting a VLAN takes its mapping with it; a VLAN that changes VNI is unmapped first.
  const have = enslaved ? obs.tunnels.get(GATEWAY_VXLAN) ?? new Map<number, number>() : new Map<number, number>();
  const changed = c.maps.filter((m) => have.get(m.vlan) !== m.vni);
  for (const m of changed) if (have.has(m.vlan)) pl.bridge.push(`vlan del dev ${GATEWAY_VXLAN} vid ${m.vlan} tunnel_info id ${have.get(m.vlan)}`);
  for (const m of changed) pl.bridge.push(`vlan add dev ${GATEWAY_VXLAN} vid ${m.vlan} tunnel_info id ${m.vni}`);

  // Flood entries, one per VNI × peer gateway.
  const want = new Set(c.maps.flatMap((m) => c.flood.map((dst) => `${dst} ${m.vni}`)));
  const haveFlood = new Set(fresh ? [] : obs.flood.map((f) => `${f.dst} ${f.vni}`));
  for (const k of [...want].filter((k) => !haveFlood.has(k)).sort()) {
    const [dst, vni] = k.split(' ');
    pl.bridge.push(`fdb append ${ZERO_MAC} dev ${GATEWAY_VXLAN} dst ${dst} src_vni ${vni} self permanent`);
  }
  for (const k of [...haveFlood].filter((k) => !want.has(k)).sort()) {
    const [dst, vni] = k.split(' ');
    pl.bridge.push(`fdb del ${ZERO_MAC} dev ${GATEWAY_VXLAN} dst ${dst} src_vni ${vni} self`);
  }

  // Gateway addresses on kgw0.<vid>; VLAN interfaces of kgw0 named like kumo's that are not wanted go.
  for (const vid of addrVlans) {
    const name = vlanIfName(vid);
    const l = obs.links.get(name);
    const ok = !!l && l.kind === 'vlan' && l.parent === GATEWAY_BRIDGE && l.data.id === vid;
    if (l && !ok) pl.ip.push(`link del dev ${name}`);
    if (!ok) pl.ip.push(`link add link ${GATEWAY_BRIDGE} name ${name} type vlan id ${vid}`);
    if (!ok || !l!.up) pl.ip.push(`link set dev ${name} up`);
    const haveAddrs = ok ? obs.addrs.get(name) ?? [] : [];
    const wantAddrs = c.addresses.filter((a) => a.vlan === vid).map((a) => a.address);
    for (const a of wantAddrs) if (!haveAddrs.includes(a)) pl.ip.push(`addr add ${a} dev ${name}`);
    for (const a of haveAddrs) if (!wantAddrs.includes(a)) pl.ip.push(`addr del ${a} dev ${name}`);
  }
  for (const l of obs.links.values()) {
    const m = VLAN_IF.exec(l.name);
    if (m && l.kind === 'vlan' && !addrVlans.includes(Number(m[1]))) pl.ip.push(`link del dev ${l.name}`);
  }

  pl.detachOthers(GATEWAY_BRIDGE, new Set([c.downlink.port, GATEWAY_VXLAN]));
  return pl.plan();
}
