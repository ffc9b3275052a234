#!/usr/bin/env bash
# build-with-coredns.sh: the plugin.cfg route. Builds stock CoreDNS with
# cipvalidate compiled in, the way CoreDNS documents external plugins: take
# CoreDNS's source, add a line to plugin.cfg, go generate, go build. The
# result is CoreDNS's own main (coredns -plugins, -version, every standard
# plugin) plus cipvalidate before cache; it has none of coredns-cip's
# sub-commands (check, decisions, ...), which bin/coredns-cip has.
#
#   scripts/build-with-coredns.sh [OUT]     OUT defaults to bin/coredns
#
# Knobs (environment): COREDNS_VERSION (v1.15.0, the version go.mod
# requires; another one may not build against this checkout), GO (go).
#
# CoreDNS's source comes from the Go module cache (go mod download), its
# module points at this checkout with a replace, and this checkout's
# go.sum is added to CoreDNS's so that nothing but what the module cache
# or GOPROXY already holds is needed: with a warm module cache it builds
# offline (GOPROXY=off GOFLAGS=-mod=mod).
set -euo pipefail

GO=${GO:-go}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/coredns}
case $out in /*) ;; *) out=$PWD/$out ;; esac

src=$("$GO" mod download -json "github.com/coredns/coredns@$COREDNS_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[ -d "$src" ] || { echo "build-with-coredns: no source for CoreDNS $COREDNS_VERSION" >&2; exit 1; }

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$src" "$work/coredns"
chmod -R u+w "$work/coredns" # the module cache is read-only
cd "$work/coredns"

# cipvalidate goes right before cache, as cmd/coredns-cip puts it
# (plugin/cipvalidate/directive.go says why).
awk '$0 == "cache:cache" { print "cipvalidate:github.com/coredns-cip/coredns-cip/plugin/cipvalidate" } { print }' \
  plugin.cfg >plugin.cfg.new
mv plugin.cfg.new plugin.cfg
grep -q '^cipvalidate:' plugin.cfg || { echo "build-with-coredns: no cache:cache line in plugin.cfg" >&2; exit 1; }

"$GO" mod edit -require=github.com/coredns-cip/coredns-cip@v0.0.0 \
  -replace="github.com/coredns-cip/coredns-cip=$root"
cat "$root/go.sum" >>go.sum

commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)
vpkg=github.com/coredns-cip/coredns-cip/internal/version
ldflags="-X $vpkg.Version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || true)"
ldflags+=" -X $vpkg.Commit=$commit -X $vpkg.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags+=" -X github.com/coredns/coredns/coremain.GitCommit=$commit"

export GOFLAGS="-mod=mod ${GOFLAGS:-}"
"$GO" generate coredns.go # zdirectives.go, zplugin.go (and zowners.go)
mkdir -p "$(dirname "$out")"
"$GO" build -ldflags "$ldflags" -o "$out" .
echo "built $out: CoreDNS $COREDNS_VERSION with cipvalidate"
