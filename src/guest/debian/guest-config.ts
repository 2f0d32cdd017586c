/**
 * Files the Debian image gets on top of debootstrap's, and what is removed from it. Applied to the
 * debootstrapped directory on the host (no chroot), so they are part of the cache key (see build.ts).
 */

/**
 * cloud-init: kumo's metadata service speaks OpenStack (DMI product "OpenStack Nova" lets
 * ds-identify pick it); NoCloud covers a config drive; None ends the search instead of waiting.
 * The OpenStack datasource's default wait is long under TCG when something is wrong; these keep a
 * failure visible within a few minutes. Output also goes to the serial console for kumo's console log.
 */
export const CLOUD_CFG = `# kumo: written by kumo image build-debian
datasource_list: [ OpenStack, NoCloud, None ]
datasource:
  OpenStack:
    metadata_urls: [ 'http://169.254.169.254' ]
    max_wait: 120
    timeout: 10
    retries: 5
output: { all: '| tee -a /var/log/cloud-init-output.log' }
# No locales package (and no locale data) in the image: cc_locale would fail every boot.
locale: false
`;

/** No partition table: the whole virtio disk is the root filesystem (as in tiny-linux). */
export const FSTAB = '/dev/vda\t/\text4\tdefaults,errors=remount-ro\t0\t1\n';

/** cloud-init's network config lands in interfaces.d (ifupdown renderer). */
export const INTERFACES = `# kumo: cloud-init writes the NIC configuration to /etc/network/interfaces.d/50-cloud-init
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*
`;

export const HOSTS = '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n';

/** Small files written into the tree: path (relative to /) → content. */
export const FILES: Record<string, string> = {
  'etc/cloud/cloud.cfg.d/90_kumo.cfg': CLOUD_CFG,
  'etc/fstab': FSTAB,
  'etc/network/interfaces': INTERFACES,
  'etc/hostname': 'debian\n',
  'etc/hosts': HOSTS,
  // Empty: systemd makes a new machine id on first boot, so every VM's differs.
  'etc/machine-id': '',
  'etc/resolv.conf': '',
};

/**
 * Symlinks replaced (path → new target). /sbin/init is `/lib/systemd/systemd`, absolute: the tiny
 * initramfs checks `[ -e /newroot/sbin/init ]` before switch_root, which resolves an absolute link
 * inside the initramfs and fails. The relative link points at the same file from anywhere.
 */
export const SYMLINKS: Record<string, string> = {
  'usr/sbin/init': '../lib/systemd/systemd',
};

/**
 * Removed after debootstrap: the host's leftovers and what a VM must make for itself (ssh host
 * keys: cloud-init generates them per instance), and bulk that a server needs nothing of.
 * Directories listed with a trailing slash keep the directory and lose its contents.
 */
export const PRUNE = [
  'etc/ssh/ssh_host_*',
  'var/lib/dbus/machine-id',
  'var/lib/apt/lists/',
  'var/cache/apt/',
  'var/cache/debconf/*-old',
  'var/log/*.log',
  'var/log/apt/',
  'usr/share/doc/',
  'usr/share/man/',
  'usr/share/info/',
  'usr/share/locale/',
  'usr/share/lintian/',
];
