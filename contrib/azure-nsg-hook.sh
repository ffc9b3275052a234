#!/bin/sh
# azure-nsg-hook: coredns-cip's `hook exec` for an Azure network security
# group. Two outbound Deny rules, made once by hand, hold the blocked IPv4
# and IPv6 addresses and ranges as their destination address prefixes (one
# family per rule: Azure does not mix them); each block adds one, each
# unblock takes it out. Corefile:
#
#   hook exec /usr/local/lib/coredns-cip/azure-nsg-hook {action} {ip} {scope} RESOURCE_GROUP NSG cip-block4 cip-block6
#
# The az CLI must be logged in (a managed identity: az login --identity).
# See docs/integrations/azure.md for the rules' create commands.
#
# A rule needs at least one prefix, so an empty list is a placeholder that
# is never routed, which the rule is created with: 192.0.2.1/32
# (TEST-NET-1) or 2001:db8::1/128 (documentation). The prefixes are read and written whole: coredns-cip runs
# one hook change at a time, and nothing else must edit this rule. Every
# argument is checked first; bad input exits 2 with a message and az never
# runs, so the hook records (and retries) the failure. A tagged block (one
# client -> IP) is skipped with a message (exit 0): one rule of prefixes
# blocks for everyone.
set -eu


usage() {
	echo "azure-nsg-hook: $*" >&2
	echo "usage: azure-nsg-hook block|unblock IP|CIDR everyone|tagged RESOURCE_GROUP NSG RULE4 RULE6" >&2
	exit 2
}

[ $# -eq 7 ] || usage "want 7 arguments, got $#"
action=$1 target=$2 scope=$3 group=$4 nsg=$5

# An address: v4 dotted quad or v6 hex and colons, optionally /LEN. Azure
# checks the value itself; this keeps anything else out of az's arguments.
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

# Azure resource names: letters, digits, '.', '-', '_', '(' and ')'; not
# starting with '-', so never an option.
check_name() {
	case $2 in "" | -* | *[!A-Za-z0-9._\(\)-]*) usage "$1 ${2:-\"\"}: want an Azure resource name" ;; esac
}

case $action in block | unblock) ;; *) usage "action ${action:-\"\"}: want block or unblock" ;; esac
fam=$(addr_family "$target")
[ "$fam" != bad ] || usage "ip ${target:-\"\"}: want an IPv4 or IPv6 address or CIDR"
check_name "resource group" "$group"
check_name nsg "$nsg"
check_name rule4 "$6"
check_name rule6 "$7"
case $scope in
everyone) ;;
tagged)
	echo "azure-nsg-hook: $action $target for one client skipped: an NSG rule blocks for everyone" >&2
	exit 0
	;;
*) usage "scope ${scope:-\"\"}: want everyone or tagged" ;;
esac

if [ "$fam" = 4 ]; then
	rule=$6 placeholder=192.0.2.1/32
else
	rule=$7 placeholder=2001:db8::1/128
fi

# One prefix is kept in destinationAddressPrefix, several in
# destinationAddressPrefixes; the flatten takes both (and drops the null).
got=$(az network nsg rule show --resource-group "$group" --nsg-name "$nsg" --name "$rule" \
	--query "[destinationAddressPrefix, destinationAddressPrefixes][]" --output tsv)
present=no new=""
for p in $got; do
	[ "$p" != "$placeholder" ] || continue
	if [ "$p" = "$target" ]; then
		present=yes
		[ "$action" = unblock ] && continue
	fi
	new="$new $p"
done
# Nothing to change (a repeat, or a retried batch): no write at all.
if [ "$action" = block ] && [ "$present" = yes ]; then exit 0; fi
if [ "$action" = unblock ] && [ "$present" = no ]; then exit 0; fi
[ "$action" = unblock ] || new="$new $target"
[ -n "$new" ] || new=$placeholder
# $new is split on purpose: one argument per prefix.
# shellcheck disable=SC2086
az network nsg rule update --resource-group "$group" --nsg-name "$nsg" --name "$rule" \
	--destination-address-prefixes $new --output none
