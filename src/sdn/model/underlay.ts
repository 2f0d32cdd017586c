import { parseIp } from '../../core/ipv4.js';

/**
 * Whether `s` can be a gateway's underlay (VTEP) address: a unicast IPv4 address other than
 * 0.0.0.0/8 (this network), 127.0.0.0/8 (loopback) and 224.0.0.0/3 (multicast, reserved and the
 * broadcast address). VXLAN flood entries point at it from every other zone's gateway.
 */
export function isUnderlayAddress(s: string): boolean {
  const ip = parseIp(s);
  if (ip === null) return false;
  const first = ip >>> 24;
  return first !== 0 && first !== 127 && first < 224;
}
