#!/bin/sh
# cloudflare-list-hook: coredns-cip's `hook exec` for a Cloudflare IP List
# (account-level Lists, used in WAF custom rules as $list_name). Each block
# adds the IP or range as a list item, each unblock finds the item's id and
# deletes it. Corefile:
#
#   hook exec /usr/local/lib/coredns-cip/cloudflare-list-hook {action} {ip} {scope} ACCOUNT_ID LIST_ID /etc/coredns/cloudflare.token
#
# The token file holds an API token with "Account Filter Lists: Edit"; it
# reaches curl on stdin (curl --config -), never in an argument that ps
# shows. Needs curl and jq. See docs/integrations/cloudflare.md.
#
# Cloudflare's IP lists take IPv4 addresses and CIDRs /8 to /32, and IPv6
# only as CIDRs /12 to /64: an IPv6 address or a longer IPv6 range goes in
# as its /64. Every argument is checked first; bad input (or a range
# broader than Cloudflare takes) exits 2 with a message and curl never
# runs, so the hook records (and retries) the failure. A tagged block (one
# client -> IP) is skipped with a message (exit 0): a list blocks for
# everyone. Cloudflare applies list changes asynchronously, within seconds.
set -eu

api=${CIP_CLOUDFLARE_API:-https://api.cloudflare.com/client/v4}

usage() {
	echo "cloudflare-list-hook: $*" >&2
	echo "usage: cloudflare-list-hook block|unblock IP|CIDR everyone|tagged ACCOUNT_ID LIST_ID TOKEN_FILE" >&2
	exit 2
}

[ $# -eq 6 ] || usage "want 6 arguments, got $#"
action=$1 target=$2 scope=$3 account=$4 list=$5 tokenfile=$6

# An address: v4 dotted quad or v6 hex and colons, optionally /LEN.
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

# The /64 holding an IPv6 address, in the compressed form (RFC 5952): the
# zero run at the end is always the longest, so it is the one compressed.
v6_64() {
	printf '%s\n' "${1%/*}" | awk '{
		n = split($0, halves, "::")
		nl = split(halves[1], l, ":")
		nr = (n == 2) ? split(halves[2], r, ":") : 0
		for (i = 1; i <= 8; i++) g[i] = "0"
		for (i = 1; i <= nl; i++) g[i] = l[i]
		for (i = 1; i <= nr; i++) g[8 - nr + i] = r[i]
		last = 0
		for (i = 1; i <= 4; i++) {
			x = tolower(g[i]); sub(/^0+/, "", x); if (x == "") x = "0"
			g[i] = x; if (x != "0") last = i
		}
		out = ""
		for (i = 1; i <= last; i++) out = out (i > 1 ? ":" : "") g[i]
		print out "::/64"
	}'
}

case $action in block | unblock) ;; *) usage "action ${action:-\"\"}: want block or unblock" ;; esac
fam=$(addr_family "$target")
[ "$fam" != bad ] || usage "ip ${target:-\"\"}: want an IPv4 or IPv6 address or CIDR"
case $account in "" | *[!0-9a-f]*) usage "account ${account:-\"\"}: want the account id (hex)" ;; esac
case $list in "" | *[!0-9a-f]*) usage "list ${list:-\"\"}: want the list id (hex)" ;; esac
[ -r "$tokenfile" ] || usage "token file ${tokenfile:-\"\"}: not readable"
case $scope in
everyone) ;;
tagged)
	echo "cloudflare-list-hook: $action $target for one client skipped: a list blocks for everyone" >&2
	exit 0
	;;
*) usage "scope ${scope:-\"\"}: want everyone or tagged" ;;
esac

bits=""
case $target in */*) bits=${target#*/} ;; esac
case $bits in *[!0-9]*) usage "ip $target: want a prefix length" ;; esac
if [ "$fam" = 4 ]; then
	[ -z "$bits" ] || [ "$bits" -ge 8 ] || usage "ip $target: Cloudflare lists take IPv4 ranges of /8 and longer"
	item=$target
else
	[ -z "$bits" ] || [ "$bits" -ge 12 ] || usage "ip $target: Cloudflare lists take IPv6 ranges of /12 and longer"
	if [ -n "$bits" ] && [ "$bits" -le 64 ]; then
		item=$target
	else
		item=$(v6_64 "$target")
	fi
fi

token=$(cat "$tokenfile")
[ -n "$token" ] || usage "token file $tokenfile: empty"
items=$api/accounts/$account/rules/lists/$list/items

# cf METHOD URL [BODY]: one API call, the token on stdin; fails unless
# Cloudflare answers success.
cf() {
	if [ $# -eq 3 ]; then
		set -- "$1" "$2" --header "Content-Type: application/json" --data "$3"
	fi
	out=$(printf 'header = "Authorization: Bearer %s"\n' "$token" |
		curl --config - --silent --show-error --max-time 8 --request "$@") || {
		echo "cloudflare-list-hook: $1 $2 failed: $out" >&2
		exit 1
	}
	printf '%s\n' "$out" | jq -e '.success == true' >/dev/null || {
		echo "cloudflare-list-hook: $1 $2: $(printf '%s' "$out" | jq -c '.errors' 2>/dev/null || echo "not JSON")" >&2
		exit 1
	}
	printf '%s\n' "$out"
}

# The item's id, if it is in the list: search matches a prefix, so the
# exact value is picked out.
found=$(cf GET "$items?search=$item")
id=$(printf '%s\n' "$found" | jq -r --arg ip "$item" '[.result[] | select(.ip == $ip) | .id][0] // empty')
if [ "$action" = block ]; then
	[ -z "$id" ] || exit 0 # already there (a repeat, or a retried batch)
	cf POST "$items" "[{\"ip\":\"$item\",\"comment\":\"coredns-cip\"}]" >/dev/null
else
	[ -n "$id" ] || exit 0 # already gone
	cf DELETE "$items" "{\"items\":[{\"id\":\"$id\"}]}" >/dev/null
fi
