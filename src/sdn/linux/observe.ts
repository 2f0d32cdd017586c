/**
 * What a device looks like now, read back with iproute2's and nft's JSON output. The parsers are
 * pure (tests feed them recorded output); observe() runs the commands. The planners diff these
 * observations against the config, so nothing here depends on what kumo applied before: an agent
 * restart reads the same state a running agent would.
 */
import { run } from '../netns.js';
import { GATEWAY_VXLAN } from '../types.js';

export interface LinkState {
  name: string;
  /** linkinfo.info_kind: bridge, vxlan, vlan, tun, veth…; null for plain devices. */
  kind: string | null;
  master: string | null;
  up: boolean;
  alias: string | null;
  /** The lower device of a VLAN interface (iproute2's `link`). */
  parent: string | null;
  data: Record<string, unknown>;
  slaveData: Record<string, unknown>;
}

export interface VlanState { vid: number; pvid: boolean; untagged: boolean }

export interface NftState {
  /** The chain exists with the rules this kumo version writes (see antispoof.ts). */
  chainOk: boolean;
  /** Set elements as `port mac` and `port ip`; null when the set is missing or of another type. */
  macs: Set<string> | null;
  ips: Set<string> | null;
  /** Rules in the chain (to tell a current chain from a tampered one). */
  rules: number;
}

export interface Observed {
  links: Map<string, LinkState>;
  /** Bridge VLAN membership per interface; a bridge's own (self) VLANs are under its own name. */
  vlans: Map<string, VlanState[]>;
  /** VLAN → tunnel id (VNI) per interface (`bridge vlan tunnelshow`). */
  tunnels: Map<string, Map<number, number>>;
  /** All-zero-MAC (flood) entries of the VXLAN device: remote and VNI they belong to. */
  flood: { dst: string; vni: number }[];
  /** IPv4 addresses (CIDR) per interface. */
  addrs: Map<string, string[]>;
  nft: NftState | null;
}

type Json = Record<string, any>;

export function parseLinks(json: Json[]): Map<string, LinkState> {
  const out = new Map<string, LinkState>();
  for (const l of json) {
    const info = (l.linkinfo ?? {}) as Json;
    out.set(l.ifname, {
      name: l.ifname,
      kind: info.info_kind ?? null,
      master: l.master ?? null,
      up: Array.isArray(l.flags) && l.flags.includes('UP'),
      alias: l.ifalias ?? null,
      parent: info.info_kind === 'vlan' && typeof l.link === 'string' ? l.link : null,
      data: info.info_data ?? {},
      slaveData: info.info_slave_data ?? {},
    });
  }
  return out;
}

/** `bridge -json vlan show`; ranges (vlanEnd) are expanded. */
export function parseVlans(json: Json[]): Map<string, VlanState[]> {
  const out = new Map<string, VlanState[]>();
  for (const e of json) {
    const list = out.get(e.ifname) ?? [];
    for (const v of e.vlans ?? []) {
      const flags: string[] = v.flags ?? [];
      for (let vid = v.vlan; vid <= (v.vlanEnd ?? v.vlan); vid++) list.push({ vid, pvid: flags.includes('PVID'), untagged: flags.includes('Egress Untagged') });
    }
    out.set(e.ifname, list);
  }
  return out;
}

/** `bridge -json vlan tunnelshow`; ranges (vlanEnd/tunidEnd) are expanded. */
export function parseTunnels(json: Json[]): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const e of json) {
    const m = out.get(e.ifname) ?? new Map<number, number>();
    for (const t of e.tunnels ?? []) for (let i = 0; t.vlan + i <= (t.vlanEnd ?? t.vlan); i++) m.set(t.vlan + i, t.tunid + i);
    out.set(e.ifname, m);
  }
  return out;
}

/** `bridge -json fdb show dev kvx0`: only the device's own permanent all-zero entries. */
export function parseFlood(json: Json[]): { dst: string; vni: number }[] {
  return json
    .filter((f) => f.mac === '00:00:00:00:00:00' && typeof f.dst === 'string' && (f.flags ?? []).includes('self') && !f.master)
    .map((f) => ({ dst: f.dst as string, vni: (f.src_vni ?? f.vni ?? 0) as number }));
}

export function parseAddrs(json: Json[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of json) {
    const v4 = (l.addr_info ?? []).filter((a: Json) => a.family === 'inet').map((a: Json) => `${a.local}/${a.prefixlen}`);
    out.set(l.ifname, v4);
  }
  return out;
}

export interface Exec { netns?: string }

async function json(ex: Exec, cmd: string, args: string[]): Promise<Json[]> {
  const { stdout } = await run(cmd, ['-json', ...args], { netns: ex.netns });
  return stdout.trim() ? (JSON.parse(stdout) as Json[]) : [];
}

/** Reads what the planners of `kind` need; nft is read by antispoof.ts (host only). */
export async function observe(ex: Exec, kind: 'host' | 'edge' | 'gateway', readNft: () => Promise<NftState | null>): Promise<Observed> {
  const [links, vlans] = await Promise.all([json(ex, 'ip', ['-d', 'link', 'show']).then(parseLinks), json(ex, 'bridge', ['vlan', 'show']).then(parseVlans)]);
  const obs: Observed = { links, vlans, tunnels: new Map(), flood: [], addrs: new Map(), nft: null };
  if (kind === 'gateway') {
    const hasVx = links.has(GATEWAY_VXLAN);
    const [tunnels, fdb, addrs] = await Promise.all([
      json(ex, 'bridge', ['vlan', 'tunnelshow']).then(parseTunnels),
      hasVx ? json(ex, 'bridge', ['fdb', 'show', 'dev', GATEWAY_VXLAN]) : Promise.resolve([]),
      json(ex, 'ip', ['addr', 'show']).then(parseAddrs),
    ]);
    Object.assign(obs, { tunnels, flood: parseFlood(fdb), addrs });
  }
  if (kind === 'host') obs.nft = await readNft();
  return obs;
}
