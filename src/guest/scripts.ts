/**
 * The shell scripts inside the tiny guest (busybox sh). Contract with the host side:
 * - one line `KUMO-BOOT vm=<id> boot=<n>` on ttyS0 once the system is up (n counts boots, on disk);
 * - the VM id comes from SMBIOS type 1 serial (`-smbios type=1,serial=ID`), else `kumo.vm=ID`;
 * - the ACPI power button (QMP system_powerdown) shuts it down cleanly: `KUMO-SHUTDOWN vm=<id>`,
 *   processes stopped, / remounted read-only, power off;
 * - `kumo.counter=1` (and `kumo.counter_ms=N`, default 1000) starts kumo-counter, which appends
 *   1, 2, 3… to /var/lib/kumo/counter, fsyncs, and prints `KUMO-COUNTER n=<n>` on ttyS0;
 * - `kumo.dirty_mib=N` (and `kumo.dirty_ms=M`, pause between sweeps, default 0) keeps rewriting
 *   N MiB of RAM with changing non-zero data (a guest that dirties memory, for live migration) and
 *   prints `KUMO-DIRTY mib=<N>` on ttyS0 once it runs (N+1 MiB of tmpfs: a 128 MiB guest fits ~40, not 64);
 * - executables in /etc/kumo/boot.d/ run, in name order, before the marker (metadata goes there);
 * - kumo-agent (agent.ts) starts in the background right after the marker: with a NIC it applies
 *   kumo's config from the metadata service (`KUMO-CONFIG generation=<n> applied`) and runs a `#!`
 *   user-data once (`KUMO-USERDATA exit=<code>`); without a NIC it exits at once.
 * Written as template literals: every shell `\${` is escaped.
 */

/** Shared helpers, sourced by the other scripts. */
export const FUNCTIONS = `# kumo tiny guest: shell helpers (sourced)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

# kumo_param NAME: the value of NAME=VALUE on the kernel command line; fails when absent.
kumo_param() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "$1="*) echo "\${w#*=}"; return 0 ;; esac
	done
	return 1
}

# kumo_vm_id: SMBIOS system serial if it looks like an id, else kumo.vm=, else "unknown".
kumo_vm_id() {
	id=
	[ -r /sys/class/dmi/id/product_serial ] && read -r id < /sys/class/dmi/id/product_serial
	case "$id" in '' | *[!A-Za-z0-9._-]*) id=$(kumo_param kumo.vm) ;; esac
	case "$id" in '' | *[!A-Za-z0-9._-]*) id=unknown ;; esac
	echo "$id"
}

# kumo_say LINE: one line on the serial console (ttyS0), or on /dev/console without one.
kumo_say() {
	{ echo "$*" > /dev/ttyS0; } 2>/dev/null || echo "$*" > /dev/console
}

# kumo_dirty MIB [PAUSE_MS]: rewrites MIB MiB of a file on its own tmpfs forever. Each sweep writes
# one random MiB repeated, shifted by another offset every time, so every page's content changes:
# QEMU's page sampling sees the change (not only the write) and no page is a zero page.
kumo_dirty() {
	mib=$1
	ms=\${2:-0}
	d=/run/kumo-dirty
	case "$mib$ms" in '' | *[!0-9]*) kumo_say "kumo: bad kumo.dirty_mib/kumo.dirty_ms"; return 2 ;; esac
	[ "$mib" -gt 0 ] || return 0
	mkdir -p $d && mount -t tmpfs -o size=$((mib + 2))m kumo-dirty $d || return 1
	head -c 1048576 /dev/urandom > $d/seed || return 1
	seeds=
	i=1
	while [ $i -lt "$mib" ]; do seeds="$seeds $d/seed"; i=$((i + 1)); done
	: > $d/data
	k=0
	while :; do
		k=$((k + 1))
		o=$((k * 65537 % 1048576 + 1))
		# exactly MIB MiB, written in place: the seed from byte o, whole seeds, the seed up to byte o
		{ tail -c +$o $d/seed; cat $seeds /dev/null; head -c $((o - 1)) $d/seed; } 1<> $d/data
		[ $k = 1 ] && kumo_say "KUMO-DIRTY mib=$mib"
		[ "$ms" -gt 0 ] && usleep $((ms * 1000))
	done
}
`;

/** busybox init's table: no getty and no shell on the console, only the two scripts. */
export const INITTAB = `# kumo tiny guest: no getty, no shell; the console carries what the scripts print.
::sysinit:/etc/kumo/rc.boot
::shutdown:/etc/kumo/rc.shutdown
::ctrlaltdel:/sbin/poweroff
`;

export const RC_BOOT = `#!/bin/sh
# kumo tiny guest: system start (busybox init's sysinit action).
. /etc/kumo/functions
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
grep -q '^[^ ]* /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
mount -t tmpfs -o nosuid,nodev tmpfs /tmp
mount -o remount,rw / 2>/dev/null
ifconfig lo 127.0.0.1 up 2>/dev/null

# ACPI power button -> /etc/acpi/PWRF/00000080 (button + evdev were loaded by the initramfs).
# As early as possible: a press before acpid opens the input device is lost.
acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid || kumo_say "kumo: acpid did not start"

vm=$(kumo_vm_id)
echo "$vm" > /run/kumo-vm-id
hostname "$vm"

mkdir -p /var/lib/kumo
n=0
[ -r /var/lib/kumo/boot-count ] && read -r n < /var/lib/kumo/boot-count
case "$n" in '' | *[!0-9]*) n=0 ;; esac
n=$((n + 1))
echo "$n" > /var/lib/kumo/boot-count.new && mv /var/lib/kumo/boot-count.new /var/lib/kumo/boot-count

for f in /etc/kumo/boot.d/*; do
	[ -x "$f" ] || continue
	"$f" || kumo_say "kumo: $f failed with status $?"
done

sync
kumo_say "KUMO-BOOT vm=$vm boot=$n"

setsid sh -c 'echo $$ > /run/kumo-agent.pid; exec /usr/sbin/kumo-agent' < /dev/null > /dev/null 2>&1 &

if [ "$(kumo_param kumo.counter)" = 1 ]; then
	ms=$(kumo_param kumo.counter_ms) || ms=1000
	setsid sh -c 'echo $$ > /run/kumo-counter.pid; exec /usr/bin/kumo-counter "$1"' kumo-counter "$ms" \\
		< /dev/null > /dev/ttyS0 2>&1 &
fi
if mib=$(kumo_param kumo.dirty_mib); then
	ms=$(kumo_param kumo.dirty_ms) || ms=0
	setsid sh -c 'echo $$ > /run/kumo-dirty.pid; . /etc/kumo/functions; kumo_dirty "$1" "$2"' kumo-dirty "$mib" "$ms" \\
		< /dev/null > /dev/ttyS0 2>&1 &
fi
exit 0
`;

export const RC_SHUTDOWN = `#!/bin/sh
# kumo tiny guest: orderly stop (busybox init's shutdown action; init then kills what is left,
# syncs and powers off).
. /etc/kumo/functions
kumo_say "KUMO-SHUTDOWN vm=$(cat /run/kumo-vm-id 2>/dev/null)"
for p in /run/kumo-counter.pid /run/kumo-dirty.pid /run/kumo-agent.pid /run/kumo-agent/udhcpc.pid /run/acpid.pid; do
	[ -r "$p" ] && kill "$(cat "$p")" 2>/dev/null
done
sync
mount -o remount,ro / 2>/dev/null || { sleep 1; mount -o remount,ro / || kumo_say "kumo: / stays read-write"; }
exit 0
`;

/** busybox acpid maps the power button (KEY_POWER) to the action PWRF/00000080. */
export const ACPI_POWER_BUTTON = `#!/bin/sh
# ACPI power button (QEMU system_powerdown): shut down through init (SIGUSR2 to pid 1).
exec /sbin/poweroff
`;

export const COUNTER = `#!/bin/sh
# kumo-counter [INTERVAL_MS [FILE]]: every INTERVAL_MS (default 1000) append the next integer to
# FILE (default /var/lib/kumo/counter), fsync it, then print "KUMO-COUNTER n=<n>". It continues
# from the last number in FILE, so the sequence only grows; a number printed is on the disk.
ms=\${1:-1000}
file=\${2:-/var/lib/kumo/counter}
case "$ms" in '' | *[!0-9]*) echo "kumo-counter: bad interval '$ms'" >&2; exit 2 ;; esac
n=0
[ -s "$file" ] && n=$(tail -n 1 "$file")
case "$n" in '' | *[!0-9]*) n=0 ;; esac
while :; do
	n=$((n + 1))
	echo "$n" >> "$file" || exit 1
	sync "$file"
	echo "KUMO-COUNTER n=$n"
	usleep $((ms * 1000))
done
`;

/** The initramfs /init: load modules, find and mount the root disk, hand over to its init. */
export function initramfsInit(): string {
  return `#!/bin/sh
# kumo tiny guest initramfs: load the modules listed in /etc/kumo-modules (dependency order,
# resolved at build time), mount root (root=/dev/..., default /dev/vda, ext4) and switch_root.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

root=/dev/vda
rootfstype=ext4
rootflags=
debug=
for w in $(cat /proc/cmdline); do
	case "$w" in
	root=/dev/*) root=\${w#root=} ;;
	rootfstype=*) rootfstype=\${w#rootfstype=} ;;
	rootflags=*) rootflags=\${w#rootflags=} ;;
	kumo.debug=1) debug=1 ;;
	esac
done

fail() {
	echo "KUMO-INITRAMFS-ERROR $*" > /dev/console
	[ -n "$debug" ] && exec sh < /dev/console > /dev/console 2>&1
	sleep 2
	poweroff -f
}

while read -r m; do
	insmod "/lib/modules/$m.ko" 2>/dev/null || [ -d "/sys/module/$m" ] || echo "kumo-initramfs: insmod $m failed" > /dev/console
done < /etc/kumo-modules

i=0
while [ ! -b "$root" ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && fail "root device $root did not appear"
	usleep 100000
done
mount -t "$rootfstype" -o "rw\${rootflags:+,$rootflags}" "$root" /newroot || fail "cannot mount $root"
[ -e /newroot/sbin/init ] || fail "no /sbin/init on $root"
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /sbin/init
`;
}
