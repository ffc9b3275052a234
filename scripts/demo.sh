#!/usr/bin/env bash
# Offline walkthrough: a fake Criminal IP API serving the fixtures compiled
# into the binary, and `coredns-cip check` over a few IPs, as the original
# tool would be used. Nothing leaves loopback.
set -euo pipefail
BIN=${BIN:-bin/coredns-cip}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 2; }

work=$(mktemp -d)
fake_pid=
cleanup() {
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN" fakeapi --listen 127.0.0.1:0 --key demo-key >"$work/fake.out" 2>"$work/fake.err" &
fake_pid=$!
for _ in $(seq 100); do
  grep -q 'listening on' "$work/fake.out" 2>/dev/null && break
  kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake.err" >&2; exit 1; }
  sleep 0.05
done
url=$(sed -n 's/^fakeapi listening on \(http[^ ]*\).*/\1/p' "$work/fake.out")
[ -n "$url" ] || { echo "fake API did not start" >&2; cat "$work/fake.err" >&2; exit 1; }
echo "== fake Criminal IP API on $url (embedded fixtures)"

# The key file, in the original tool's format.
printf '{"api_key": "demo-key"}\n' >"$work/criminalip_api_key.json"

step() {
  echo
  echo "\$ coredns-cip check $*"
  set +e
  "$BIN" check --keyfile "$work/criminalip_api_key.json" --api-url "$url" "$@"
  echo "(exit status $?)"
  set -e
}

step --ip 45.83.0.10 --pretty
step --ip 45.83.0.71 --port 22 --pretty
step --ip 45.83.0.53 --pretty
step --ip 45.83.0.10 --port 2222 --product OpenSSH --pretty
step --ip 45.83.0.21
step --ip 10.0.0.1 --pretty

if command -v curl >/dev/null; then
  echo
  echo "== API calls made, from the fake's counter (the private IP cost none):"
  curl -fsS "$url/_fake/stats"
  echo
fi
