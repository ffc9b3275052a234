#!/bin/sh
# aws-waf-hook: coredns-cip's `hook exec` for an AWS WAF (wafv2) IP set.
# Each block adds the IP (as /32 or /128) or the range's CIDR to the IP set
# of its family; each unblock takes it out. Corefile:
#
#   hook exec /usr/local/lib/coredns-cip/aws-waf-hook {action} {ip} {scope} REGIONAL cip-block4 ID4 cip-block6 ID6
#
# REGIONAL (ALB, API Gateway, AppSync, Cognito, App Runner, Verified
# Access) or CLOUDFRONT (then the aws CLI must use us-east-1), then the
# name and id of the IPV4 IP set and of the IPV6 one (WAF keeps the
# families apart). Credentials and region come from the aws CLI's usual
# environment (AWS_PROFILE, AWS_REGION, an instance role).
# See docs/integrations/aws.md.
#
# WAF has no add/remove: update-ip-set replaces the whole list and takes
# the lock token of the get-ip-set it was built from. A write that loses a
# race (WAFOptimisticLockException) is read and written again, up to 5
# times. Every argument is checked first; bad input exits 2 with a message
# and the aws CLI never runs, so the hook records (and retries) the
# failure. A tagged block (one client -> IP) cannot be expressed in an IP
# set and is skipped with a message (exit 0).
set -eu

usage() {
	echo "aws-waf-hook: $*" >&2
	echo "usage: aws-waf-hook block|unblock IP|CIDR everyone|tagged REGIONAL|CLOUDFRONT NAME4 ID4 NAME6 ID6" >&2
	exit 2
}

[ $# -eq 8 ] || usage "want 8 arguments, got $#"
action=$1 target=$2 scope=$3 wafscope=$4

# An address: v4 dotted quad or v6 hex and colons, optionally /LEN. WAF
# checks the value itself; this keeps anything else out of its arguments.
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

# A name or id: WAF allows letters, digits, - and _ (ids are UUIDs).
check_name() {
	case $2 in "" | *[!A-Za-z0-9_-]*) usage "$1 ${2:-\"\"}: want letters, digits, - or _" ;; esac
}

case $action in block | unblock) ;; *) usage "action ${action:-\"\"}: want block or unblock" ;; esac
fam=$(addr_family "$target")
[ "$fam" != bad ] || usage "ip ${target:-\"\"}: want an IPv4 or IPv6 address or CIDR"
case $wafscope in REGIONAL | CLOUDFRONT) ;; *) usage "waf scope ${wafscope:-\"\"}: want REGIONAL or CLOUDFRONT" ;; esac
check_name name4 "$5"
check_name id4 "$6"
check_name name6 "$7"
check_name id6 "$8"
case $scope in
everyone) ;;
tagged)
	echo "aws-waf-hook: $action $target for one client skipped: a WAF IP set blocks for everyone" >&2
	exit 0
	;;
*) usage "scope ${scope:-\"\"}: want everyone or tagged" ;;
esac

# WAF takes CIDRs only: a single address is its /32 or /128.
if [ "$fam" = 4 ]; then
	name=$5 id=$6
	case $target in */*) ;; *) target=$target/32 ;; esac
else
	name=$7 id=$8
	case $target in */*) ;; *) target=$target/128 ;; esac
fi

tries=0
while :; do
	# One read gives the list and the lock token that goes with it.
	got=$(aws wafv2 get-ip-set --scope "$wafscope" --name "$name" --id "$id" \
		--query "[LockToken, join(' ', IPSet.Addresses)]" --output text)
	token=${got%%"	"*}
	addrs=""
	[ "$token" = "$got" ] || addrs=${got#*"	"}
	[ -n "$token" ] || {
		echo "aws-waf-hook: get-ip-set $name gave no lock token" >&2
		exit 1
	}
	present=no new=""
	for a in $addrs; do
		if [ "$a" = "$target" ]; then
			present=yes
			[ "$action" = unblock ] && continue
		fi
		new="$new $a"
	done
	# Nothing to change (a repeat, or a retried batch): no write at all.
	if [ "$action" = block ] && [ "$present" = yes ]; then exit 0; fi
	if [ "$action" = unblock ] && [ "$present" = no ]; then exit 0; fi
	[ "$action" = unblock ] || new="$new $target"
	# An empty list is the JSON [], as the aws CLI takes any list.
	[ -n "$new" ] || new="[]"
	# $new is split on purpose: one argument per address.
	# shellcheck disable=SC2086
	if err=$(aws wafv2 update-ip-set --scope "$wafscope" --name "$name" --id "$id" \
		--lock-token "$token" --addresses $new 2>&1 >/dev/null); then
		exit 0
	fi
	tries=$((tries + 1))
	case $err in
	*WAFOptimisticLockException*)
		[ "$tries" -lt 5 ] && continue
		;;
	esac
	echo "aws-waf-hook: update-ip-set $name: $err" >&2
	exit 1
done
