#!/usr/bin/env bash
# bench/loadtest.sh: the cost of cipvalidate under load, measured with dnsperf
# on loopback (`make loadtest`; BENCHMARKS.md explains the method).
#
# One coredns-cip process serves the same generated zone from two server
# blocks that differ only by the cipvalidate block (a third, not measured,
# serves the metrics). Runs are paired and alternate between the two blocks,
# with the plugin first (A B A B ...), the server pinned to one CPU and
# dnsperf (and the fake Criminal IP API, standing in for a remote service) to
# the other. Each scenario restarts the server, so its peak RSS is its own.
#
# Scenarios (SCENARIOS="n a b c e f g d m l" by default):
#   n  A/A control: both blocks without cipvalidate (the noise floor)
#   a  no client tagged
#   b  every client tagged (tag 127.0.0.0/8), every verdict cached (clean)
#   c  every client tagged, 10% of the hosts suspicious (sinkholed), cached
#   e  the Unbound respip comparison: `enforce all` and `scope everyone all`,
#      the loaded client untagged, 10% of the hosts suspicious (sinkholed),
#      every verdict warm: a pass from 127.0.0.2, the only tagged client
#      (`tag 127.0.0.2/32`), validates the zone first, so the measured path
#      is the policy work only, as respip's is
#   f  `tagged` findings: every client tagged, `scope tagged all` (every
#      finding applies to tagged clients only), 10% sinkholed, cached
#   g  pair blocks: `scope tagged all` and no static tag; G_CLIENTS-1 primed
#      clients and the loaded one are tagged by events, so each suspicious
#      IP in a window becomes a block for one client -> IP pair; then a warm
#      pass from the loaded client and the measured runs from it
#   d  event storm: 1000 events for 1000 clients posted during the plugin run
#      (the server restarts per pair so each storm meets a cold cache)
#   m  memory: 100k clients with 10 answers each at the default caps
#   l  enforcement latency: event POST to the last nftables element, for 1,
#      10 and 100 suspicious IPs, cached and not (bench/latency.sh, which
#      writes its own table to bench/results/latency.md; needs root)
#
# Knobs (environment variables; defaults in brackets):
#   PAIRS [3]            pairs of runs per scenario
#   DURATION [10]        seconds per run; WARMUP [5] seconds per block first
#   CLIENTS [8]          dnsperf -c; OUTSTANDING [100] -q; THREADS [1] -T
#   QPS []               dnsperf -Q; empty: no limit, i.e. saturation
#   SCENARIOS [n a b c d m l], NAMES [5000] hosts in the zone
#   STORM_EVENTS [1000]  events per storm (d); d also reports the fake API's
#                        calls per event and per unique public IP, checked
#                        against "one call per unique IP per verdict TTL"
#   G_CLIENTS [100]      event-tagged clients, the loaded one included (g)
#   MEM_CLIENTS [100000], MEM_PER [10] answers per client, MEM_GOMEMLIMIT []
#                        the server's GOMEMLIMIT in scenario m (empty: none),
#                        MEM_TOTAL [] the window's total cap in scenario m
#                        (empty: the default)
#   SERVER_CPU [0], LOAD_CPU [1]  where taskset pins the server and the load
#   QUIET [0]            before each pair, wait up to this many seconds for
#                        the machine to be idle (< 5% busy over a second),
#                        when other work shares it
#   PROFILE [0]          1: profile one more run of each block with perf
#                        after the pairs of n, a, b, c, e, f, g, and one
#                        storm run of d
#                        (bench/results/profile-SCENARIO-BLOCK.txt)
#   RESULTS [bench/results/latest.md], KEEP [0] 1 keeps the work directory
#   BUILD [1]            0: use BIN [bin/coredns-cip] as it is instead of
#                        `make build` (e.g. one built from a clean checkout
#                        while the work tree is being edited)
set -Eeuo pipefail

cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-5}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-100}
THREADS=${THREADS:-1}
QPS=${QPS:-}
NAMES=${NAMES:-5000}
STORM_EVENTS=${STORM_EVENTS:-1000}
MEM_CLIENTS=${MEM_CLIENTS:-100000}
MEM_PER=${MEM_PER:-10}
MEM_GOMEMLIMIT=${MEM_GOMEMLIMIT:-}
MEM_TOTAL=${MEM_TOTAL:-}
PROFILE=${PROFILE:-0}
QUIET=${QUIET:-0}
SCENARIOS=${SCENARIOS:-n a b c e f g d m l}
G_CLIENTS=${G_CLIENTS:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-bench/results/latest.md}
GO=${GO:-go}
BIN=${BIN:-bin/coredns-cip}
BUILD=${BUILD:-1}

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in PAIRS DURATION WARMUP CLIENTS OUTSTANDING THREADS NAMES STORM_EVENTS G_CLIENTS MEM_CLIENTS MEM_PER; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $QUIET =~ ^[0-9]+$ ]] || die "QUIET must be a number of seconds, not '$QUIET'"
[[ -z $QPS || $QPS =~ ^[0-9]+$ ]] || die "QPS must be empty (no limit) or a number, not '$QPS'"
[[ -z $MEM_TOTAL || $MEM_TOTAL =~ ^[0-9]+$ ]] || die "MEM_TOTAL must be empty (the default) or a number of entries, not '$MEM_TOTAL'"

# --- tools -------------------------------------------------------------------

need_root_apt() {
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get to install it"
  [[ $(id -u) -eq 0 ]] || die "$1 is missing: run 'apt-get install $2' as root (or run this as root)"
  log "installing $2 (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
command -v dnsperf >/dev/null || need_root_apt dnsperf dnsperf
command -v curl >/dev/null || need_root_apt curl curl
dnsperf -h 2>&1 | grep -q 'Version 2\.' || log "warning: this is not dnsperf 2.x; the output parser expects 2.10"
if [[ $PROFILE == 1 ]] && ! command -v perf >/dev/null; then
  log "warning: PROFILE=1 but perf is missing (apt-get install linux-perf): no profiles"
  PROFILE=0
fi

WORK=$(mktemp -d "$( [[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/cip-loadtest.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  if [[ ${KEEP:-0} == 1 || ($rc -ne 0 && $rc -ne 130) ]]; then # kept for a look after a failure
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

forget_pid() { local p=$1 keep=() x; for x in "${PIDS[@]}"; do [[ $x == "$p" ]] || keep+=("$x"); done; PIDS=("${keep[@]}"); }
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_LOAD=(taskset -c "$LOAD_CPU")
  PINNING="server on CPU $SERVER_CPU, dnsperf and the helpers on CPU $LOAD_CPU (taskset)"
else
  PIN_SERVER=() PIN_LOAD=()
  PINNING="not pinned (taskset missing or a single CPU)"
  log "warning: $PINNING; the figures mix the server's and dnsperf's CPU"
fi

if [[ $BUILD == 1 ]]; then
  log "building $BIN and the load helper"
  make -s build GO="$GO" BIN="$BIN" BUILDTAGS=curated
  BUILT="built from the work tree by this run"
else
  [[ -x $BIN ]] || die "BUILD=0 but $BIN is not an executable"
  log "using $BIN as it is (BUILD=0); building the load helper"
  BUILT="given with BUILD=0, not built by this run"
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
"$GO" build -o "$WORK/loadtool" ./bench/loadtool
LT=("${PIN_LOAD[@]}" "$WORK/loadtool")

"${LT[@]}" gen -dir "$WORK" -names "$NAMES" >"$WORK/gen.txt"
log "$(cat "$WORK/gen.txt")"

# --- fake Criminal IP API ----------------------------------------------------

"${PIN_LOAD[@]}" "$BIN" fakeapi --listen 127.0.0.1:0 >"$WORK/fakeapi.out" 2>&1 &
PIDS+=($!)
FAKE_URL=
for _ in $(seq 50); do
  FAKE_URL=$(sed -n 's/^fakeapi listening on \(http:[^ ]*\).*/\1/p' "$WORK/fakeapi.out")
  [[ -n $FAKE_URL ]] && break
  sleep 0.1
done
[[ -n $FAKE_URL ]] || die "fake API did not start: $(cat "$WORK/fakeapi.out")"
fake_calls() { curl -fsS "$FAKE_URL/_fake/stats" | sed -n 's/.*"calls":\([0-9]*\).*/\1/p'; }
log "fake API: $(head -1 "$WORK/fakeapi.out")"

# --- server ------------------------------------------------------------------

mapfile -t PORTS < <("${LT[@]}" ports 5)
[[ ${#PORTS[@]} -eq 5 ]] || die "no free ports"
P_WITH=${PORTS[0]} P_WITHOUT=${PORTS[1]} P_ADMIN=${PORTS[2]} P_METRICS=${PORTS[3]} P_EVENTS=${PORTS[4]}
EVENTS_URL=http://127.0.0.1:$P_EVENTS
METRICS_URL=http://127.0.0.1:$P_METRICS/metrics

# write_corefile FILE ZONEFILE TAGLINE ("none": no cipvalidate at all, for
# the A/A control)
write_corefile() {
  local plugin="    cipvalidate {
        api_key loadtest
        api_url $FAKE_URL
        rate 100000 100000
        events 127.0.0.1:$P_EVENTS
        $3
    }"
  [[ $3 == none ]] && plugin="    # (A/A control: no cipvalidate)"
  cat >"$1" <<EOF
# Generated by bench/loadtest.sh. The two measured blocks differ only by
# cipvalidate; the third serves the metrics (the default registry, which
# cipvalidate's metrics are in) so that neither measured block pays for them.
.:$P_WITH {
    bind 127.0.0.1
    errors
$plugin
    file $2 loadtest.example
}
.:$P_WITHOUT {
    bind 127.0.0.1
    errors
    file $2 loadtest.example
}
.:$P_ADMIN {
    bind 127.0.0.1
    prometheus 127.0.0.1:$P_METRICS
    whoami
}
EOF
}

SERVER_PID=
# start_server SCENARIO ZONEFILE TAGLINE
start_server() {
  local conf=$WORK/Corefile.$1
  write_corefile "$conf" "$2" "$3"
  local env=()
  [[ $1 == m && -n $MEM_GOMEMLIMIT ]] && env=(env "GOMEMLIMIT=$MEM_GOMEMLIMIT")
  "${PIN_SERVER[@]}" "${env[@]}" "$BIN" -conf "$conf" >"$WORK/server.$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  local health=$EVENTS_URL/healthz
  [[ $3 == none ]] && health=$METRICS_URL
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null "$health" 2>/dev/null && curl -fsS -o /dev/null "$METRICS_URL" 2>/dev/null; then
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$WORK/server.$1.log" >&2
  die "server for scenario $1 did not start"
}

# metric NAME [LABEL_REGEX]: the sum of a metric's samples whose labels match.
metric() {
  curl -fsS "$METRICS_URL" | awk -v name="$1" -v re="${2:-}" '
    $1 !~ /^#/ { split($1, p, "{"); if (p[1] == name && (re == "" || $1 ~ re)) s += $2 }
    END { printf "%.0f\n", s }'
}

vm_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cpu_busy N: busy ticks of CPU N (everything but idle and iowait).
cpu_busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
HZ=$(getconf CLK_TCK)

# --- runs --------------------------------------------------------------------

RUNS=$WORK/runs.tsv # scenario pair side qps avg p50 p99 p999 min1s lost srv% other% cpu_us load%
: >"$RUNS"

# run_dnsperf SCENARIO PAIR SIDE PORT: one measured run, recorded in $RUNS.
run_dnsperf() {
  local s=$1 pair=$2 side=$3 port=$4 out=$WORK/dnsperf.out
  local t0 c0 w0 t1 c1 w1 l0 l1 sum
  local qlimit=()
  [[ -n $QPS ]] && qlimit=(-Q "$QPS")
  t0=$(proc_ticks "$SERVER_PID") c0=$(cpu_busy "$SERVER_CPU") l0=$(cpu_busy "$LOAD_CPU") w0=$(date +%s.%N)
  "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$DURATION" \
    -c "$CLIENTS" -q "$OUTSTANDING" -T "$THREADS" "${qlimit[@]}" -S 1 -v >"$out" 2>&1 ||
    { tail -5 "$out" >&2; die "dnsperf failed"; }
  t1=$(proc_ticks "$SERVER_PID") c1=$(cpu_busy "$SERVER_CPU") l1=$(cpu_busy "$LOAD_CPU") w1=$(date +%s.%N)
  sum=$("$WORK/loadtool" summary "$out")
  grep -v '^> ' "$out" >"$WORK/dnsperf.$s.$pair.$side.txt" || true # the summary and the per-second qps
  rm -f "$out"
  kv() { tr ' ' '\n' <<<"$sum" | sed -n "s/^$1=//p"; }
  awk -v s="$s" -v pair="$pair" -v side="$side" -v qps="$(kv qps)" -v avg="$(kv avg_ms)" -v p50="$(kv p50_ms)" \
    -v p99="$(kv p99_ms)" -v p999="$(kv p999_ms)" -v min1s="$(kv min1s_qps)" -v lost="$(kv lost)" -v completed="$(kv completed)" \
    -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v l0="$l0" -v l1="$l1" -v w0="$w0" -v w1="$w1" -v hz="$HZ" '
    BEGIN {
      dt = t1 - t0; wall = w1 - w0
      srv = 100 * dt / (wall * hz); other = 100 * (c1 - c0 - dt) / (wall * hz); if (other < 0) other = 0
      cpuus = completed > 0 ? dt / hz * 1e6 / completed : 0
      load = 100 * (l1 - l0) / (wall * hz)
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.2f\t%.0f\n", s, pair, side, qps, avg, p50, p99, p999, min1s, lost, srv, other, cpuus, load
    }' >>"$RUNS"
  log "  $s pair $pair $(printf '%-7s' "$side") $(tail -1 "$RUNS" | awk -F'\t' '{ printf "qps %s  avg %s ms  p99 %s ms  lost %s  server CPU %s%% (+%s%% other)  %s us/query  load CPU %s%%", $4, $5, $7, $10, $11, $12, $13, $14 }')"
}

# machine_busy SECONDS: how busy (%) all CPUs were over that time.
machine_busy() {
  local a b
  a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  sleep "$1"
  b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); db = y[1] - x[1]; di = y[2] - x[2]; printf "%.0f\n", (db + di > 0) ? 100 * db / (db + di) : 0 }'
}

# quiet_wait: with QUIET > 0, wait up to QUIET seconds for the machine to be
# idle (our server is, between runs), so that a pair does not start while
# other work shares the CPUs.
quiet_wait() {
  ((QUIET > 0)) || return 0
  local waited=0 busy
  while ((waited < QUIET)); do
    busy=$(machine_busy 1)
    ((busy < 5)) && { ((waited > 0)) && log "  waited ${waited}s for the machine to be idle"; return 0; }
    waited=$((waited + 1))
  done
  log "  warning: the machine is still ${busy}% busy after ${QUIET}s; running anyway"
}

# warmup: a short unrecorded run on each block (page faults, heap growth).
warmup() {
  local port
  for port in "$P_WITH" "$P_WITHOUT"; do
    "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$WARMUP" \
      -c "$CLIENTS" -q "$OUTSTANDING" -T "$THREADS" >/dev/null 2>&1 || die "warm-up dnsperf failed"
  done
}

# settle: wait until every queued IP has its verdict and the fake API's call
# count has stopped growing (validation is asynchronous).
settle() {
  local last=-1 now stable=0 q v
  for _ in $(seq 120); do
    now=$(fake_calls)
    q=$(metric coredns_cipvalidate_ips_submitted_total 'result="queued"')
    v=$(metric coredns_cipvalidate_verdicts_total)
    if [[ $now == "$last" && $v -ge $q ]]; then
      stable=$((stable + 1))
      [[ $stable -ge 2 ]] && return 0
    else
      stable=0
    fi
    last=$now
    sleep 0.5
  done
  log "warning: validation did not settle (api calls $now, queued $q, verdicts $v)"
}

# warm_cache [SOURCE]: one pass over every name from a tagged client (dnsperf
# sends from SOURCE if given), so that every IP of the zone is validated,
# then a second pass that must cost no API call.
warm_cache() {
  local c0 c1 src=()
  [[ -n ${1:-} ]] && src=(-a "$1")
  "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$P_WITH" "${src[@]}" -d "$WORK/warm.txt" -n 1 -c "$CLIENTS" >/dev/null 2>&1 || die "warm pass failed"
  settle
  c0=$(fake_calls)
  "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$P_WITH" "${src[@]}" -d "$WORK/warm.txt" -n 1 -c "$CLIENTS" >/dev/null 2>&1 || die "warm pass failed"
  settle
  c1=$(fake_calls)
  log "  cache warm: $(metric coredns_cipvalidate_verdicts_total 'outcome="clean"') clean and $(metric coredns_cipvalidate_verdicts_total 'outcome="suspicious"') suspicious verdicts, $(metric coredns_cipvalidate_verdicts_total 'outcome="error"') errors; second pass: $((c1 - c0)) API calls"
}

perf_clean() { grep -v -e '^#' -e '^$' | sed -e 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' || true; }

# profile SCENARIO: one more (unrecorded) run of each block under perf, the
# server's CPU samples with call chains, reported by symbol, self and
# inclusive (children) time.
profile() {
  local s=$1 side port out
  for side in with without; do
    port=$P_WITH
    [[ $side == without ]] && port=$P_WITHOUT
    out=$(dirname "$RESULTS")/profile-$s-$side.txt
    perf record -q -e cpu-clock -F 1999 -g -p "$SERVER_PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null &
    local perf_pid=$!
    PIDS+=("$perf_pid")
    "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$DURATION" \
      -c "$CLIENTS" -q "$OUTSTANDING" -T "$THREADS" >"$WORK/profile.dnsperf" 2>&1 || die "dnsperf failed"
    wait "$perf_pid" || true
    forget_pid "$perf_pid"
    {
      echo "# scenario $s, $side cipvalidate: perf record -e cpu-clock -F 1999 -g, $(grep 'Queries per second' "$WORK/profile.dnsperf" | tr -s ' ')"
      echo "## self time"
      perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.5 2>/dev/null | perf_clean
      echo "## inclusive time (children)"
      perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none --percent-limit 0.8 2>/dev/null | perf_clean
    } >"$out"
    log "  profile: $out"
  done
}

declare -A NOTE RSS
STORM_CHECK="" STORM_API="" STORM_API_ROWS=() STORM_BUCKET_ROWS=() STORM_WORST=()
# scenario_plain ID ZONE TAGLINE WARM: scenarios n, a, b, c, e, f. WARM: 0
# none, 1 warm_cache from the loaded client, else the address to warm from.
scenario_plain() {
  local s=$1 zone=$2 tagline=$3 warm=$4
  log "scenario $s: start"
  start_server "$s" "$zone" "$tagline"
  case $warm in
  0) ;;
  1) warm_cache ;;
  *) warm_cache "$warm" ;;
  esac
  measure_pairs "$s"
}

# measure_pairs SCENARIO: warm-up and the measured pairs on the running
# server, their notes and peak RSS; stops the server.
measure_pairs() {
  local s=$1 calls0 rw0 pair inspected0
  warmup
  calls0=$(fake_calls) rw0=$(metric coredns_cipvalidate_answers_rewritten_total) inspected0=$(metric coredns_cipvalidate_answers_inspected_total)
  for pair in $(seq "$PAIRS"); do
    quiet_wait
    run_dnsperf "$s" "$pair" with "$P_WITH"
    run_dnsperf "$s" "$pair" without "$P_WITHOUT"
  done
  [[ $PROFILE == 1 ]] && { mkdir -p "$(dirname "$RESULTS")"; profile "$s"; }
  local calls=$(($(fake_calls) - calls0)) rw=$(($(metric coredns_cipvalidate_answers_rewritten_total) - rw0))
  local inspected=$(($(metric coredns_cipvalidate_answers_inspected_total) - inspected0))
  NOTE[$s]="API calls during the measured runs: $calls; answers rewritten during them: $rw of $inspected inspected ($(awk -v a="$rw" -v b="$inspected" 'BEGIN { printf "%.1f", b ? 100 * a / b : 0 }')%)"
  [[ $s == n ]] && NOTE[$s]="both blocks without cipvalidate: the ratio is the measurement's own error"
  RSS[$s]=$(vm_kib "$SERVER_PID" VmHWM)
  log "  $s: ${NOTE[$s]}; peak RSS $((RSS[$s] / 1024)) MiB"
  stop_pid "$SERVER_PID"
}

# scenario_pairs: g. Every finding is `tagged` and no client is tagged but by
# an event: G_CLIENTS-1 primed clients and the loaded one (127.0.0.1) are,
# so every suspicious IP in their windows becomes a block for one client ->
# IP pair. A warm pass from the loaded client then validates the rest of the
# zone (its own pairs for every suspicious IP) before the measured runs.
scenario_pairs() {
  local s=g ev
  log "scenario $s: pair blocks for $G_CLIENTS event-tagged clients"
  start_server "$s" "$WORK/zone.mixed.db" "scope tagged all"
  if ((G_CLIENTS > 1)); then
    "${LT[@]}" prime -server "127.0.0.1:$P_WITH" -clients $((G_CLIENTS - 1)) -first 127.1.0.1 -per 10 \
      -names "$WORK/answered.txt" >"$WORK/prime.g.txt"
  fi
  "${LT[@]}" storm -api "$EVENTS_URL" -events "$G_CLIENTS" -loaded 127.0.0.1 -first 127.1.0.1 \
    -found "$WORK/found.g.txt" >"$WORK/storm.g.txt" 2>&1 || { cat "$WORK/storm.g.txt" >&2; die "scenario g's events failed"; }
  "${LT[@]}" verdicts -api "$EVENTS_URL" -ips "$WORK/found.g.txt" -timeout 60s >/dev/null 2>&1 ||
    log "  warning: some of g's window IPs got no verdict"
  warm_cache
  # (The blocks and tags gauges are refreshed every 15 s: the counter is
  # read instead.)
  ev="events: $(cut -d' ' -f1-2,9- "$WORK/storm.g.txt"); block decisions $(metric coredns_cipvalidate_blocks_total 'kind="block"') (tagged scope: each for its clients' pairs only)"
  log "  $s: $ev"
  measure_pairs "$s"
  NOTE[$s]="$ev; ${NOTE[$s]}"
}

# scenario_storm: d. Per pair: a fresh server, STORM_EVENTS-1 primed
# clients; during the plugin run, one event for the loaded client (127.0.0.1,
# so its live answers are queued from then on) and one per primed client,
# posted as fast as 8 connections allow; then every IP of every event's
# window must get a verdict, and nothing may have been dropped.
scenario_storm() {
  local s=d pair
  log "scenario $s: event storm of $STORM_EVENTS events, server restarted per pair"
  NOTE[$s]="" RSS[$s]=0 STORM_CHECK="every pair: no drop, every window IP with a verdict"
  for pair in $(seq "$PAIRS"); do
    storm_pair "$pair" record
  done
  [[ $PROFILE == 1 ]] && storm_pair profile profile
  return 0
}

# storm_pair PAIR MODE: one pair of scenario d on a fresh server. MODE
# "profile" records nothing but a perf profile of the storm run.
storm_pair() {
  local s=d pair=$1 mode=$2 storm_pid verdicts dropped hwm perf_pid=
  start_server "$s" "$WORK/zone.mixed.db" ""
  "${LT[@]}" prime -server "127.0.0.1:$P_WITH" -clients $((STORM_EVENTS - 1)) -first 127.1.0.1 -per 10 \
    -names "$WORK/answered.txt" >"$WORK/prime.txt"
  warmup
  quiet_wait
  # The API calls of this pair only: the cache is cold (a fresh server) and
  # nothing was validated yet (the primed clients and the warm-up are
  # untagged).
  curl -fsS -X POST -o /dev/null "$FAKE_URL/_fake/reset"
  (
    sleep 1
    exec "${LT[@]}" storm -api "$EVENTS_URL" -events "$STORM_EVENTS" -loaded 127.0.0.1 -first 127.1.0.1 \
      -found "$WORK/found.$pair.txt" >"$WORK/storm.$pair.txt" 2>&1
  ) &
  storm_pid=$!
  PIDS+=("$storm_pid")
  if [[ $mode == profile ]]; then
    mkdir -p "$(dirname "$RESULTS")"
    perf record -q -e cpu-clock -F 1999 -g -p "$SERVER_PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null &
    perf_pid=$!
    PIDS+=("$perf_pid")
    "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$P_WITH" -d "$WORK/queries.txt" -l "$DURATION" \
      -c "$CLIENTS" -q "$OUTSTANDING" -T "$THREADS" >"$WORK/profile.dnsperf" 2>&1 || die "dnsperf failed"
  else
    run_dnsperf "$s" "$pair" with "$P_WITH"
  fi
  wait "$storm_pid" || { cat "$WORK/storm.$pair.txt" >&2; die "event storm failed"; }
  forget_pid "$storm_pid"
  if [[ -n $perf_pid ]]; then
    wait "$perf_pid" || true
    forget_pid "$perf_pid"
    {
      echo "# scenario d, with cipvalidate, during the storm: perf record -e cpu-clock -F 1999 -g, $(grep 'Queries per second' "$WORK/profile.dnsperf" | tr -s ' ')"
      echo "## self time"
      perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.5 2>/dev/null | perf_clean
      echo "## inclusive time (children)"
      perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none --percent-limit 0.8 2>/dev/null | perf_clean
    } >"$(dirname "$RESULTS")/profile-d-with.txt"
    log "  profile: $(dirname "$RESULTS")/profile-d-with.txt"
  fi
  if ! verdicts=$("${LT[@]}" verdicts -api "$EVENTS_URL" -ips "$WORK/found.$pair.txt" -timeout 60s 2>&1); then
    log "  FAILED: $verdicts"
    STORM_CHECK="FAILED: some window IPs got no verdict"
  fi
  settle
  dropped=$(metric coredns_cipvalidate_ips_submitted_total 'result="dropped"')
  if [[ $dropped != 0 ]]; then
    STORM_CHECK="FAILED: $dropped IPs dropped"
  fi
  storm_api "$pair" "$mode"
  log "  storm $pair: prime $(cat "$WORK/prime.txt")"
  log "  storm $pair: $(cat "$WORK/storm.$pair.txt")"
  log "  storm $pair: verdicts $verdicts; dropped $dropped; submitted: queued $(metric coredns_cipvalidate_ips_submitted_total 'result="queued"') in_flight $(metric coredns_cipvalidate_ips_submitted_total 'result="in_flight"') cached $(metric coredns_cipvalidate_ips_submitted_total 'result="cached"'); API calls $(metric coredns_cipvalidate_api_calls_total)"
  if [[ $mode == record ]]; then
    run_dnsperf "$s" "$pair" without "$P_WITHOUT"
    storm_buckets "$pair"
    hwm=$(vm_kib "$SERVER_PID" VmHWM)
    ((hwm > RSS[$s])) && RSS[$s]=$hwm
    NOTE[$s]+="pair $pair: $(cut -d' ' -f1-4,6- "$WORK/storm.$pair.txt" | tr '\n' ' ')| verdicts: $verdicts | dropped (metric): $dropped<br>"
  fi
  stop_pid "$SERVER_PID"
}

# storm_buckets PAIR: the target of d, every one-second bucket of the storm
# run at >= 0.90 of its pair's: the plugin run's lowest second over the
# pair's lowest second, the lowest ratio of same-numbered seconds, and each
# second's ratio (loadtool buckets). A row of the buckets table.
storm_buckets() {
  local pair=$1 line kv
  line=$("${LT[@]}" buckets "$WORK/dnsperf.d.$pair.with.txt" "$WORK/dnsperf.d.$pair.without.txt") ||
    { log "  storm $pair: no one-second buckets to compare"; return 0; }
  log "  storm $pair: one-second buckets $line"
  kv() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
  STORM_WORST+=("$(kv worst_ratio)")
  STORM_BUCKET_ROWS+=("| $pair | $(kv worst_ratio) | $(kv bucket_min) (second $(kv bucket_min_at)) | $(kv buckets_below_90) | $(kv buckets | sed 's/,/, /g') |")
  return 0
}

# storm_api PAIR MODE: the fake API's calls during one storm pair, per event
# and per unique public IP, against the target: exactly one call per unique
# public IP per verdict TTL (the TTL outlasts the run), every window IP
# called. Recorded (MODE record) as a row of the API table and in STORM_API.
storm_api() {
  local pair=$1 mode=$2 line kv check
  line=$("${LT[@]}" apicalls -fake "$FAKE_URL" -events "$STORM_EVENTS" -found "$WORK/found.$pair.txt") ||
    die "counting the storm's API calls failed"
  log "  storm $pair: API $line"
  [[ $mode == record ]] || return 0
  kv() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
  check=$(kv check)
  STORM_API_ROWS+=("| $pair | $(kv events) | $(kv api_calls) | $(kv unique_ips) | $(kv calls_per_event) | $(kv calls_per_unique_ip) | $(kv max_per_ip) | $(kv ips_called_more_than_once) | $(kv window_ips) | $(kv window_ips_not_called) | $check |")
  if [[ $check != PASS ]]; then
    STORM_API="FAIL (pair $pair: $(kv api_calls) calls for $(kv unique_ips) unique IPs, $(kv ips_called_more_than_once) called more than once, $(kv window_ips_not_called) window IPs not called)"
  elif [[ -z $STORM_API ]]; then
    STORM_API="PASS"
  fi
  return 0
}

# scenario_memory: m. MEM_CLIENTS clients resolve 10 names each through the
# plugin block at the default caps; the RSS is read once the window holds
# them (its gauge is refreshed every 15 s).
scenario_memory() {
  local s=m entries=0 rss hwm heap
  log "scenario $s: $MEM_CLIENTS clients x $MEM_PER answers${MEM_GOMEMLIMIT:+, GOMEMLIMIT=$MEM_GOMEMLIMIT}${MEM_TOTAL:+, total $MEM_TOTAL}"
  start_server "$s" "$WORK/zone.clean.db" "${MEM_TOTAL:+retain 15m total $MEM_TOTAL}"
  "${LT[@]}" prime -server "127.0.0.1:$P_WITH" -clients "$MEM_CLIENTS" -first 127.1.0.1 -per "$MEM_PER" -names "$WORK/answered.txt" >"$WORK/prime.txt"
  # The window gauge is refreshed every 15 s: wait for a refresh after the
  # last answer, so that it counts them all.
  local before
  before=$(metric coredns_cipvalidate_window_entries)
  for _ in $(seq 34); do
    sleep 0.5
    entries=$(metric coredns_cipvalidate_window_entries)
    [[ $entries != "$before" ]] && break
  done
  rss=$(vm_kib "$SERVER_PID" VmRSS) hwm=$(vm_kib "$SERVER_PID" VmHWM)
  heap=$(metric go_memstats_heap_inuse_bytes)
  local goal
  goal=$(metric go_memstats_next_gc_bytes)
  RSS[$s]=$hwm
  NOTE[$s]="prime: $(cat "$WORK/prime.txt"); IPs recorded $(metric coredns_cipvalidate_ips_recorded_total), window entries $entries, evicted $(metric coredns_cipvalidate_window_evicted_entries); VmRSS $((rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB, Go heap in use $((heap / 1048576)) MiB, next GC goal $((goal / 1048576)) MiB (about twice the heap live after the last GC, GOGC 100)${MEM_GOMEMLIMIT:+, GOMEMLIMIT=$MEM_GOMEMLIMIT}${MEM_TOTAL:+, window total $MEM_TOTAL}"
  log "  $s: ${NOTE[$s]}"
  stop_pid "$SERVER_PID"
}

# --- main --------------------------------------------------------------------

BUSY_BEFORE=$(machine_busy 2)
[[ $BUSY_BEFORE -gt 10 ]] && log "warning: the machine was ${BUSY_BEFORE}% busy before the run: expect noise"
START=$(date +%s)

for s in $SCENARIOS; do
  case $s in
  n) scenario_plain n "$WORK/zone.mixed.db" none 0 ;;
  a) scenario_plain a "$WORK/zone.mixed.db" "" 0 ;;
  b) scenario_plain b "$WORK/zone.clean.db" "tag 127.0.0.0/8" 1 ;;
  c) scenario_plain c "$WORK/zone.mixed.db" "tag 127.0.0.0/8" 1 ;;
  e) scenario_plain e "$WORK/zone.mixed.db" $'enforce all\n        scope everyone all\n        tag 127.0.0.2/32' 127.0.0.2 ;;
  f) scenario_plain f "$WORK/zone.mixed.db" $'tag 127.0.0.0/8\n        scope tagged all' 1 ;;
  g) scenario_pairs ;;
  d) scenario_storm ;;
  m) scenario_memory ;;
  l) if [[ $(id -u) -eq 0 ]] && command -v ip >/dev/null; then
       GO="$GO" BIN="$BIN" BUILD=0 bash bench/latency.sh
     else
       log "skipping scenario l: it needs root and ip (iproute2) for a network namespace"
     fi ;;
  *) die "unknown scenario '$s'" ;;
  esac
done

# --- report ------------------------------------------------------------------

# med SCENARIO SIDE COLUMN: the median of a column over a scenario's runs.
med() {
  awk -F'\t' -v s="$1" -v side="$2" -v c="$3" '$1 == s && $3 == side { print $c }' "$RUNS" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%.3f", a / b }'; }
label() {
  case $1 in
  n) echo "n. A/A control" ;; a) echo "a. untagged" ;; b) echo "b. tagged, cached" ;; c) echo "c. tagged, 10% sinkholed" ;;
  e) echo "e. enforce all, untagged, 10% sinkholed (respip)" ;; f) echo "f. tagged, tagged-scope findings, 10% sinkholed" ;;
  g) echo "g. pair blocks, event-tagged client" ;; d) echo "d. event storm" ;; m) echo "m. memory" ;; l) echo "l. enforcement latency (bench/results/latency.md)" ;;
  esac
}
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }

# pair_ratios SCENARIO COLUMN: "median (min-max)" of the per-pair ratios
# with / without, which cancel drift slower than a pair.
pair_ratios() {
  awk -F'\t' -v s="$1" -v c="$2" '$1 == s { v[$2, $3] = $c; p[$2] = 1 }
    END { for (i in p) if (v[i, "without"] > 0) print v[i, "with"] / v[i, "without"] }' "$RUNS" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
      m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      printf "%.3f (%.3f-%.3f)\n", m, a[1], a[NR] }'
}

TABLE=$WORK/table.md
{
  echo "| scenario | with qps | without qps | qps ratio | with avg / p99 (ms) | without avg / p99 (ms) | p99 ratio | peak RSS | per-pair qps ratios: median (range) | CPU/query ratio (per-pair median) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in $SCENARIOS; do
    [[ $s == m || $s == l ]] && continue
    wq=$(med "$s" with 4) bq=$(med "$s" without 4)
    printf '| %s | %.0f | %.0f | **%s** | %.3f / %.3f | %.3f / %.3f | %s | %s | %s | %s |\n' "$(label "$s")" "$wq" "$bq" "$(ratio "$wq" "$bq")" \
      "$(med "$s" with 5)" "$(med "$s" with 7)" "$(med "$s" without 5)" "$(med "$s" without 7)" \
      "$(ratio "$(med "$s" with 7)" "$(med "$s" without 7)")" "$(mib "${RSS[$s]}")" \
      "$(pair_ratios "$s" 4)" "$(pair_ratios "$s" 13 | cut -d' ' -f1)"
  done
} >"$TABLE"

EXTRA=$WORK/extra.md
{
  if [[ " $SCENARIOS " == *" d "* && " $SCENARIOS " == *" a "* ]]; then
    echo "- d vs a: storm-run qps / untagged plugin qps = **$(ratio "$(med d with 4)" "$(med a with 4)")**;" \
      "lowest one-second qps during the storm runs (median) / a's = $(ratio "$(med d with 9)" "$(med a with 9)")"
  fi
  [[ -n $STORM_CHECK ]] && echo "- d checks: **$STORM_CHECK**"
  ((${#STORM_WORST[@]} > 0)) && echo "- d worst second (lowest one-second qps with / without the plugin, per pair; target >= 0.90): **$(printf '%s\n' "${STORM_WORST[@]}" | sort -g | head -1)** lowest, $(printf '%s ' "${STORM_WORST[@]}")(buckets table below)"
  [[ -n $STORM_API ]] && echo "- d API calls, target exactly one call per unique public IP per verdict TTL: **$STORM_API** (per pair below)"
  for s in $SCENARIOS; do
    [[ -n ${NOTE[$s]:-} ]] && echo "- $(label "$s"): ${NOTE[$s]}"
    [[ $s == m ]] && echo "  (peak RSS $(mib "${RSS[m]}"))"
  done
} >"$EXTRA"

RUNTABLE=$WORK/runs.md
{
  echo "| scenario | pair | block | qps | avg ms | p50 ms | p99 ms | p99.9 ms | lowest 1 s qps | lost | server CPU % | other load on the server's CPU % | server CPU us/query | load generator's CPU busy % |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 }' "$RUNS"
} >"$RUNTABLE"

mkdir -p "$(dirname "$RESULTS")"
{
  echo "# coredns-cip load test, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, kernel $(uname -r), $("$GO" version | cut -d' ' -f3), $("$BIN" -version 2>/dev/null | head -1)"
  echo "- binary: $BIN, $BUILT; work tree at $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- plugin internal cmd 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- load: dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p') -c $CLIENTS -q $OUTSTANDING -T $THREADS ${QPS:+-Q $QPS }-l $DURATION; $PAIRS pairs per scenario, plugin block first; $PINNING; machine ${BUSY_BEFORE}% busy before the run$( ((QUIET > 0)) && echo "; QUIET=$QUIET")"
  echo "- data: $(cat "$WORK/gen.txt")"
  echo "- qps ratio and p99 ratio: median with / median without the plugin (the issue's figures); a latency ratio > 1 is slower. Per-pair ratios: each pair's with / without, then their median and range (less sensitive to drift between pairs). CPU/query: the server's CPU time per query (1 / qps when the server's CPU is saturated)"
  echo
  cat "$TABLE"
  echo
  cat "$EXTRA"
  echo
  if ((${#STORM_BUCKET_ROWS[@]} > 0)); then
    echo "## One-second buckets in the storm (d)"
    echo
    echo "Target: every one-second bucket of the storm run >= 0.90 of its pair's. Ratios with / without the plugin; the first and last (partial) seconds left out."
    echo
    echo "| pair | lowest second / pair's lowest second | lowest same-second ratio | seconds below 0.90 | every second's ratio |"
    echo "|---:|---:|---:|---:|---|"
    printf '%s\n' "${STORM_BUCKET_ROWS[@]}"
    echo
  fi
  if ((${#STORM_API_ROWS[@]} > 0)); then
    echo "## API calls in the storm (d)"
    echo
    echo "| pair | events | API calls | unique IPs | calls per event | calls per unique IP | most calls for one IP | IPs called more than once | window IPs | window IPs not called | one call per unique IP |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${STORM_API_ROWS[@]}"
    echo
  fi
  echo "## Runs"
  echo
  cat "$RUNTABLE"
  echo
  echo "Total time: $(($(date +%s) - START)) s."
} >"$RESULTS"

echo
cat "$TABLE"
echo
cat "$EXTRA"
[[ -n $STORM_API ]] && echo "storm API calls (one per unique public IP per verdict TTL): $STORM_API"
echo
echo "Per-run figures and the setup: $RESULTS"
