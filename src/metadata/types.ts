/**
 * What one VM's metadata is made of: the controller hands this to the agent, and every format the
 * metadata service speaks (OpenStack, EC2, NoCloud, kumo's own long-poll) is derived from it, so the
 * formats can never disagree about a VM.
 */

export interface PublicKey {
  /** Unique within a VM: cloud-init keys both the OpenStack and the EC2 form by name. */
  name: string;
  /** One OpenSSH public key line, e.g. `ssh-ed25519 AAAA… comment`. */
  key: string;
}

export interface Link {
  /** Names the NIC inside the metadata only (networks refer to it); guests find the NIC by `mac`. */
  id: string;
  mac: string;
  mtu?: number;
}

export interface Route {
  network: string;
  netmask: string;
  gateway: string;
}

export interface Network {
  id: string;
  /** The `id` of the Link this network sits on. */
  link: string;
  type: 'ipv4' | 'ipv4_dhcp';
  /** Required for `ipv4` (static); ignored for `ipv4_dhcp`. */
  ipAddress?: string;
  netmask?: string;
  routes: Route[];
}

export interface DnsService {
  type: 'dns';
  address: string;
}

export interface VmNetwork {
  links: Link[];
  networks: Network[];
  services: DnsService[];
}

export interface VmMetadata {
  vmId: string;
  name: string;
  hostname: string;
  zone: string;
  tenantId: string;
  publicKeys: PublicKey[];
  meta: Record<string, string>;
  /** Opaque bytes as the tenant gave them (a `#!` script or `#cloud-config`); null when none. */
  userData: Buffer | null;
  /** kumo's init-API state (and, under a `cloud-init` key, vendor config cloud-init applies). */
  vendorData: VendorData;
  network: VmNetwork;
  /** Bumped by the controller on every init-API change; the guest agent long-polls on it. */
  generation: number;
  localIpv4: string | null;
}

/**
 * What the controller's init API (setPassword, setSshKey, writeFile, …) has made of a VM, as the
 * guest agent applies it: served under `vendorData.kumo`. Addresses are not here: they are in
 * `network` (network_data.json), which every guest reads.
 */
export interface KumoGuestConfig {
  users: { name: string; passwordHash?: string; sshKeys: string[] }[];
  iptables?: string;
  sshdConfig?: string;
  /** content is base64; mode is octal text, e.g. "0644". The controller checked the paths. */
  files: { path: string; content: string; mode: string }[];
  dns?: string[];
  gateway?: string;
  hostname?: string;
}

/** Nova's vendor data: kumo's own part under `kumo`, cloud-init's under `cloud-init`. */
export interface VendorData {
  kumo?: KumoGuestConfig;
  'cloud-init'?: unknown;
  [provider: string]: unknown;
}
