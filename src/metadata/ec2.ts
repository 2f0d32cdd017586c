/**
 * The EC2 metadata tree as cloud-init crawls it (and as OpenStack's EC2-compatible API serves it):
 * a listing names leaves, and subtrees with a trailing `/`; `public-keys/` lists `<index>=<name>`,
 * which the crawler turns into `public-keys/<index>/openssh-key`.
 */
import { listing, OCTETS, text, type Reply } from './reply.js';
import type { VmMetadata } from './types.js';

export const EC2_VERSIONS = ['1.0', '2009-04-04', 'latest'] as const;

type Node = string | Dir;
interface Dir {
  children: Record<string, Node>;
  /** Replaces the derived listing where EC2 lists entries differently (`public-keys/`). */
  listing?: string[];
}

function dir(children: Record<string, Node>): Dir {
  return { children };
}

/** Key names come from tenants: a newline would forge listing entries in the guest's own crawl. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, '_');
}

function metaDataTree(md: VmMetadata): Dir {
  const children: Record<string, Node> = {
    hostname: md.hostname,
    'instance-id': md.vmId,
    'local-hostname': md.hostname,
    placement: dir({ 'availability-zone': md.zone }),
  };
  if (md.localIpv4 !== null) children['local-ipv4'] = md.localIpv4;
  // EC2 leaves `public-keys/` out of the listing when the instance has no key.
  if (md.publicKeys.length > 0) {
    children['public-keys'] = {
      children: Object.fromEntries(md.publicKeys.map((k, i) => [String(i), dir({ 'openssh-key': k.key })])),
      listing: md.publicKeys.map((k, i) => `${i}=${oneLine(k.name)}`),
    };
  }
  return dir(children);
}

function list(d: Dir): Reply {
  return listing(d.listing ?? Object.keys(d.children).sort().map((k) => (typeof d.children[k] === 'string' ? k : `${k}/`)));
}

function walk(d: Dir, path: string[]): Reply | null {
  let node: Node = d;
  for (const name of path) {
    if (typeof node === 'string' || !Object.hasOwn(node.children, name)) return null;
    node = node.children[name];
  }
  return typeof node === 'string' ? text(node) : list(node);
}

/** `path` is the whole request path split on `/`; null means 404. */
export function ec2Path(md: VmMetadata, path: string[]): Reply | null {
  if (path.length === 0) return listing([...EC2_VERSIONS]);
  const [version, tree, ...rest] = path;
  if (!(EC2_VERSIONS as readonly string[]).includes(version)) return null;
  if (tree === undefined) return listing(md.userData ? ['meta-data', 'user-data'] : ['meta-data']);
  if (tree === 'meta-data') return walk(metaDataTree(md), rest);
  if (tree === 'user-data' && rest.length === 0 && md.userData) return { status: 200, type: OCTETS, body: md.userData };
  return null;
}
