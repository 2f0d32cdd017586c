/** IPv4 arithmetic on 32-bit unsigned integers, for CIDRs and address pools. */
export interface Cidr { base: number; prefix: number }

const OCTETS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIp(s: string): number | null {
  const m = OCTETS.exec(s);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  if (o.some((x, i) => x > 255 || (m[i + 1].length > 1 && m[i + 1][0] === '0'))) return null;
  return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
}

export const formatIp = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** Parses "a.b.c.d/n"; the address must be the network address (no host bits). */
export function parseCidr(s: string): Cidr | null {
  const [ip, p, extra] = s.split('/');
  if (extra !== undefined || p === undefined || !/^\d{1,2}$/.test(p)) return null;
  const base = parseIp(ip);
  const prefix = Number(p);
  if (base === null || prefix > 32) return null;
  if ((base & mask(prefix)) >>> 0 !== base) return null;
  return { base, prefix };
}

export const formatCidr = (c: Cidr) => `${formatIp(c.base)}/${c.prefix}`;
export const size = (c: Cidr) => 2 ** (32 - c.prefix);
export const contains = (c: Cidr, ip: number) => ((ip & mask(c.prefix)) >>> 0) === c.base;
export const overlaps = (a: Cidr, b: Cidr) => contains(a, b.base) || contains(b, a.base);

/** Usable host addresses: not the network or broadcast address (for prefixes up to /30). */
export const isHost = (c: Cidr, ip: number) => contains(c, ip) && (c.prefix >= 31 || (ip !== c.base && ip !== c.base + size(c) - 1));
