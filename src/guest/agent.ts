/**
 * kumo's guest agent for the tiny image (busybox sh), started in the background by rc.boot right
 * after the KUMO-BOOT line. Contract with the host side:
 * - no ethernet NIC: it exits at once and does nothing;
 * - on the first NIC (lowest ifindex) busybox udhcpc asks for a lease (the host answers with a
 *   169.254.x.y/16 address); the hook below sets only that address on that NIC, and a default route
 *   (metric 1000) only when one is offered. Without a DHCP server udhcpc keeps asking quietly and
 *   the agent waits: no metadata service, no harm;
 * - then it reads http://169.254.169.254/kumo/v1/config?format=lines (see
 *   src/metadata/agent-lines.ts), applies it, syncs, POSTs /kumo/v1/applied {"generation":N} and
 *   prints `KUMO-CONFIG generation=N applied` on ttyS0 (`… failed` once when a generation cannot be
 *   applied; it is then retried, never confirmed), after one `KUMO-NET <ifname> <addr/prefix>…` line
 *   per NIC the config names (its IPv4 addresses then);
 * - after the first config (applied or not): /openstack/latest/user_data, when it starts with `#!`, runs once per VM
 *   id (marker /var/lib/kumo/user-data.<vm>.done, written before it runs, so a script that reboots
 *   does not loop), its output on ttyS0, then `KUMO-USERDATA exit=<code>`; anything else
 *   (#cloud-config) is left to cloud-init;
 * - then it long-polls (?after=G&wait=50) forever, backing off 3 s after an error.
 * The document is data only: every field is matched against a pattern or base64-decoded into a
 * file, never evaluated. Diagnostics go to /run/kumo-agent/log (kept under 64 KiB), or to ttyS0
 * with `kumo.debug=1` on the kernel command line (`kumo.debug=2`: with a shell trace).
 * Written as template literals: every shell `\${` is escaped.
 */

export const AGENT_PATH = '/usr/sbin/kumo-agent';
export const UDHCPC_SCRIPT_PATH = '/etc/kumo/udhcpc.script';

/** udhcpc's hook: the lease's address on its NIC only; kumo's static addresses stay untouched. */
export const UDHCPC_SCRIPT = `#!/bin/sh
# kumo tiny guest: udhcpc hook. Only the leased address on $interface (recorded in
# /run/kumo-agent/dhcp.$interface), a default route only when the server offers a router.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
S=/run/kumo-agent
mkdir -p $S
rec=$S/dhcp.$interface
old=
[ -r "$rec" ] && read -r old < "$rec"
case "$1" in
deconfig)
	ip link set "$interface" up
	[ -n "$old" ] && ip addr del "$old" dev "$interface" 2>/dev/null
	rm -f "$rec"
	;;
bound | renew)
	p=$mask
	if [ -z "$p" ]; then
		p=0
		for o in $(echo "$subnet" | tr . ' '); do
			case "$o" in 255) p=$((p + 8)) ;; 254) p=$((p + 7)) ;; 252) p=$((p + 6)) ;; 248) p=$((p + 5)) ;;
			240) p=$((p + 4)) ;; 224) p=$((p + 3)) ;; 192) p=$((p + 2)) ;; 128) p=$((p + 1)) ;; esac
		done
	fi
	new="$ip/$p"
	[ -n "$old" ] && [ "$old" != "$new" ] && ip addr del "$old" dev "$interface" 2>/dev/null
	ip addr add "$new" dev "$interface" 2>/dev/null
	ip link set "$interface" up
	if [ -n "$router" ]; then
		set -f
		set -- $router
		ip route replace default via "$1" dev "$interface" metric 1000
	fi
	echo "$new" > "$rec.new" && mv "$rec.new" "$rec"
	;;
esac
exit 0
`;

export const AGENT = `#!/bin/sh
# kumo-agent: applies kumo's guest configuration from the metadata service (see agent.ts).
. /etc/kumo/functions
MD=http://169.254.169.254
S=/run/kumo-agent
mkdir -p $S
exec < /dev/null > /dev/null 2>> $S/log
# kumo.debug=1: diagnostics on the console instead; kumo.debug=2: and a trace of every command.
case "$(kumo_param kumo.debug)" in 1) exec 2> /dev/ttyS0 ;; 2) exec 2> /dev/ttyS0; set -x ;; esac

log() { echo "kumo-agent: $*" >&2; }

# first_nic: the ethernet NIC with the lowest ifindex, empty when there is none.
first_nic() {
	best=
	bi=
	for d in /sys/class/net/*; do
		[ -e "$d/device" ] && [ -r "$d/type" ] || continue
		read -r t < "$d/type"
		[ "$t" = 1 ] || continue
		read -r i < "$d/ifindex"
		if [ -z "$bi" ] || [ "$i" -lt "$bi" ]; then best=\${d##*/}; bi=$i; fi
	done
	echo "$best"
}

# nic_of MAC: the interface with that address.
nic_of() {
	for d in /sys/class/net/*; do
		[ -r "$d/address" ] || continue
		read -r a < "$d/address"
		[ "$a" = "$1" ] && { echo "\${d##*/}"; return 0; }
	done
	return 1
}

# busybox 1.35's wget -T crashes (SIGSEGV): timeouts come from the timeout applet instead.
# get URL FILE TIMEOUT: 0 fetched, 3 not modified (304), 4 not found (404), 1 other failure.
get() {
	rm -f "$2"
	timeout "$3" wget -q -O "$2" "$1" 2> $S/wget.err && return 0
	grep -q ' 304 ' $S/wget.err && return 3
	grep -q ' 404 ' $S/wget.err && return 4
	cat $S/wget.err >&2
	return 1
}

backoff() {
	[ "$(wc -c < $S/log)" -gt 65536 ] && : > $S/log
	sleep 3
}

b64d() { [ "$1" = - ] || printf '%s' "$1" | base64 -d; }

valid_user() {
	case "$1" in '' | [!a-z_]* | *[!a-z0-9_-]*) return 1 ;; esac
	return 0
}

# ensure_user NAME: adds a login (uid from 1000, own group, home, locked password) when missing.
ensure_user() {
	grep -q "^$1:" /etc/passwd && return 0
	uid=1000
	while grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd || grep -q "^[^:]*:[^:]*:$uid:" /etc/group; do uid=$((uid + 1)); done
	echo "$1:x:$uid:$uid::/home/$1:/bin/sh" >> /etc/passwd || return 1
	grep -q "^$1:" /etc/group || echo "$1:x:$uid:" >> /etc/group
	grep -q "^$1:" /etc/shadow || echo "$1:!:19000:0:99999:7:::" >> /etc/shadow
	mkdir -p "/home/$1" && chown "$uid:$uid" "/home/$1" && chmod 755 "/home/$1"
}

# set_hash NAME HASH: field 2 of NAME's /etc/shadow line.
set_hash() {
	case "$2" in *[:\\\\\\ ]*) log "bad password hash for $1"; return 1 ;; esac
	awk -F: -v OFS=: -v u="$1" -v h="$2" '$1 == u { $2 = h } { print }' /etc/shadow > /etc/shadow.kumo &&
		chmod 600 /etc/shadow.kumo && mv /etc/shadow.kumo /etc/shadow
}

# install_keys NAME: its staged key lines become ~/.ssh/authorized_keys (0700/0600, owned by NAME).
install_keys() {
	ent=$(awk -F: -v u="$1" '$1 == u { print $3 ":" $4 ":" $6 }' /etc/passwd)
	[ -n "$ent" ] || return 1
	own=\${ent%:*}
	home=\${ent##*:}
	[ -n "$home" ] || return 1
	mkdir -p "$home/.ssh" && chmod 700 "$home/.ssh" && chown "$own" "$home/.ssh" || return 1
	cp "$S/keys.$1" "$home/.ssh/authorized_keys.kumo" && chmod 600 "$home/.ssh/authorized_keys.kumo" &&
		chown "$own" "$home/.ssh/authorized_keys.kumo" && mv "$home/.ssh/authorized_keys.kumo" "$home/.ssh/authorized_keys"
}

# put_file MODE B64PATH B64CONTENT
put_file() {
	case "$1" in '' | *[!0-7]*) log "bad mode $1"; return 1 ;; esac
	p=$(b64d "$2")
	case "$p" in /*) ;; *) log "bad path"; return 1 ;; esac
	d=\${p%/*}
	mkdir -p "\${d:-/}" && b64d "$3" > "$p.kumo-new" && chmod "$1" "$p.kumo-new" && mv -f "$p.kumo-new" "$p"
}

# apply FILE: applies a whole lines document; fails when any part could not be applied.
apply() {
	[ "$(head -n 1 "$1" | cut -d ' ' -f 1)" = generation ] && [ "$(tail -n 1 "$1")" = end ] || { log "incomplete config"; return 1; }
	ok=0
	: > $S/addrs.new
	: > $S/routes.new
	: > $S/users
	: > $S/nics
	src=$1
	while read -r k rest; do
		# split on blanks only: no pathname expansion of what the document holds
		set -f
		set -- $rest
		set +f
		case "$k" in
		hostname)
			case "$1" in '' | -* | *[!A-Za-z0-9.-]*) log "bad hostname"; ok=1; continue ;; esac
			hostname "$1" && echo "$1" > /etc/hostname.kumo && mv /etc/hostname.kumo /etc/hostname || ok=1
			;;
		nic)
			# A NIC that is not (yet) there fails the generation only when it should carry addresses.
			ifc=$(nic_of "$1") || { [ $# -gt 1 ] && { log "no NIC with MAC $1"; ok=1; }; continue; }
			shift
			echo "$ifc" >> $S/nics
			ip link set "$ifc" up || ok=1
			for a; do
				case "$a" in *[!0-9./]*) log "bad address"; ok=1; continue ;; esac
				echo "$ifc $a" >> $S/addrs.new
				ip addr add "$a" dev "$ifc" 2>/dev/null || ip addr show dev "$ifc" | grep -q " inet $a " || { log "cannot add $a to $ifc"; ok=1; }
			done
			;;
		route)
			case "$1$2" in *[!0-9./]*) log "bad route"; ok=1; continue ;; esac
			echo "$1 $2" >> $S/routes.new
			ip route replace "$1" via "$2" || { log "cannot route $1 via $2"; ok=1; }
			;;
		dns)
			for a; do case "$a" in *[!0-9.]*) ;; *) echo "nameserver $a" ;; esac; done > /etc/resolv.conf.kumo &&
				mv /etc/resolv.conf.kumo /etc/resolv.conf || ok=1
			;;
		user)
			valid_user "$1" && ensure_user "$1" || { log "cannot add user $1"; ok=1; continue; }
			[ "$2" = - ] || set_hash "$1" "$2" || ok=1
			echo "$1" >> $S/users
			: > "$S/keys.$1"
			;;
		key)
			valid_user "$1" && [ -e "$S/keys.$1" ] || { ok=1; continue; }
			{ b64d "$2"; echo; } >> "$S/keys.$1" || ok=1
			;;
		sshd)
			mkdir -p /etc/ssh && b64d "$1" > /etc/ssh/sshd_config.kumo && mv /etc/ssh/sshd_config.kumo /etc/ssh/sshd_config || ok=1
			for p in /run/sshd.pid /var/run/sshd.pid; do [ -r $p ] && kill -HUP "$(cat $p)" 2>/dev/null; done
			;;
		iptables)
			mkdir -p /etc/iptables && b64d "$1" > /etc/iptables/rules.v4.kumo && mv /etc/iptables/rules.v4.kumo /etc/iptables/rules.v4 || ok=1
			if command -v iptables-restore > /dev/null; then iptables-restore < /etc/iptables/rules.v4 || ok=1; fi
			;;
		file)
			put_file "$1" "$2" "$3" || { log "cannot write a file"; ok=1; }
			;;
		esac
	done < "$src"
	while read -r u; do install_keys "$u" || { log "cannot install keys of $u"; ok=1; }; done < $S/users
	# What kumo added earlier and no longer lists goes; the DHCP address was never in these lists.
	[ -r $S/routes ] && while read -r rd rg; do
		grep -qx "$rd $rg" $S/routes.new || ip route del "$rd" via "$rg" 2>/dev/null
	done < $S/routes
	[ -r $S/addrs ] && while read -r ai aa; do
		grep -qx "$ai $aa" $S/addrs.new || ip addr del "$aa" dev "$ai" 2>/dev/null
	done < $S/addrs
	mv $S/addrs.new $S/addrs
	mv $S/routes.new $S/routes
	sync
	return $ok
}

confirm() {
	timeout 10 wget -q -O /dev/null --header 'Content-Type: application/json' --post-data '{"generation":'"$1"'}' "$MD/kumo/v1/applied"
}

# user_data: runs a #! user-data script once per VM id, in the background, output on ttyS0.
user_data() {
	vm=$(cat /run/kumo-vm-id 2>/dev/null)
	mark=/var/lib/kumo/user-data.\${vm:-unknown}.done
	[ -e "$mark" ] && return 0
	n=0
	while :; do
		get "$MD/openstack/latest/user_data" $S/user-data 30
		case $? in 0) break ;; 4) return 0 ;; esac
		n=$((n + 1))
		[ $n -ge 5 ] && { log "no user-data after $n tries"; return 1; }
		backoff
	done
	[ "$(head -c 2 $S/user-data)" = '#!' ] || return 0
	f=/var/lib/kumo/user-data.\${vm:-unknown}
	cp $S/user-data "$f" && chmod 700 "$f" && : > "$mark" && sync || return 1
	setsid sh -c '. /etc/kumo/functions; cd /; "$1" < /dev/null > /dev/ttyS0 2>&1; kumo_say "KUMO-USERDATA exit=$?"' user-data "$f" &
}

# Shell variables are global: the main loop's names are used nowhere else.
nic=$(first_nic)
[ -n "$nic" ] || exit 0
udhcpc -f -i "$nic" -s /etc/kumo/udhcpc.script -p $S/udhcpc.pid -t 3 -T 2 -A 10 > /dev/null 2>&1 &
# Quick while a lease is likely, then slow: a VM without a DHCP server should not pay for the wait.
w=0
while [ ! -s "$S/dhcp.$nic" ]; do
	if [ $w -lt 100 ]; then w=$((w + 1)); usleep 200000; else sleep 2; fi
done

gen=-1
failed=
first=1
while :; do
	q=
	[ $gen -ge 0 ] && q="after=$gen&wait=50&"
	get "$MD/kumo/v1/config?\${q}format=lines" $S/config 70
	case $? in 0) ;; 3) usleep 200000; continue ;; *) backoff; continue ;; esac
	cg=$(head -n 1 $S/config | cut -d ' ' -f 2)
	case "$cg" in '' | *[!0-9]*) log "bad generation"; backoff; continue ;; esac
	if apply $S/config && confirm "$cg"; then
		gen=$cg
		failed=
		while read -r i; do
			kumo_say "KUMO-NET $i$(ip -4 addr show dev "$i" | awk '$1 == "inet" { printf " %s", $2 }')"
		done < $S/nics
		kumo_say "KUMO-CONFIG generation=$cg applied"
	else
		[ "$failed" = "$cg" ] || kumo_say "KUMO-CONFIG generation=$cg failed"
		failed=$cg
	fi
	# user-data once the first config was tried, whether or not all of it could be applied
	[ -n "$first" ] && { first=; user_data; }
	[ -n "$failed" ] && backoff
done
`;
