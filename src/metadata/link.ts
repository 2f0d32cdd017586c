/**
 * How a VM reaches its host's metadata service: on its first NIC, DHCP hands the guest a
 * link-local address of its own and http://169.254.169.254/ answers on-link. The host side tells
 * VMs apart by the device (tap) a packet arrived on, which the guest cannot forge: each VM's
 * connections are steered to a local port of its own, and that port is its identity.
 */
import { createHash } from 'node:crypto';

export const METADATA_IP = '169.254.169.254';

/** A VM id as part of a file name on the host (kumo's ids already are; anything else is made safe). */
export const vmFileName = (vmId: string) => vmId.replace(/[^A-Za-z0-9_.-]/g, '_');

export interface MetadataLinkSpec {
  vmId: string;
  /** The host-side device of the VM's first NIC (its tap). */
  device: string;
  mac: string;
  /** The link-local address DHCP gives the guest (unique among this kernel's VMs). */
  guestAddress: string;
  /** The 127.0.0.1 port serving this VM's metadata. */
  port: number;
}

/** The network side of the metadata service; implemented with ip/nft/dnsmasq (sdn/linux). */
export interface MetadataLink {
  /** Safe to repeat: an agent re-attaches the VMs it adopts after a restart (with new ports). */
  attach(spec: MetadataLinkSpec): Promise<void>;
  /** Safe to repeat, and with the device already gone. */
  detach(vmId: string, device: string, guestAddress: string): Promise<void>;
  /** Guest addresses this kernel already routes to some VM's device. */
  addressesInUse(): Promise<Set<string>>;
}

// RFC 3927 keeps 169.254.0.x and 169.254.255.x; 169.254.169.254 is the service itself.
const THIRD = 254;
const FOURTH = 254;
const SPACE = THIRD * FOURTH;

const nth = (i: number) => `169.254.${1 + Math.floor(i / FOURTH)}.${1 + (i % FOURTH)}`;

/**
 * Every usable guest address, starting at one derived from the VM id: a VM usually gets the same
 * address on every host (its DHCP lease stays valid across a live migration), and the next free
 * one when that is taken.
 */
export function* guestAddresses(vmId: string): Generator<string> {
  const start = createHash('sha256').update(vmId).digest().readUInt32BE(0) % SPACE;
  for (let k = 0; k < SPACE; k++) {
    const a = nth((start + k) % SPACE);
    if (a !== METADATA_IP) yield a;
  }
}

export function pickGuestAddress(vmId: string, taken: Set<string>): string {
  for (const a of guestAddresses(vmId)) if (!taken.has(a)) return a;
  throw new Error('no link-local address is left for the metadata link (65,000 VMs on one host?)');
}
