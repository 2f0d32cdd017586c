import { invalidParams } from '../core/errors.js';
import { Precompiled, type Db } from '../state/db.js';

/** What each init method records, by HaaS method name. Passwords arrive here already hashed. */
export interface InitPayloads {
  setIpAddress: { slot: number; address: string };
  unsetIpAddress: { slot: number; address: string };
  setNetwork: { gateway?: string; dns?: string[]; hostname?: string };
  setPassword: { user: string; passwordHash: string };
  setSshKey: { user: string; publicKey: string };
  setIptables: { rules: string };
  setSshdConfig: { text: string };
  writeFile: { path: string; content: string; mode: string };
}
export type InitMethod = keyof InitPayloads;

/** A VM's guest configuration as the metadata service serves it (network_data / vendor_data). */
export interface GuestConfig {
  /** The newest generation folded in; 0 when the VM was never configured. */
  generation: number;
  /** Addresses ("ip/prefix") per NIC slot, ascending; a slot whose last address went is kept, empty. */
  nics: { slot: number; addresses: string[] }[];
  gateway?: string;
  dns?: string[];
  hostname?: string;
  users: { name: string; passwordHash?: string; sshKeys: string[] }[];
  iptables?: string;
  sshdConfig?: string;
  /** content is base64; in the order last written, a later write of a path replacing the earlier one. */
  files: { path: string; content: string; mode: string }[];
}

/** One recorded init call; `kind` tells its payload's shape. */
export type Generation = { [M in InitMethod]: { generation: number; kind: M; payload: InitPayloads[M] } }[InitMethod];

/** Replays every generation in order: addresses and keys accumulate, the rest is last-writer-wins
 * per field, user or path, so a setNetwork naming only the hostname keeps the earlier gateway. */
export function foldGenerations(gens: Generation[]): GuestConfig {
  const nics = new Map<number, string[]>();
  const users = new Map<string, GuestConfig['users'][number]>();
  const files = new Map<string, GuestConfig['files'][number]>();
  const user = (name: string) => users.get(name) ?? users.set(name, { name, sshKeys: [] }).get(name)!;
  const c: GuestConfig = { generation: 0, nics: [], users: [], files: [] };
  for (const g of gens) {
    c.generation = Math.max(c.generation, g.generation);
    switch (g.kind) {
      case 'setIpAddress': case 'unsetIpAddress': {
        const { slot, address } = g.payload;
        const rest = (nics.get(slot) ?? []).filter((a) => a !== address);
        nics.set(slot, g.kind === 'setIpAddress' ? [...rest, address] : rest);
        break;
      }
      case 'setNetwork': {
        const { gateway, dns, hostname } = g.payload;
        if (gateway !== undefined) c.gateway = gateway;
        if (dns !== undefined) c.dns = dns;
        if (hostname !== undefined) c.hostname = hostname;
        break;
      }
      case 'setPassword': user(g.payload.user).passwordHash = g.payload.passwordHash; break;
      case 'setSshKey': {
        const keys = user(g.payload.user).sshKeys;
        if (!keys.includes(g.payload.publicKey)) keys.push(g.payload.publicKey);
        break;
      }
      case 'setIptables': c.iptables = g.payload.rules; break;
      case 'setSshdConfig': c.sshdConfig = g.payload.text; break;
      case 'writeFile': files.delete(g.payload.path); files.set(g.payload.path, g.payload); break;
    }
  }
  c.nics = [...nics].sort(([a], [b]) => a - b).map(([slot, addresses]) => ({ slot, addresses }));
  c.users = [...users.values()];
  c.files = [...files.values()];
  return c;
}

// The metadata service reads this on every guest poll (a boot storm is its benchmark): compiled once.
const GENERATIONS = new Precompiled((k, vmId: string) => k.selectFrom('vm_config_generations')
  .select(['generation', 'kind', 'payload']).where('vm_id', '=', vmId).orderBy('generation'));

/** The VM's current guest configuration: all its generations folded. */
export async function guestConfig(db: Db, vmId: string): Promise<GuestConfig> {
  const rows = await GENERATIONS.execute(db, db.k, vmId);
  return foldGenerations(rows.map((r) => ({ generation: r.generation, kind: r.kind as InitMethod, payload: JSON.parse(r.payload) }) as Generation));
}

export const MAX_USER_DATA = 64 * 1024;

/** user-data is handed to cloud-init untouched; only its size is kumo's business. */
export function checkUserData(data: string | Buffer): void {
  const bytes = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
  if (bytes > MAX_USER_DATA) throw invalidParams(`user-data is ${bytes} bytes; at most ${MAX_USER_DATA} (64 KiB) are accepted`);
}
