#!/bin/sh
# k8s-blocklist-hook: coredns-cip's `hook exec` for Kubernetes network
# policy. On every change it fetches the whole block list from coredns-cip's
# EDL (GET /v1/blocklist.txt) and applies it as one object: a Cilium
# CiliumClusterwideNetworkPolicy with an egressDeny CIDR set, or a Calico
# GlobalNetworkSet that a GlobalNetworkPolicy denies egress to. Corefile:
#
#   hook exec /usr/local/lib/coredns-cip/k8s-blocklist-hook cilium https://127.0.0.1:8053/v1/blocklist.txt /etc/coredns/edl.token
#
# (calico instead of cilium for Calico). The token file holds a read token;
# it reaches curl on stdin as the basic auth password, never in an argument.
# kubectl uses its usual KUBECONFIG or in-cluster service account.
#
# Why the whole set each time: a change applied alone can be lost (a
# failed apply, a policy edited by hand, a cluster restored from backup),
# and then the cluster drifts from coredns-cip for good. Rendering the
# full list from the EDL makes every run idempotent and every run repairs
# whatever drifted; the hook's placeholders are not needed. Apply is
# server-side: a client-side apply keeps the whole object in an annotation
# that cannot exceed 256 KiB (some 10,000 CIDRs).
#
# Bad arguments exit 2 with a message before anything runs, so the hook
# records (and retries) the failure; so does an EDL line that is not an
# address or CIDR. An empty list deletes the Cilium policy (an egressDeny
# without CIDRs is not a "deny nothing") and empties the Calico set.
set -eu

name=${CIP_K8S_NAME:-cip-blocklist}

usage() {
	echo "k8s-blocklist-hook: $*" >&2
	echo "usage: k8s-blocklist-hook cilium|calico EDL_URL TOKEN_FILE" >&2
	exit 2
}

[ $# -eq 3 ] || usage "want 3 arguments, got $#"
flavor=$1 url=$2 tokenfile=$3
case $flavor in cilium | calico) ;; *) usage "flavor ${flavor:-\"\"}: want cilium or calico" ;; esac
case $url in http://* | https://*) ;; *) usage "edl url ${url:-\"\"}: want an http:// or https:// URL" ;; esac
case $url in *[!A-Za-z0-9._~:/?#@!\$\&\'\(\)\*+,\;=%-]*) usage "edl url $url: has characters a URL cannot" ;; esac
[ -r "$tokenfile" ] || usage "token file ${tokenfile:-\"\"}: not readable"
case $name in "" | *[!a-z0-9.-]*) usage "CIP_K8S_NAME $name: want a Kubernetes object name" ;; esac

token=$(cat "$tokenfile")
[ -n "$token" ] || usage "token file $tokenfile: empty"
edl=$(printf 'user = "coredns-cip:%s"\n' "$token" |
	curl --config - --silent --show-error --fail --max-time 8 "$url") || {
	echo "k8s-blocklist-hook: GET $url failed" >&2
	exit 1
}

# One CIDR per EDL line (a single address as its /32 or /128). Anything
# else means the URL is not the EDL: nothing is applied.
cidrs=""
for e in $edl; do
	case $e in
	*[!0-9./]* | "" | */*/* | /* | */) ;;
	*.*.*.*)
		case $e in */*) ;; *) e=$e/32 ;; esac
		cidrs="$cidrs $e"
		continue
		;;
	esac
	case $e in
	*[!0-9A-Fa-f:./]* | "" | */*/* | /* | */ | [!0-9A-Fa-f:]*) ;;
	*:*)
		case $e in */*) ;; *) e=$e/128 ;; esac
		cidrs="$cidrs $e"
		continue
		;;
	esac
	echo "k8s-blocklist-hook: $url gave \"$e\", not an address or CIDR: is it the EDL?" >&2
	exit 2
done

apply() {
	kubectl apply --server-side --field-manager=coredns-cip --force-conflicts -f -
}

if [ "$flavor" = cilium ]; then
	if [ -z "$cidrs" ]; then
		kubectl delete ciliumclusterwidenetworkpolicy "$name" --ignore-not-found
		exit 0
	fi
	{
		printf 'apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\n'
		printf 'metadata:\n  name: %s\n  labels:\n    app.kubernetes.io/managed-by: coredns-cip\n' "$name"
		printf 'spec:\n  description: IPs and ranges blocked by coredns-cip\n  endpointSelector: {}\n'
		# Deny only: without this, selecting every endpoint in an egress
		# policy would put them all into default-deny (Cilium 1.15+).
		printf '  enableDefaultDeny:\n    egress: false\n    ingress: false\n'
		printf '  egressDeny:\n  - toCIDRSet:\n'
		for c in $cidrs; do printf '    - cidr: "%s"\n' "$c"; done
	} | apply
else
	{
		printf 'apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n'
		printf 'metadata:\n  name: %s\n  labels:\n    app.kubernetes.io/managed-by: coredns-cip\n    coredns-cip/blocklist: "true"\n' "$name"
		if [ -z "$cidrs" ]; then
			printf 'spec:\n  nets: []\n'
		else
			printf 'spec:\n  nets:\n'
			for c in $cidrs; do printf '  - "%s"\n' "$c"; done
		fi
	} | apply
fi
