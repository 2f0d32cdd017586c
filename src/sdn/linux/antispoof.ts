/**
 * Anti-spoofing for VM ports (DESIGN.md §7: a VM cannot send with another MAC or IP than the ones
 * it was given), as nftables rules in a table of kumo's own, `table bridge kumo`, hooked at bridge
 * prerouting so every frame entering the bridge from a tap is checked before it is switched or
 * delivered to the host. The rules never change; the per-port facts live in two sets keyed by the
 * ingress port name, so a VM start or stop only adds or deletes set elements.
 *
 * Policy for frames entering from a `kt*` port (decisions, see the report of issue 5):
 *  - Ethernet source must be the port's MAC (a kt port kumo has no config for sends nothing).
 *  - ARP: IPv4-over-Ethernet only; sender MAC must be the port's MAC; sender IP must be one of the
 *    port's addresses, or 0.0.0.0 (RFC 5227 probes, which poison no cache).
 *  - IPv4: source must be one of the port's addresses; the one exception is a DHCP client's
 *    0.0.0.0:68 → 255.255.255.255:67 broadcast, so a guest may use DHCP.
 *  - Everything else is dropped: IPv6 (the guests need none; no RA/ND spoofing to police), VLAN-tagged
 *    frames (a VM must not pick its VLAN), STP/LLDP and other ethertypes.
 * Frames from other ports (uplinks) are not policed here.
 *
 * The ruleset is replaced atomically (`nft -f -` runs one transaction: add, delete, recreate);
 * set changes are one transaction of element deletions and additions.
 */
import { run } from '../netns.js';
import type { PortConfig } from '../types.js';
import type { NftState } from './observe.js';

export const NFT_TABLE = 'kumo';
/** Versioned name: a kumo with other rules sees a chain it does not know and replaces the table. */
export const NFT_CHAIN = 'ports_v1';

const RULES = [
  'iifname != "kt*" accept',
  'iifname . ether saddr != @macs drop',
  'arp htype . arp ptype . arp hlen . arp plen != { 1 . 0x0800 . 6 . 4 } drop',
  'iifname . arp saddr ether != @macs drop',
  'arp saddr ip 0.0.0.0 accept',
  'iifname . arp saddr ip != @ips drop',
  'ether type arp accept',
  'ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
  'iifname . ip saddr != @ips drop',
  'ether type ip accept',
  'drop',
];

/** The set elements the ports call for, as `port value` strings (MACs lower-case). */
export function desiredElements(ports: PortConfig[]): { macs: Set<string>; ips: Set<string> } {
  return {
    macs: new Set(ports.map((p) => `${p.port} ${p.mac.toLowerCase()}`)),
    ips: new Set(ports.flatMap((p) => p.ips.map((ip) => `${p.port} ${ip}`))),
  };
}

const elem = (e: string) => { const [port, v] = e.split(' '); return `"${port}" . ${v}`; };
const elements = (set: 'macs' | 'ips', op: 'add' | 'delete', es: string[]) =>
  es.length ? [`${op} element bridge ${NFT_TABLE} ${set} { ${es.map(elem).join(', ')} }`] : [];

export function fullRuleset(want: { macs: Set<string>; ips: Set<string> }): string {
  return [
    `add table bridge ${NFT_TABLE}`,
    `delete table bridge ${NFT_TABLE}`,
    `table bridge ${NFT_TABLE} {`,
    '  set macs { type ifname . ether_addr; }',
    '  set ips { type ifname . ipv4_addr; }',
    `  chain ${NFT_CHAIN} {`,
    '    type filter hook prerouting priority -200; policy accept;',
    ...RULES.map((r) => `    ${r}`),
    '  }',
    '}',
    ...elements('macs', 'add', [...want.macs].sort()),
    ...elements('ips', 'add', [...want.ips].sort()),
  ].join('\n') + '\n';
}

/**
 * What to run to get from `have` to `want`: an nft script (null: nothing to do) and the changes
 * it makes (1 for a new ruleset, plus one per set element added or deleted).
 */
export function planNft(have: NftState | null, want: { macs: Set<string>; ips: Set<string> }): { script: string | null; changes: string[] } {
  if (!have || !have.chainOk || !have.macs || !have.ips) {
    const changes = ['nft: (re)create table bridge kumo', ...[...want.macs, ...want.ips].sort().map((e) => `nft: + ${e}`)];
    return { script: fullRuleset(want), changes };
  }
  const lines: string[] = [];
  const changes: string[] = [];
  for (const set of ['macs', 'ips'] as const) {
    const h = have[set]!;
    const w = want[set];
    const del = [...h].filter((e) => !w.has(e)).sort();
    const add = [...w].filter((e) => !h.has(e)).sort();
    lines.push(...elements(set, 'delete', del), ...elements(set, 'add', add));
    changes.push(...del.map((e) => `nft: - ${set} ${e}`), ...add.map((e) => `nft: + ${set} ${e}`));
  }
  return { script: lines.length ? lines.join('\n') + '\n' : null, changes };
}

type Json = Record<string, any>;

/** `nft -j list table bridge kumo` → state; null when the table is missing. */
export function parseNft(doc: Json | null): NftState | null {
  if (!doc) return null;
  const items: Json[] = doc.nftables ?? [];
  const setOf = (name: string, types: string[]): Set<string> | null => {
    const s = items.find((i) => i.set?.name === name)?.set;
    if (!s || JSON.stringify(s.type) !== JSON.stringify(types)) return null;
    return new Set((s.elem ?? []).map((e: Json) => (e.concat ?? e.elem?.val?.concat ?? []).join(' ')));
  };
  const chain = items.find((i) => i.chain?.name === NFT_CHAIN)?.chain;
  const rules = items.filter((i) => i.rule?.chain === NFT_CHAIN).length;
  return {
    chainOk: !!chain && chain.hook === 'prerouting' && rules === RULES.length,
    macs: setOf('macs', ['ifname', 'ether_addr']),
    ips: setOf('ips', ['ifname', 'ipv4_addr']),
    rules,
  };
}

export async function readNft(netns: string | undefined): Promise<NftState | null> {
  try {
    const { stdout } = await run('nft', ['-j', 'list', 'table', 'bridge', NFT_TABLE], { netns });
    return parseNft(JSON.parse(stdout) as Json);
  } catch (e) {
    // nft says "Error: No such file or directory" for a missing table (not for a missing nft binary).
    if (/Error: No such file or directory/.test((e as Error).message)) return null;
    throw e;
  }
}

export async function applyNft(netns: string | undefined, script: string): Promise<void> {
  await run('nft', ['-f', '-'], { netns, input: script });
}

export async function deleteNftTable(netns: string | undefined): Promise<boolean> {
  if (!(await readNft(netns))) return false;
  await run('nft', ['delete', 'table', 'bridge', NFT_TABLE], { netns });
  return true;
}
