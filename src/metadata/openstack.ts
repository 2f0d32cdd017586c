/**
 * The OpenStack metadata format (Nova's `/openstack` tree) as cloud-init's OpenStack datasource
 * reads it: it lists `/openstack`, picks the newest dated version it knows, then reads
 * meta_data.json (required), user_data, vendor_data.json, vendor_data2.json and network_data.json
 * (optional: a 404 means "none"). Nova's per-version contents are kept so an old reader sees the
 * files its version had.
 */
import { json, listing, OCTETS, type Reply } from './reply.js';
import type { VmMetadata } from './types.js';

/** cloud-init's OS_VERSIONS (Folsom … Rocky), oldest first. */
export const OPENSTACK_VERSIONS = [
  '2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27',
] as const;

const LIBERTY = '2015-10-15';
const NEWTON_ONE = '2016-06-30';

/** The version each file appeared in, in Nova. */
const FILES: Record<string, string> = {
  'meta_data.json': '2012-08-10',
  user_data: '2012-08-10',
  'vendor_data.json': '2013-10-17',
  'network_data.json': LIBERTY,
  'vendor_data2.json': '2016-10-06',
};

function known(version: string): boolean {
  return version === 'latest' || (OPENSTACK_VERSIONS as readonly string[]).includes(version);
}

/** Dated versions compare as strings; `latest` is newer than all of them. */
function since(version: string, first: string): boolean {
  return version === 'latest' || version >= first;
}

export function metaDataJson(md: VmMetadata, version = 'latest'): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    uuid: md.vmId,
    name: md.name,
    hostname: md.hostname,
    availability_zone: md.zone,
    launch_index: 0,
    meta: md.meta,
    // cloud-init reads the name→key map; `keys` is Nova's newer list form, kept for other readers.
    public_keys: Object.fromEntries(md.publicKeys.map((k) => [k.name, k.key])),
    keys: md.publicKeys.map((k) => ({ name: k.name, type: 'ssh', data: k.key })),
  };
  if (since(version, LIBERTY)) doc.project_id = md.tenantId;
  if (since(version, NEWTON_ONE)) doc.devices = [];
  return doc;
}

/**
 * cloud-init matches each link to a guest NIC by `ethernet_mac_address` (lower case) and turns
 * `ipv4` networks into static addresses with their routes, `ipv4_dhcp` into DHCP.
 */
export function networkDataJson(md: VmMetadata): Record<string, unknown> {
  return {
    links: md.network.links.map((l) => ({
      id: l.id,
      type: 'phy',
      ethernet_mac_address: l.mac.toLowerCase(),
      ...(l.mtu === undefined ? {} : { mtu: l.mtu }),
    })),
    networks: md.network.networks.map((n) => n.type === 'ipv4'
      ? { id: n.id, type: 'ipv4', link: n.link, network_id: n.id, ip_address: n.ipAddress, netmask: n.netmask, routes: n.routes }
      : { id: n.id, type: 'ipv4_dhcp', link: n.link, network_id: n.id }),
    services: md.network.services.map((s) => ({ type: s.type, address: s.address })),
  };
}

/**
 * Nova's dynamic vendor data is keyed by provider; cloud-init applies only a top-level
 * `cloud-init` entry, so kumo's data here is never applied twice next to vendor_data.json.
 */
export function vendorData2Json(md: VmMetadata): Record<string, unknown> {
  return { kumo: md.vendorData };
}

function file(md: VmMetadata, version: string, name: string): Reply | null {
  switch (name) {
    case 'meta_data.json': return json(metaDataJson(md, version));
    case 'user_data': return md.userData ? { status: 200, type: OCTETS, body: md.userData } : null;
    case 'vendor_data.json': return json(md.vendorData);
    case 'network_data.json': return json(networkDataJson(md));
    case 'vendor_data2.json': return json(vendorData2Json(md));
    default: return null;
  }
}

/** `path` is what follows `/openstack`, split on `/`; null means 404. */
export function openstackPath(md: VmMetadata, path: string[]): Reply | null {
  if (path.length === 0) return listing([...OPENSTACK_VERSIONS, 'latest']);
  const [version, name, ...more] = path;
  if (!known(version) || more.length > 0) return null;
  const present = Object.keys(FILES).filter((f) => since(version, FILES[f]) && (f !== 'user_data' || md.userData));
  if (name === undefined) return listing(present);
  return present.includes(name) ? file(md, version, name) : null;
}
