/**
 * The guest agent's configuration as lines, for the tiny image's busybox sh, which cannot parse
 * JSON (`GET /kumo/v1/config?format=lines`). One record per line, the first word its key, fields
 * separated by one space, every line ending in \n:
 *
 *   generation N                       always first
 *   hostname NAME                      RFC 1123 name (letters, digits, '-', '.'), else no record
 *   nic MAC [ADDR/PREFIX …]            one per link: lower-case MAC, its static IPv4 addresses
 *   route NET/PREFIX GATEWAY           0.0.0.0/0 is the default route
 *   dns ADDR [ADDR …]                  IPv4 name servers, in order
 *   user NAME HASH|-                   - keeps the password as it is; root always has a record
 *   key NAME B64                       one authorized_keys line of user NAME (after its user record)
 *   sshd B64                           the whole sshd_config
 *   iptables B64                       iptables-restore input
 *   file MODE B64(path) B64(content)   MODE is octal, e.g. 0644; the path is absolute
 *   end                                always last: a reply without it was cut short
 *
 * B64 is standard base64 without line breaks, `-` for the empty string. Every word is either
 * validated against a strict pattern here or base64, so nothing a tenant sets (hostname, keys,
 * files, rules) can add a line, a field or shell syntax; values that fail validation are left out.
 * The guest still treats every word as data and never evaluates it.
 */
import type { KumoGuestConfig, VmMetadata } from './types.js';

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
/** crypt(3) hashes ($6$salt$…, $y$…): no ':' (the shadow separator), blank or backslash. */
const HASH = /^[A-Za-z0-9./$=+,*!-]{1,512}$/;
const MODE = /^0?[0-7]{3,4}$/;
const B64 = /^(?:-|[A-Za-z0-9+/]+={0,2})$/;

export function b64(data: string | Buffer): string {
  const s = (typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64');
  return s === '' ? '-' : s;
}

function unb64(word: string): Buffer {
  if (!B64.test(word)) throw new Error(`not base64: ${word.slice(0, 20)}`);
  return word === '-' ? Buffer.alloc(0) : Buffer.from(word, 'base64');
}

/** 255.255.255.0 → 24; null for a non-contiguous or malformed mask. */
export function maskPrefix(mask: string | undefined): number | null {
  if (mask === undefined || !IPV4.test(mask)) return null;
  const n = mask.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  for (let p = 0; p <= 32; p++) {
    const m = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
    if (m === n) return p;
  }
  return null;
}

/** "10.0.0.5/24" or "10.0.0.5" (→ /32) when it is an IPv4 address with a valid prefix. */
function cidr(addr: string, prefix: number | null): string | null {
  return IPV4.test(addr) && prefix !== null ? `${addr}/${prefix}` : null;
}

/** Tolerates a partial or malformed kumo part: the guest gets what is well-formed. */
function kumoPart(md: VmMetadata): Partial<KumoGuestConfig> {
  const k = md.vendorData?.kumo;
  return k !== null && typeof k === 'object' ? k : {};
}

const str = (v: unknown): v is string => typeof v === 'string';

const ipNumber = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
/** Whether `ip` is inside `address`'s subnet ("a.b.c.d/p"). */
function onSubnet(ip: string, address: string): boolean {
  const [a, p] = address.split('/');
  const size = 2 ** (32 - Number(p));
  return Math.floor(ipNumber(ip) / size) === Math.floor(ipNumber(a) / size);
}

export function agentLines(md: VmMetadata): string {
  const k = kumoPart(md);
  const out: string[] = [`generation ${Math.max(0, Math.trunc(md.generation))}`];

  const hostname = str(k.hostname) && k.hostname !== '' ? k.hostname : md.hostname;
  if (str(hostname) && HOSTNAME.test(hostname)) out.push(`hostname ${hostname}`);

  const statics: string[] = [];
  for (const link of md.network.links) {
    const mac = link.mac.toLowerCase();
    if (!MAC.test(mac)) continue;
    const addrs = md.network.networks
      .filter((n) => n.link === link.id && n.type === 'ipv4' && str(n.ipAddress))
      .map((n) => cidr(n.ipAddress!, maskPrefix(n.netmask ?? '255.255.255.255')))
      .filter((a): a is string => a !== null);
    out.push(['nic', mac, ...new Set(addrs)].join(' '));
    statics.push(...addrs);
  }

  // Destination → gateway; the tenant's own gateway (setNetwork) replaces the subnet's default.
  const routes = new Map<string, string>();
  for (const n of md.network.networks) {
    if (n.type !== 'ipv4') continue;
    for (const r of n.routes) {
      const dest = cidr(r.network, maskPrefix(r.netmask));
      if (dest !== null && IPV4.test(r.gateway)) routes.set(dest, r.gateway);
    }
  }
  // Only a gateway on one of the guest's subnets can be applied; another waits for its address, and
  // the generation is still confirmable.
  if (str(k.gateway) && IPV4.test(k.gateway) && statics.some((a) => onSubnet(k.gateway!, a))) routes.set('0.0.0.0/0', k.gateway);
  for (const [dest, gw] of routes) out.push(`route ${dest} ${gw}`);

  const dns = (Array.isArray(k.dns) ? k.dns : md.network.services.map((s) => s.address)).filter((a) => str(a) && IPV4.test(a));
  if (dns.length > 0) out.push(['dns', ...new Set(dns)].join(' '));

  // root always has a record, so its authorized_keys follows public_keys even when they go away.
  const users = new Map<string, { hash: string; keys: string[] }>([['root', { hash: '-', keys: [] }]]);
  for (const pk of md.publicKeys) if (str(pk.key)) users.get('root')!.keys.push(pk.key);
  for (const u of Array.isArray(k.users) ? k.users : []) {
    if (!str(u?.name) || !USER.test(u.name)) continue;
    const entry = users.get(u.name) ?? { hash: '-', keys: [] };
    if (str(u.passwordHash) && u.passwordHash !== '-' && HASH.test(u.passwordHash)) entry.hash = u.passwordHash;
    for (const key of Array.isArray(u.sshKeys) ? u.sshKeys : []) if (str(key)) entry.keys.push(key);
    users.set(u.name, entry);
  }
  for (const [name, u] of users) out.push(`user ${name} ${u.hash}`);
  for (const [name, u] of users) {
    // A key line with a line break would be two authorized_keys entries: left out.
    for (const key of new Set(u.keys)) if (key.trim() !== '' && !/[\r\n]/.test(key)) out.push(`key ${name} ${b64(key)}`);
  }

  if (str(k.sshdConfig)) out.push(`sshd ${b64(k.sshdConfig)}`);
  if (str(k.iptables)) out.push(`iptables ${b64(k.iptables)}`);
  for (const f of Array.isArray(k.files) ? k.files : []) {
    if (!str(f?.path) || !str(f.content) || !str(f.mode) || !MODE.test(f.mode)) continue;
    if (!f.path.startsWith('/') || /[\0\r\n]/.test(f.path) || f.path.split('/').includes('..')) continue;
    out.push(`file ${f.mode} ${b64(f.path)} ${b64(Buffer.from(f.content, 'base64'))}`);
  }
  out.push('end');
  return out.join('\n') + '\n';
}

/** The records of a lines document, decoded: what the guest agent will apply. */
export interface ParsedAgentLines {
  generation: number;
  hostname: string | null;
  nics: { mac: string; addresses: string[] }[];
  routes: { dest: string; gateway: string }[];
  dns: string[];
  users: { name: string; hash: string | null }[];
  keys: { user: string; key: string }[];
  sshd: string | null;
  iptables: string | null;
  files: { mode: string; path: string; content: Buffer }[];
}

const CIDR = (w: string) => {
  const [a, p, more] = w.split('/');
  return more === undefined && IPV4.test(a) && /^(?:\d|[12]\d|3[0-2])$/.test(p ?? '');
};

/** Strict reading of agentLines' output, as the guest reads it; throws on anything off-grammar. */
export function parseAgentLines(text: string): ParsedAgentLines {
  if (!text.endsWith('\n')) throw new Error('the document does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const r: ParsedAgentLines = { generation: -1, hostname: null, nics: [], routes: [], dns: [], users: [], keys: [], sshd: null, iptables: null, files: [] };
  const bad = (i: number) => new Error(`line ${i + 1} is malformed: ${lines[i].slice(0, 60)}`);
  lines.forEach((line, i) => {
    const w = line.split(' ');
    const n = w.length;
    if (w.some((x) => x === '' || !/^[\x21-\x7e]+$/.test(x))) throw bad(i);
    const first = i === 0, last = i === lines.length - 1;
    if (first !== (w[0] === 'generation') || last !== (w[0] === 'end')) throw bad(i);
    switch (w[0]) {
      case 'generation': if (n !== 2 || !/^\d{1,15}$/.test(w[1])) throw bad(i); r.generation = Number(w[1]); break;
      case 'hostname': if (n !== 2 || !HOSTNAME.test(w[1])) throw bad(i); r.hostname = w[1]; break;
      case 'nic': if (n < 2 || !MAC.test(w[1]) || !w.slice(2).every(CIDR)) throw bad(i); r.nics.push({ mac: w[1], addresses: w.slice(2) }); break;
      case 'route': if (n !== 3 || !CIDR(w[1]) || !IPV4.test(w[2])) throw bad(i); r.routes.push({ dest: w[1], gateway: w[2] }); break;
      case 'dns': if (n < 2 || !w.slice(1).every((a) => IPV4.test(a))) throw bad(i); r.dns = w.slice(1); break;
      case 'user': if (n !== 3 || !USER.test(w[1]) || !HASH.test(w[2])) throw bad(i); r.users.push({ name: w[1], hash: w[2] === '-' ? null : w[2] }); break;
      case 'key':
        if (n !== 3 || !r.users.some((u) => u.name === w[1])) throw bad(i);
        r.keys.push({ user: w[1], key: unb64(w[2]).toString('utf8') });
        break;
      case 'sshd': if (n !== 2) throw bad(i); r.sshd = unb64(w[1]).toString('utf8'); break;
      case 'iptables': if (n !== 2) throw bad(i); r.iptables = unb64(w[1]).toString('utf8'); break;
      case 'file':
        if (n !== 4 || !MODE.test(w[1])) throw bad(i);
        r.files.push({ mode: w[1], path: unb64(w[2]).toString('utf8'), content: unb64(w[3]) });
        break;
      case 'end': if (n !== 1) throw bad(i); break;
      default: throw bad(i);
    }
  });
  return r;
}
