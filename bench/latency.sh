#!/usr/bin/env bash
# bench/latency.sh: how long an event takes to become enforcement — from the
# POST /v1/events to the last nftables element it leads to (`make latency`,
# also scenario l of `make loadtest`; BENCHMARKS.md reports the figures).
#
# Everything runs in a network namespace of its own (root, ip and nft are
# needed): the fake Criminal IP API, coredns-cip with an nftables hook, and
# `loadtool latency`, which for each trial makes a new client resolve IPS
# names (each a suspicious IP), posts an event for it and watches the
# kernel's nftables events (a netlink monitor, no polling) for the
# client . ip pair elements (`scope tagged all`, so each event leads to
# pairs of its own). Three modes, the server restarted for each:
#   cached   the IPs were validated by a first, unmeasured trial
#   fresh    every trial resolves IPs nobody validated, the API answers at once
#   api300   the same with every API answer delayed by API_DELAY
#
# Knobs (environment variables; defaults in brackets):
#   IPS ["1 10 100"]   suspicious IPs in each event's window
#   TRIALS [30]        measured events per mode and size
#   MODES ["cached fresh api300"], API_DELAY [300ms]
#   STATE [1]          1: the server keeps a state directory (blocks are on
#                      disk before they are pushed, as in production); 0: none
#   WORKERS [128]      the server's validation workers (the API calls of one
#                      event run at most this many at once)
#   GAP [0.5s]         pause between trials, so that each event comes alone,
#                      as an alert does; 0s makes the trials a sustained
#                      stream of events, which the CPU budget paces (a storm)
#   VALIDATE_CPU []    the server's validate_cpu (empty: its default, 5%;
#                      off: no CPU budget)
#   PROFILE [0]        1: record the server with perf during each measurement
#                      (bench/results/profile-latency-MODE-IPS.txt)
#   RESULTS [bench/results/latency.md], BUILD [1], BIN [bin/coredns-cip]
set -Eeuo pipefail

cd "$(dirname "$0")/.."

IPS=${IPS:-1 10 100}
TRIALS=${TRIALS:-30}
MODES=${MODES:-cached fresh api300}
API_DELAY=${API_DELAY:-300ms}
WORKERS=${WORKERS:-128}
GAP=${GAP:-0.5s}
VALIDATE_CPU=${VALIDATE_CPU:-}
STATE=${STATE:-1}
RESULTS=${RESULTS:-bench/results/latency.md}
GO=${GO:-go}
BIN=${BIN:-bin/coredns-cip}
BUILD=${BUILD:-1}
PROFILE=${PROFILE:-0}

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: the scenario needs a network namespace and nftables"
command -v ip >/dev/null || die "ip (iproute2) is missing"
command -v curl >/dev/null || die "curl is missing"
[[ $TRIALS =~ ^[0-9]+$ && $TRIALS -gt 0 ]] || die "TRIALS must be a positive integer, not '$TRIALS'"
[[ $WORKERS =~ ^[0-9]+$ && $WORKERS -gt 0 && $WORKERS -le 1024 ]] || die "WORKERS must be 1-1024, not '$WORKERS'"
maxips=0
for n in $IPS; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "IPS must list positive integers, not '$n'"
  ((n > maxips)) && maxips=$n
done
if [[ $PROFILE == 1 ]] && ! command -v perf >/dev/null; then
  log "warning: PROFILE=1 but perf is missing (apt-get install linux-perf): no profiles"
  PROFILE=0
fi
for m in $MODES; do [[ $m == cached || $m == fresh || $m == api300 ]] || die "unknown mode '$m' (cached fresh api300)"; done
NAMES=$((maxips * TRIALS))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cip-latency.XXXXXX")
NS=ciplat$$
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $BUILD == 1 ]]; then
  log "building $BIN"
  make -s build GO="$GO" BIN="$BIN" BUILDTAGS=curated
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
"$GO" build -o "$WORK/loadtool" ./bench/loadtool
"$WORK/loadtool" latfix -dir "$WORK" -n "$NAMES"

ip netns add "$NS"
IN=(ip netns exec "$NS")
"${IN[@]}" ip link set lo up

"${IN[@]}" "$BIN" fakeapi --fixtures "$WORK/fixtures" --listen 127.0.0.1:0 >"$WORK/fakeapi.out" 2>&1 &
PIDS+=($!)
FAKE_URL=
for _ in $(seq 100); do
  FAKE_URL=$(sed -n 's/^fakeapi listening on \(http:[^ ]*\).*/\1/p' "$WORK/fakeapi.out")
  [[ -n $FAKE_URL ]] && break
  sleep 0.1
done
[[ -n $FAKE_URL ]] || die "fake API did not start: $(cat "$WORK/fakeapi.out")"
log "fake API: $(head -1 "$WORK/fakeapi.out")"
# The namespace's own loopback: these ports are free in it.
P_DNS=5300 P_EVENTS=8300

write_corefile() {
  local state="# no state directory (STATE=0)"
  if [[ $STATE == 1 ]]; then
    rm -rf "$WORK/state"
    state="state $WORK/state"
  fi
  cat >"$WORK/Corefile" <<EOF
.:$P_DNS {
    bind 127.0.0.1
    cipvalidate {
        api_key latency
        api_url $FAKE_URL
        rate 100000 100000
        workers $WORKERS
        ${VALIDATE_CPU:+validate_cpu $VALIDATE_CPU}
        events 127.0.0.1:$P_EVENTS
        scope tagged all
        hook nftables ip ciplat bad4 - create
        $state
    }
    file $WORK/lat.db loadtest.example
}
EOF
}

SERVER=
start_server() {
  "${IN[@]}" nft delete table ip ciplat 2>/dev/null || true
  write_corefile
  "${IN[@]}" "$BIN" -conf "$WORK/Corefile" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 100); do
    "${IN[@]}" curl -fsS -o /dev/null "http://127.0.0.1:$P_EVENTS/healthz" 2>/dev/null && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$WORK/server.log" >&2
  die "the server did not start"
}
stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}

ROWS=()
for mode in $MODES; do
  delay=0s
  [[ $mode == api300 ]] && delay=$API_DELAY
  "${IN[@]}" curl -fsS -XPOST "$FAKE_URL/_fake/delay?d=$delay" >/dev/null
  for n in $IPS; do
    start_server
    fresh=()
    [[ $mode != cached ]] && fresh=(-fresh)
    log "mode $mode, $n IPs, $TRIALS trials"
    PERF=
    if [[ $PROFILE == 1 ]]; then
      perf record -F 1999 -g -o "$WORK/perf.data" -p "$SERVER" >/dev/null 2>&1 &
      PERF=$!
    fi
    line=$("${IN[@]}" "$WORK/loadtool" latency -server "127.0.0.1:$P_DNS" -events "http://127.0.0.1:$P_EVENTS" \
      -ips "$n" -trials "$TRIALS" -gap "$GAP" -names "$NAMES" "${fresh[@]}") || { tail -20 "$WORK/server.log" >&2; "${IN[@]}" nft list table ip ciplat >&2; die "loadtool latency failed"; }
    log "  $line"
    if [[ -n $PERF ]]; then
      kill -INT "$PERF" 2>/dev/null || true
      wait "$PERF" 2>/dev/null || true
      mkdir -p bench/results
      { echo "## inclusive (children), by symbol"
        perf report -i "$WORK/perf.data" --children --sort symbol -g none --percent-limit 1 --stdio 2>/dev/null | grep -v '^#' | head -120
        echo "## self, with callers"
        perf report -i "$WORK/perf.data" --no-children --percent-limit 0.5 --stdio 2>/dev/null | head -400
      } >"bench/results/profile-latency-$mode-$n.txt" || true
    fi
    stop_server
    p50=$(sed -n 's/.*p50=\([0-9.]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.*p99=\([0-9.]*\).*/\1/p' <<<"$line")
    mx=$(sed -n 's/.*max=\([0-9.]*\).*/\1/p' <<<"$line")
    ROWS+=("| $mode | $n | $TRIALS | $p50 | $p99 | $mx |")
  done
done

mkdir -p "$(dirname "$RESULTS")"
{
  echo "# Enforcement latency: event POST to the last nftables element"
  echo
  echo "- $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, $("$GO" version | cut -d' ' -f3)"
  echo "- workers $WORKERS, validate_cpu ${VALIDATE_CPU:-default (5%)}, trials $GAP apart, API delay in api300: $API_DELAY, state directory: $([[ $STATE == 1 ]] && echo "yes ($(df -T "$WORK" | awk 'NR == 2 { print $2 }'))" || echo no); milliseconds"
  echo
  echo "| mode | IPs | trials | p50 | p99 | max |"
  echo "|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} >"$RESULTS"
cat "$RESULTS"
