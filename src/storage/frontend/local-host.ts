import { networkInterfaces } from 'node:os';

let own: Set<string> | null = null;

/** The addresses of this machine's interfaces, read once (a node's address rarely moves between hosts). */
function ownAddresses(): Set<string> {
  if (!own) {
    own = new Set();
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) own.add(a.address);
  }
  return own;
}

/** True when `host` names this machine: loopback, `localhost`, or one of its interface addresses. */
export function isLocalHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost' || h === '::1' || h.startsWith('127.') || h === '::ffff:127.0.0.1') return true;
  return ownAddresses().has(h);
}
