#!/bin/sh
# ipset-hook: coredns-cip's `hook exec` for iptables + ipset. It maps a
# block decision onto ipset, which ipset's own verbs cannot do: {action}
# is block/unblock, ipset knows add/del. Corefile:
#
#   hook exec /usr/local/lib/coredns-cip/ipset-hook {action} {ip} {ttl} {scope} {client} {port}
#
# Sets (see docs/integrations/ipset.md for the create commands and the
# iptables rules that drop on them):
#   cip-block / cip-block6   hash:net         an IP or range, for everyone
#   cip-pairs / cip-pairs6   hash:net,net     tagged: client -> IP
#   cip-ports / cip-ports6   hash:ip,port,net tagged on one port: client -> IP:port (tcp and udp)
# Set names can be changed with CIP_IPSET_PREFIX (default "cip").
#
# Every argument is checked before ipset runs; bad input exits 2 with a
# message, so the hook records (and retries) the failure instead of
# leaving a half-written set. ipset's own failure exits non-zero too.
set -eu

usage() {
	echo "ipset-hook: $*" >&2
	echo "usage: ipset-hook block|unblock IP|CIDR TTL everyone|tagged [CLIENT] [PORT]" >&2
	exit 2
}

[ $# -ge 4 ] && [ $# -le 6 ] || usage "want 4 to 6 arguments, got $#"
action=$1 target=$2 ttl=$3 scope=$4 client=${5-} port=${6-}
prefix=${CIP_IPSET_PREFIX:-cip}

# An address: v4 dotted quad or v6 hex and colons, optionally /LEN. ipset
# checks the value itself; this only keeps anything else (options, spaces,
# empty strings) out of its argument list.
addr_family() {
	case $1 in
	*[!0-9./]* | "" | */*/* | /* | */) ;;
	*.*.*.*) echo 4; return ;;
	esac
	case $1 in
	*[!0-9A-Fa-f:./]* | "" | */*/* | /* | */ | [!0-9A-Fa-f:]*) ;;
	*:*) echo 6; return ;;
	esac
	echo bad
}

case $action in block | unblock) ;; *) usage "action ${action:-\"\"}: want block or unblock" ;; esac
case $ttl in "" | *[!0-9]*) usage "ttl ${ttl:-\"\"}: want whole seconds" ;; esac
fam=$(addr_family "$target")
[ "$fam" != bad ] || usage "ip ${target:-\"\"}: want an IPv4 or IPv6 address or CIDR"
suffix=""
[ "$fam" = 4 ] || suffix=6

case $scope in
everyone)
	[ -z "$client" ] || usage "client $client given for scope everyone"
	[ -z "$port" ] || usage "port $port given for scope everyone"
	set_name=$prefix-block$suffix elems=$target
	;;
tagged)
	cfam=$(addr_family "$client")
	[ "$cfam" = "$fam" ] || usage "client ${client:-\"\"}: want an address of the same family as $target"
	if [ -z "$port" ]; then
		set_name=$prefix-pairs$suffix elems=$client,$target
	else
		case $port in *[!0-9]*) usage "port $port: want a number" ;; esac
		[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || usage "port $port: want 1 to 65535"
		set_name=$prefix-ports$suffix elems="$client,tcp:$port,$target $client,udp:$port,$target"
	fi
	;;
*) usage "scope ${scope:-\"\"}: want everyone or tagged" ;;
esac

# ipset's timeout tops out at 2147483 s (about 24.8 days); a longer block
# goes in without one (0: until deleted) and leaves at its unblock.
if [ "${#ttl}" -gt 7 ] || [ "$ttl" -gt 2147483 ]; then
	ttl=0
fi

for e in $elems; do
	if [ "$action" = block ]; then
		ipset add -exist "$set_name" "$e" timeout "$ttl"
	else
		ipset del -exist "$set_name" "$e"
	fi
done
