/**
 * What the Debian cloud image is made of. Every name here is in the cache key: changing the list
 * rebuilds the image, and two lists never share a cached disk.
 */

export const SUITE = 'bookworm';
/** debootstrap's own mirror argument; KUMO_DEBIAN_MIRROR overrides it (a local mirror or proxy). */
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** minbase: only Essential and apt; everything the guest needs beyond that is listed below. */
export const VARIANT = 'minbase';

/**
 * Installed with debootstrap --include (no Recommends). Why each, as cloud-init on a kumo VM needs it:
 * - systemd-sysv, udev: cloud-init's four stages are systemd units; udev names the NIC and runs its hotplug rules
 * - cloud-init: Debian's 22.4 package, with its OpenStack datasource
 * - isc-dhcp-client: the OpenStack local datasource's ephemeral DHCP runs dhclient, then ifupdown does too
 * - iproute2: that ephemeral DHCP configures the link with `ip`
 * - ifupdown: the network renderer cloud-init picks on Debian (/etc/network/interfaces.d/50-cloud-init)
 * - openssh-server: the point of installing the ssh key; cloud-init also makes the host keys
 * - sudo: the default user `debian` gets passwordless sudo from cloud-init
 * - netbase: /etc/services and /etc/protocols, which python's socket helpers read
 * - kmod: /sbin/modprobe, which the kernel runs to load a filesystem on first mount (iso9660 of a
 *   NoCloud seed); udev alone loads only device drivers
 * - python3-cffi-backend: python3-cryptography (cloud-init → oauthlib) depends on the virtual
 *   python3-cffi-backend-api-min/-max it provides, and debootstrap's resolver does not follow virtual packages
 */
export const PACKAGES = ['systemd-sysv', 'udev', 'cloud-init', 'isc-dhcp-client', 'iproute2', 'ifupdown', 'openssh-server', 'sudo', 'netbase', 'kmod', 'python3-cffi-backend'];

/**
 * Kernel modules copied into the image's /lib/modules (with their dependencies) on top of what the
 * tiny initramfs already loaded: udev then finds the virtio devices kumo may add and modprobe works.
 * The whole module tree would be ~390 MiB; this closure is a few MiB. ahci + sr_mod + isofs read a
 * NoCloud seed (`kumo agent --nocloud-seed`: a CD-ROM on q35's AHCI).
 */
export const EXTRA_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_scsi', 'virtio_rng', 'virtio_balloon', 'virtio_console',
  'ext4', 'af_packet', 'button', 'evdev', 'sd_mod', 'ahci', 'sr_mod', 'isofs', 'vfat', 'nls_ascii', 'loop', 'tun'];
