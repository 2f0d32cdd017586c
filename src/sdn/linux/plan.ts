/**
 * Pure planning: from what a device looks like (Observed) and what it should be (a config) to the
 * `ip -batch` and `bridge -batch` lines that make it so. Bridges are VLAN-aware with no default
 * PVID (a port carries exactly the VLANs the config names, never VLAN 1 by accident); a port
 * gets its VLANs and nothing else; a port on a kumo bridge that the config does not name is
 * detached (a stale kt* tap too: compute owns taps' lifetimes and QEMU may still hold it, so kumo
 * takes it off the bridge rather than deleting it). Interfaces not on kumo's bridges are never
 * touched, except the uplinks/downlinks a config names.
 *
 * Kumo marks what it owns with interface aliases (`kumo:host:<id>` on a bridge, `kumo:uplink`,
 * `kumo:downlink[:<hostId>]` on ports), so read-back can tell an uplink from a downlink after a
 * restart without any state of its own.
 */
import { isIPv4 } from 'node:net';
import { SdnDriverError } from '../driver.js';
import { isInterfaceName } from '../model/names.js';
import { EDGE_BRIDGE, HOST_BRIDGE, type EdgeConfig, type HostConfig } from '../types.js';
import { desiredElements, planNft } from './antispoof.js';
import type { Observed, VlanState } from './observe.js';

export interface Plan {
  ip: string[];
  bridge: string[];
  nft: { script: string | null; changes: string[] };
  /** Something changed that moves state the plan could not see (bridge settings): plan again after. */
  again: boolean;
}

export const TAP_PREFIX = 'kt';
export const ALIAS_UPLINK = 'kumo:uplink';
export const ALIAS_DOWNLINK = 'kumo:downlink';

export const fail = (msg: string): never => { throw new SdnDriverError('linux', msg); };

export function checkName(what: string, name: string): void {
  if (!isInterfaceName(name)) fail(`${what}: bad interface name ${JSON.stringify(name)}`);
}
export function checkVlan(what: string, vid: number): void {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) fail(`${what}: VLAN ${vid} is outside 1..4094`);
}
export function checkIp(what: string, ip: string): void {
  if (!isIPv4(ip)) fail(`${what}: ${JSON.stringify(ip)} is not an IPv4 address`);
}
export function checkId(what: string, id: string): void {
  // Ids end up in interface aliases (≤ 255 bytes) and batch lines: keep them plain.
  if (!/^[A-Za-z0-9._@-]{1,200}$/.test(id)) fail(`${what}: bad id ${JSON.stringify(id)}`);
}
function checkUnique(what: string, names: string[]): void {
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) fail(`${what}: ${dup} appears twice`);
}

const tagged = (vids: number[]): VlanState[] => [...new Set(vids)].map((vid) => ({ vid, pvid: false, untagged: false }));

export class Planner {
  readonly ip: string[] = [];
  readonly bridge: string[] = [];
  again = false;
  /** Bridges whose VLAN settings change in this round: their VLANs are planned in the next. */
  private readonly unsettled = new Set<string>();

  constructor(readonly obs: Observed) {}

  /** A VLAN-aware bridge with no default PVID, marked with `alias`, up. */
  bridgeDevice(name: string, alias: string): void {
    const l = this.obs.links.get(name);
    if (!l) {
      this.ip.push(`link add ${name} type bridge vlan_filtering 1 vlan_default_pvid 0`, `link set dev ${name} alias ${alias}`, `link set dev ${name} up`);
      return;
    }
    if (l.kind !== 'bridge') fail(`${name} exists and is not a bridge (${l.kind ?? 'plain device'}); kumo will not take it over`);
    if (l.data.vlan_filtering !== 1 || l.data.vlan_default_pvid !== 0) {
      this.ip.push(`link set dev ${name} type bridge vlan_filtering 1 vlan_default_pvid 0`);
      this.unsettled.add(name);
      this.again = true;
    }
    if (l.alias !== alias) this.ip.push(`link set dev ${name} alias ${alias}`);
    if (!l.up) this.ip.push(`link set dev ${name} up`);
  }

  /** The bridge's own VLANs (tagged), for VLAN interfaces on top of it. */
  selfVlans(bridge: string, vids: number[]): void {
    if (this.unsettled.has(bridge)) return;
    if (!this.obs.links.has(bridge)) {
      for (const vid of vids) this.bridge.push(`vlan add dev ${bridge} vid ${vid} self`);
      return;
    }
    this.vlanDiff(bridge, this.obs.vlans.get(bridge) ?? [], tagged(vids), ' self');
  }

  /**
   * `name` as a port of `bridge` carrying exactly `vlans`, up, with `alias` (null: leave the alias).
   * `fresh`: created in this plan, so it has no state yet.
   */
  port(bridge: string, name: string, vlans: VlanState[], alias: string | null, fresh = false): void {
    const l = fresh ? undefined : this.obs.links.get(name);
    if (!fresh && !l) fail(`interface ${name} does not exist`);
    const enslaved = !!l && l.master === bridge;
    if (!enslaved) this.ip.push(`link set dev ${name} master ${bridge}`);
    if (alias !== null && l?.alias !== alias) this.ip.push(`link set dev ${name} alias ${alias}`);
    if (!l?.up) this.ip.push(`link set dev ${name} up`);
    if (this.unsettled.has(bridge)) return;
    // A port joining a bridge without default PVID starts with no VLANs.
    this.vlanDiff(name, enslaved ? this.obs.vlans.get(name) ?? [] : [], vlans, '');
  }

  private vlanDiff(dev: string, have: VlanState[], want: VlanState[], self: string): void {
    const flags = (v: VlanState) => `${v.pvid ? ' pvid' : ''}${v.untagged ? ' untagged' : ''}`;
    for (const w of want) {
      const h = have.find((x) => x.vid === w.vid);
      // Re-adding a VLAN sets its flags afresh (the kernel clears PVID/untagged not given).
      if (!h || flags(h) !== flags(w)) this.bridge.push(`vlan add dev ${dev} vid ${w.vid}${flags(w)}${self}`);
    }
    for (const h of have) if (!want.some((w) => w.vid === h.vid)) this.bridge.push(`vlan del dev ${dev} vid ${h.vid}${self}`);
  }

  /** Detaches every port of `bridge` not in `keep`; kumo's alias on it goes too. */
  detachOthers(bridge: string, keep: Set<string>): void {
    for (const l of this.obs.links.values()) {
      if (l.master !== bridge || keep.has(l.name)) continue;
      this.ip.push(`link set dev ${l.name} nomaster`);
      if (l.alias?.startsWith('kumo:')) this.ip.push(`link set dev ${l.name} alias ""`);
    }
  }

  plan(nft: Plan['nft'] = { script: null, changes: [] }): Plan {
    return { ip: this.ip, bridge: this.bridge, nft, again: this.again };
  }
}

export const access = (vid: number): VlanState[] => [{ vid, pvid: true, untagged: true }];
export { tagged };

export function planHost(c: HostConfig, obs: Observed): Plan {
  checkId('host', c.hostId);
  if (c.bridge !== HOST_BRIDGE) fail(`host bridge must be ${HOST_BRIDGE}, not ${c.bridge}`);
  checkName('host uplink', c.uplink);
  if (c.uplink.startsWith(TAP_PREFIX)) fail(`host uplink ${c.uplink} has the VM port prefix ${TAP_PREFIX}`);
  c.trunk.forEach((v) => checkVlan('host trunk', v));
  checkUnique('host ports', c.ports.map((p) => p.port));
  for (const p of c.ports) {
    checkName('host port', p.port);
    // Anti-spoofing polices kt* ports only: a VM port with any other name would go unpoliced.
    if (!p.port.startsWith(TAP_PREFIX)) fail(`host port ${p.port} must start with ${TAP_PREFIX}`);
    checkVlan(`port ${p.port}`, p.vlan);
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(p.mac) || (parseInt(p.mac.slice(0, 2), 16) & 1)) fail(`port ${p.port}: ${p.mac} is not a unicast MAC`);
    p.ips.forEach((ip) => checkIp(`port ${p.port}`, ip));
  }
  const pl = new Planner(obs);
  pl.bridgeDevice(HOST_BRIDGE, `kumo:host:${c.hostId}`);
  pl.selfVlans(HOST_BRIDGE, []);
  pl.port(HOST_BRIDGE, c.uplink, tagged(c.trunk), ALIAS_UPLINK);
  for (const p of c.ports) {
    // QEMU opens taps by name; an existing kt* device (a tap, or a veth in the lab) is used as it is.
    const fresh = !obs.links.has(p.port);
    if (fresh) pl.ip.push(`tuntap add dev ${p.port} mode tap`);
    pl.port(HOST_BRIDGE, p.port, access(p.vlan), null, fresh);
  }
  pl.detachOthers(HOST_BRIDGE, new Set([c.uplink, ...c.ports.map((p) => p.port)]));
  return pl.plan(planNft(obs.nft, desiredElements(c.ports)));
}

export function planEdge(c: EdgeConfig, obs: Observed): Plan {
  checkId('edge', c.edgeId);
  if (c.bridge !== EDGE_BRIDGE) fail(`edge bridge must be ${EDGE_BRIDGE}, not ${c.bridge}`);
  const names = [c.uplink.port, ...c.downlinks.map((d) => d.port)];
  names.forEach((n) => checkName('edge port', n));
  checkUnique('edge ports', names);
  c.uplink.vlans.forEach((v) => checkVlan('edge uplink', v));
  for (const d of c.downlinks) { checkId(`edge downlink ${d.port}`, d.hostId); d.vlans.forEach((v) => checkVlan(`edge downlink ${d.port}`, v)); }
  const pl = new Planner(obs);
  pl.bridgeDevice(EDGE_BRIDGE, `kumo:edge:${c.edgeId}`);
  pl.selfVlans(EDGE_BRIDGE, []);
  pl.port(EDGE_BRIDGE, c.uplink.port, tagged(c.uplink.vlans), ALIAS_UPLINK);
  for (const d of c.downlinks) pl.port(EDGE_BRIDGE, d.port, tagged(d.vlans), `${ALIAS_DOWNLINK}:${d.hostId}`);
  pl.detachOthers(EDGE_BRIDGE, new Set(names));
  return pl.plan();
}
