/**
 * NoCloud seed for guests that boot without a network: cloud-init finds a filesystem labelled
 * `cidata` and reads meta-data, user-data, network-config (and vendor-data) from its root.
 * The documents are written as JSON, which is a subset of the YAML cloud-init parses them as.
 * The ISO itself is made by Debian's genisoimage (the tool cloud-localds uses), not by kumo.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import type { VmMetadata } from './types.js';

export const SEED_ISO_TOOL = 'genisoimage';
export const SEED_ISO_PACKAGE = 'genisoimage';

export function prefixLength(netmask: string): number {
  const octets = netmask.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) throw new Error(`bad netmask ${netmask}`);
  const bits = octets.map((o) => o.toString(2).padStart(8, '0')).join('');
  if (/01/.test(bits)) throw new Error(`netmask ${netmask} is not contiguous`);
  return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
}

export function seedMetaData(md: VmMetadata): string {
  return JSON.stringify({
    'instance-id': md.vmId,
    'local-hostname': md.hostname,
    'public-keys': md.publicKeys.map((k) => k.key),
  }, null, 2) + '\n';
}

/**
 * Network config v2. Each NIC is matched by MAC and renamed `eth<i>` in link order: the guest's own
 * NIC names are unknown here, and a renderer such as ifupdown needs a real name to write.
 */
export function seedNetworkConfig(md: VmMetadata): string {
  const dns = md.network.services.map((s) => s.address);
  const ethernets = Object.fromEntries(md.network.links.map((link, i) => {
    const nets = md.network.networks.filter((n) => n.link === link.id);
    const statics = nets.filter((n) => n.type === 'ipv4');
    const eth: Record<string, unknown> = { match: { macaddress: link.mac.toLowerCase() }, 'set-name': `eth${i}` };
    if (link.mtu !== undefined) eth.mtu = link.mtu;
    if (nets.some((n) => n.type === 'ipv4_dhcp')) eth.dhcp4 = true;
    if (statics.length > 0) {
      eth.addresses = statics.map((n) => {
        if (!n.ipAddress || !n.netmask) throw new Error(`static network ${n.id} needs an address and a netmask`);
        return `${n.ipAddress}/${prefixLength(n.netmask)}`;
      });
      const routes = statics.flatMap((n) => n.routes).map((r) => ({ to: `${r.network}/${prefixLength(r.netmask)}`, via: r.gateway }));
      if (routes.length > 0) eth.routes = routes;
    }
    if (dns.length > 0) eth.nameservers = { addresses: dns };
    return [`eth${i}`, eth];
  }));
  return JSON.stringify({ version: 2, ethernets }, null, 2) + '\n';
}

/** The seed's files; vendor-data only when vendor data carries a `cloud-init` document, as on OpenStack. */
export function seedFiles(md: VmMetadata): Record<string, string | Buffer> {
  const files: Record<string, string | Buffer> = {
    'meta-data': seedMetaData(md),
    'user-data': md.userData ?? '',
    'network-config': seedNetworkConfig(md),
  };
  const vendor = (md.vendorData as Record<string, unknown>)['cloud-init'];
  if (typeof vendor === 'string') files['vendor-data'] = vendor;
  return files;
}

export function seedIsoToolInstalled(): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, SEED_ISO_TOOL), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Writes the `cidata` ISO for `md` to `isoPath` (Rock Ridge + Joliet, as cloud-localds makes it). */
export async function buildSeedIso(md: VmMetadata, isoPath: string): Promise<void> {
  if (!seedIsoToolInstalled()) throw new Error(`${SEED_ISO_TOOL} is not installed (Debian: apt-get install ${SEED_ISO_PACKAGE})`);
  const dir = await mkdtemp(join(tmpdir(), 'kumo-cidata-'));
  try {
    for (const [name, body] of Object.entries(seedFiles(md))) await writeFile(join(dir, name), body);
    await promisify(execFile)(SEED_ISO_TOOL, [
      '-quiet', '-output', isoPath, '-volid', 'cidata', '-joliet', '-rock', '-input-charset', 'utf-8', dir,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
