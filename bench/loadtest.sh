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
# Scenarios (SCENARIOS="n a b c e u f g d m l" by default):
#   n  A/A control: both blocks without cipvalidate (the noise floor)
#   a  no client tagged
#   b  every client tagged (tag 127.0.0.0/8), every verdict cached (clean)
#   c  every client tagged, 10% of the hosts suspicious (sinkholed), cached
#   e  the Unbound respip comparison: `enforce all` and `scope everyone all`,
#      the loaded client untagged, 10% of the hosts suspicious (sinkholed),
#      every verdict warm: a pass from 127.0.0.2, the only tagged client
#      (`tag 127.0.0.2/32`), validates the zone first, so the measured path
#      is the policy work only, as respip's is
#   u  the Unbound anchor for e, in the same run: Unbound (Debian's, installed
#      if missing), one thread, pinned like the server, with and without
#      respip: U_RULES `response-ip: IP/32 always_nxdomain` rules, the mixed
#      zone's 14 suspicious IPs (10% of the hosts) and fillers no answer
#      carries; both forward the zone to a bare CoreDNS `file` backend on
#      the load CPU (long TTLs); caches warm (every query once, then a pass
#      that must not reach the backend), so the runs are answered from
#      Unbound's cache, where worker.c applies respip. Checked: every
#      suspicious host's A is NXDOMAIN with respip and not without, and the
#      runs' NXDOMAIN share rises by the share of A answers that carry a
#      rule's IP. Pairs in ABBA order (U_ORDER). Unbound's cache answers
#      cost ~1/3 of CoreDNS's: where one dnsperf does not saturate it (the
#      note says so), read the CPU/query ratio, not the qps ratio
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
#   SCENARIOS [n a b c e u f g d m l], NAMES [5000] hosts in the zone
#   STORM_EVENTS [1000]  events per storm (d); d also reports the fake API's
#                        calls per event and per unique public IP, checked
#                        against "one call per unique IP per verdict TTL"
#   G_CLIENTS [100]      event-tagged clients, the loaded one included (g)
#   U_RULES [200]        respip rules in u (at least the 14 suspicious IPs)
#   U_ORDER [abba]       u's run order: abba (with, without; then without,
#                        with; ..., as the issue's anchor), or abab (with
#                        first in every pair, as the other scenarios)
#   SCALE [0]            1: after the 1-CPU pairs of n, a, b, c, e, f and g,
#                        the server's threads are re-pinned to both CPUs
#                        (GOMAXPROCS follows: checked, it must read 2) and
#                        PAIRS more pairs run with two dnsperf clients, one
#                        pinned to each CPU, each with half of CLIENTS and
#                        OUTSTANDING; a "scaling" table gives 2-CPU qps /
#                        1-CPU qps for the plugin block and the bare chain
#                        (u keeps one Unbound thread: not scaled)
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
#                        (bench/results/profile-SCENARIO-BLOCK.txt: self and
#                        inclusive time, and coredns-cip's own functions
#                        down to 0.02%)
#   PLUGIN_EXTRA []      more lines for every cipvalidate block, e.g.
#                        "validate_cpu 0.02" (an experiment; the results
#                        file quotes it)
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
PLUGIN_EXTRA=${PLUGIN_EXTRA:-}
MEM_CLIENTS=${MEM_CLIENTS:-100000}
MEM_PER=${MEM_PER:-10}
MEM_GOMEMLIMIT=${MEM_GOMEMLIMIT:-}
MEM_TOTAL=${MEM_TOTAL:-}
PROFILE=${PROFILE:-0}
QUIET=${QUIET:-0}
SCENARIOS=${SCENARIOS:-n a b c e u f g d m l}
G_CLIENTS=${G_CLIENTS:-100}
U_RULES=${U_RULES:-200}
U_ORDER=${U_ORDER:-abba}
SCALE=${SCALE:-0}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-bench/results/latest.md}
GO=${GO:-go}
BIN=${BIN:-bin/coredns-cip}
BUILD=${BUILD:-1}

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in PAIRS DURATION WARMUP CLIENTS OUTSTANDING THREADS NAMES STORM_EVENTS G_CLIENTS MEM_CLIENTS MEM_PER U_RULES; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $QUIET =~ ^[0-9]+$ ]] || die "QUIET must be a number of seconds, not '$QUIET'"
[[ -z $QPS || $QPS =~ ^[0-9]+$ ]] || die "QPS must be empty (no limit) or a number, not '$QPS'"
[[ -z $MEM_TOTAL || $MEM_TOTAL =~ ^[0-9]+$ ]] || die "MEM_TOTAL must be empty (the default) or a number of entries, not '$MEM_TOTAL'"
[[ $U_ORDER == abba || $U_ORDER == abab ]] || die "U_ORDER must be abba or abab, not '$U_ORDER'"
[[ $SCALE == 0 || $SCALE == 1 ]] || die "SCALE must be 0 or 1, not '$SCALE'"
[[ $SCALE == 0 ]] || ((CLIENTS >= 2 && OUTSTANDING >= 2)) || die "SCALE=1 splits CLIENTS and OUTSTANDING between two dnsperf clients: both must be at least 2"

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
UNBOUND=$(command -v unbound || echo /usr/sbin/unbound)
if [[ " $SCENARIOS " == *" u "* && ! -x $UNBOUND ]]; then
  need_root_apt unbound unbound
  # Debian's package starts its own resolver service where services start:
  # the harness runs its own Unbound processes, so stop and disable it.
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl disable --now unbound.service unbound-resolvconf.service >/dev/null 2>&1 || true
  elif [[ -s /run/unbound.pid ]] && kill -0 "$(cat /run/unbound.pid)" 2>/dev/null; then
    invoke-rc.d unbound stop >/dev/null 2>&1 || kill "$(cat /run/unbound.pid)" || true
  fi
  [[ -x $UNBOUND ]] || die "unbound is still missing after installing Debian's package"
fi
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
[[ $SCALE == 0 || (${#PIN_SERVER[@]} -gt 0 && $SERVER_CPU != "$LOAD_CPU") ]] ||
  die "SCALE=1 needs taskset, two CPUs and SERVER_CPU != LOAD_CPU (the 2-CPU layout pins one dnsperf client to each)"

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
        $PLUGIN_EXTRA
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
# inclusive (children) time, and the self time of coredns-cip's own
# functions, however small.
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
      echo "## coredns-cip's own functions, self time (down to 0.02%)"
      perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.02 2>/dev/null | perf_clean |
        grep -F 'coredns-cip/' || true
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
  [[ $SCALE == 1 ]] && scale_pairs "$s"
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
      echo "## the server's CPU samples per second of the run, by work (loadtool perfsplit: events = net/http's"
      echo "## connections, validation = the workers, the API client and its transport, dns: submit = a tagged"
      echo "## client's answers queued or found in flight, other = the scheduler and the kernel on no Go stack)"
      perf script -i "$WORK/perf.data" -F time,ip,sym 2>/dev/null | "${LT[@]}" perfsplit || echo "(perfsplit failed)"
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

# --- u: Unbound's response-IP policy, the anchor ------------------------------

# unbound_conf FILE PORT MODULES BACKEND_PORT [RULES]: one Unbound thread that
# forwards the zone to the backend and answers from its cache; RULES, a file
# of IP/32 lines, become `response-ip ... always_nxdomain` rules. No trust
# anchor is configured, so the validator passes the zone as insecure.
unbound_conf() {
  local file=$1 port=$2 modules=$3 backend=$4 rules=${5:-}
  {
    cat <<EOF
# Generated by bench/loadtest.sh (scenario u).
server:
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$file.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    interface: 127.0.0.1
    port: $port
    do-ip6: no
    num-threads: 1
    so-reuseport: no
    num-queries-per-thread: 4096
    msg-cache-size: 64m
    rrset-cache-size: 128m
    cache-max-negative-ttl: 86400
    prefetch: no
    serve-expired: no
    do-not-query-localhost: no
    domain-insecure: "loadtest.example"
    module-config: "$modules"
EOF
    [[ -z $rules ]] || sed 's/.*/    response-ip: & always_nxdomain/' "$rules"
    cat <<EOF
remote-control:
    control-enable: no
forward-zone:
    name: "loadtest.example"
    forward-addr: 127.0.0.1@$backend
EOF
  } >"$file"
  "$(dirname "$UNBOUND")/unbound-checkconf" "$file" >"$WORK/checkconf.out" 2>&1 ||
    { cat "$WORK/checkconf.out" >&2; die "unbound-checkconf refused $file"; }
}

# start_unbound NAME CONF: an Unbound process pinned like the server; its pid
# in U_STARTED.
U_STARTED=
start_unbound() {
  local log=$WORK/unbound.$1.log
  "${PIN_SERVER[@]}" "$UNBOUND" -d -c "$2" >"$log" 2>&1 &
  U_STARTED=$!
  PIDS+=("$U_STARTED")
  for _ in $(seq 100); do
    grep -q 'start of service' "$log" && return 0
    kill -0 "$U_STARTED" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$log" >&2
  die "unbound ($1) did not start"
}

# rcode_share FILE CODE: the share (%) of CODE in a dnsperf output's response
# codes (0 when absent).
rcode_share() {
  awk -v c="$2" '/^  Response codes:/ { for (i = 3; i < NF; i += 3) if ($i == c) { gsub(/[(%),]/, "", $(i + 2)); v = $(i + 2) } }
    END { print v + 0 }' "$1"
}

# u_expected_share ZONE QUERIES: the share (%) of the query file's A queries
# whose answer carries a rule's IP (a suspicious host, directly or through
# CNAMEs): the NXDOMAIN share respip must add.
u_expected_share() {
  awk 'FNR == NR { if ($3 == "A" && $4 ~ /^45\.83\.0\./) bad[$1] = 1; if ($3 == "CNAME") cn[$1] = $4; next }
    { n++; if ($2 != "A") next; h = $1; sub(/\.loadtest\.example\.?$/, "", h)
      for (i = 0; i < 4 && (h in cn); i++) h = cn[h]
      if (h in bad) hit++ }
    END { printf "%.2f\n", n ? 100 * hit / n : 0 }' "$1" "$2"
}

# u_backend_queries URL: the backend's DNS requests so far.
u_backend_queries() {
  curl -fsS "$1" | awk '$1 ~ /^coredns_dns_requests_total/ { s += $2 } END { printf "%.0f\n", s }'
}

# scenario_unbound: u. Unbound with respip (with) against Unbound without
# (without), both warm, both answering from their caches during the runs.
scenario_unbound() {
  local s=u ports zone=$WORK/zone.unbound.db rules=$WORK/respip.rules nsusp pb pm pw po
  local backend_pid pid_with pid_without metrics b0 b1 bq first second pair side port idle
  log "scenario $s: Unbound $("$UNBOUND" -V | sed -n 's/^Version //p'), with and without $U_RULES respip rules"
  mapfile -t ports < <("${LT[@]}" ports 4)
  [[ ${#ports[@]} -eq 4 ]] || die "no free ports for scenario u"
  pw=${ports[0]} po=${ports[1]} pb=${ports[2]} pm=${ports[3]}
  metrics=http://127.0.0.1:$pm/metrics
  # The mixed zone with a day's TTLs (negative ones too), so nothing Unbound
  # caches expires during the runs.
  sed -e 's/^\$TTL 300$/$TTL 86400/' -e '/ IN SOA /s/ 300$/ 86400/' "$WORK/zone.mixed.db" >"$zone"
  awk '$3 == "A" && $4 ~ /^45\.83\.0\./ { print $4 "/32" }' "$zone" | sort -u >"$rules"
  nsusp=$(wc -l <"$rules")
  ((nsusp > 0)) || die "the mixed zone has no suspicious IP for the respip rules"
  ((U_RULES >= nsusp)) || die "U_RULES ($U_RULES) must be at least the $nsusp suspicious IPs"
  # Fillers from 198.18.0.0/15 (benchmarking), which no answer carries.
  awk -v n=$((U_RULES - nsusp)) 'BEGIN { for (i = 0; i < n; i++) printf "198.18.%d.%d/32\n", int(i / 250), i % 250 + 1 }' >>"$rules"
  cat >"$WORK/Corefile.u-backend" <<EOF
# Generated by bench/loadtest.sh: scenario u's backend, the bare file chain.
.:$pb {
    bind 127.0.0.1
    prometheus 127.0.0.1:$pm
    file $zone loadtest.example
}
EOF
  "${PIN_LOAD[@]}" "$BIN" -conf "$WORK/Corefile.u-backend" >"$WORK/server.u-backend.log" 2>&1 &
  backend_pid=$!
  PIDS+=("$backend_pid")
  for _ in $(seq 100); do curl -fsS -o /dev/null "$metrics" 2>/dev/null && break; sleep 0.1; done
  curl -fsS -o /dev/null "$metrics" || { tail -20 "$WORK/server.u-backend.log" >&2; die "scenario u's backend did not start"; }
  unbound_conf "$WORK/unbound.with.conf" "$pw" "respip validator iterator" "$pb" "$rules"
  unbound_conf "$WORK/unbound.without.conf" "$po" "validator iterator" "$pb"
  start_unbound with "$WORK/unbound.with.conf"
  pid_with=$U_STARTED
  start_unbound without "$WORK/unbound.without.conf"
  pid_without=$U_STARTED
  u_warm "$pw" "$po" "$metrics"
  u_spot_check "$pw" "$po" "$zone"
  for port in "$pw" "$po"; do
    "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$WARMUP" \
      -c "$CLIENTS" -q "$OUTSTANDING" -T "$THREADS" >/dev/null 2>&1 || die "warm-up dnsperf failed"
  done
  b0=$(u_backend_queries "$metrics")
  for pair in $(seq "$PAIRS"); do
    quiet_wait
    first=with second=without
    [[ $U_ORDER == abba ]] && ((pair % 2 == 0)) && first=without second=with
    for side in $first $second; do
      if [[ $side == with ]]; then SERVER_PID=$pid_with port=$pw; else SERVER_PID=$pid_without port=$po; fi
      run_dnsperf "$s" "$pair" "$side" "$port"
    done
  done
  SERVER_PID=
  b1=$(u_backend_queries "$metrics")
  bq=$((b1 - b0))
  ((bq == 0)) || log "  warning: $bq queries reached the backend during u's runs: not every answer came from the cache"
  u_check_rcodes "$zone" "$bq"
  # Unbound answers from its cache several times faster than CoreDNS: one
  # dnsperf on one CPU may not saturate it, and then the qps ratio is the
  # load generator's, not Unbound's.
  idle=$(awk -F'\t' '$1 == "u" { if ($11 + $12 < 90) k++ } END { print k + 0 }' "$RUNS")
  ((idle == 0)) || NOTE[$s]+="; in $idle of $((2 * PAIRS)) runs the server's CPU was less than 90% busy (Unbound + other work): dnsperf, not Unbound, set the qps there; read the CPU/query ratio"
  RSS[$s]=$(vm_kib "$pid_with" VmHWM)
  NOTE[$s]+="; peak RSS with respip $((RSS[$s] / 1024)) MiB, without $(($(vm_kib "$pid_without" VmHWM) / 1024)) MiB"
  [[ $SCALE == 1 ]] && NOTE[$s]+="; not in the scaling table (one Unbound thread)"
  stop_pid "$pid_with"
  stop_pid "$pid_without"
  stop_pid "$backend_pid"
  # Unbound's own count, printed as it stops: the recursions are the warm
  # pass's, every other query was answered from the cache.
  for side in with without; do
    NOTE[$s]+="; Unbound $side respip: $(sed -n 's/.*server stats for thread 0: \([0-9]* queries, [0-9]* answers from cache, [0-9]* recursions\).*/\1/p' "$WORK/unbound.$side.log")"
  done
  log "  $s: ${NOTE[$s]}"
}

# u_warm PORT_WITH PORT_WITHOUT METRICS_URL: every distinct query once through
# each Unbound, then a second pass that must not reach the backend.
u_warm() {
  local port b0 b1
  sort -u "$WORK/queries.txt" >"$WORK/warm.u.txt"
  for port in "$1" "$2"; do
    "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/warm.u.txt" -n 1 -c "$CLIENTS" -q 100 >/dev/null 2>&1 ||
      die "scenario u's warm pass failed"
  done
  b0=$(u_backend_queries "$3")
  for port in "$1" "$2"; do
    "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/warm.u.txt" -n 1 -c "$CLIENTS" -q 100 >/dev/null 2>&1 ||
      die "scenario u's warm pass failed"
  done
  b1=$(u_backend_queries "$3")
  log "  cache warm: $(wc -l <"$WORK/warm.u.txt") distinct queries through each Unbound ($b0 backend queries); second pass: $((b1 - b0)) backend queries"
  ((b1 == b0)) || die "scenario u's caches are not warm: the second pass sent $((b1 - b0)) queries to the backend"
}

# u_spot_check PORT_WITH PORT_WITHOUT ZONE: the A of every suspicious host is
# NXDOMAIN with respip and NOERROR without.
u_spot_check() {
  local out
  awk '$3 == "A" && $4 ~ /^45\.83\.0\./ { print $1 ".loadtest.example A" }' "$3" | sort -u >"$WORK/suspicious.u.txt"
  "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/suspicious.u.txt" -n 1 -c 1 >"$WORK/spot.with.txt" 2>&1 || die "u's spot check failed"
  "${PIN_LOAD[@]}" dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/suspicious.u.txt" -n 1 -c 1 >"$WORK/spot.without.txt" 2>&1 || die "u's spot check failed"
  out="the A of $(wc -l <"$WORK/suspicious.u.txt") suspicious hosts: NXDOMAIN $(rcode_share "$WORK/spot.with.txt" NXDOMAIN)% with respip, NOERROR $(rcode_share "$WORK/spot.without.txt" NOERROR)% without"
  log "  respip spot check: $out"
  [[ $(rcode_share "$WORK/spot.with.txt" NXDOMAIN) == 100 && $(rcode_share "$WORK/spot.without.txt" NOERROR) == 100 ]] ||
    die "respip did not fire as configured: $out (dnsperf outputs in $WORK/spot.*.txt)"
  NOTE[u]="spot check: $out"
}

# u_check_rcodes ZONE BACKEND_QUERIES: respip fired during the runs: the median
# NXDOMAIN share with respip exceeds that without by at least half of the
# expected share (about all of it in practice).
u_check_rcodes() {
  local exp pair with=() without=() mw mo delta
  exp=$(u_expected_share "$1" "$WORK/queries.txt")
  for pair in $(seq "$PAIRS"); do
    with+=("$(rcode_share "$WORK/dnsperf.u.$pair.with.txt" NXDOMAIN)")
    without+=("$(rcode_share "$WORK/dnsperf.u.$pair.without.txt" NXDOMAIN)")
  done
  mw=$(printf '%s\n' "${with[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  mo=$(printf '%s\n' "${without[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  delta=$(awk -v a="$mw" -v b="$mo" 'BEGIN { printf "%.2f", a - b }')
  NOTE[u]+="; $U_RULES rules ($(awk '$1 ~ /^45\.83\./' "$WORK/respip.rules" | wc -l) matching answers); NXDOMAIN share of the runs (median) ${mw}% with respip, ${mo}% without: +${delta} points, expected +${exp} (the A queries whose answer carries a rule's IP); backend queries during the runs: $2"
  awk -v d="$delta" -v e="$exp" 'BEGIN { exit !(d >= e / 2 && e > 0) }' ||
    die "respip did not fire during the runs: NXDOMAIN +${delta} points with respip, expected +${exp}"
}

# --- scaling (SCALE=1) ----------------------------------------------------------

# scale_pairs SCENARIO: on the running server, after its 1-CPU pairs, PAIRS
# pairs in the 2-CPU layout, recorded as scenario "SCENARIO@2cpu". The
# server's threads are re-pinned to both CPUs: GOMAXPROCS follows the CPU
# mask (Go 1.25 on, as long as nothing set it: CoreDNS's automaxprocs leaves
# it alone without a cgroup CPU quota), which is checked on the server's own
# gauge; a GOMAXPROCS fixed at start would fail here rather than measure
# one P on two CPUs.
scale_pairs() {
  local s=$1 pair procs=
  taskset -a -p -c "$SERVER_CPU,$LOAD_CPU" "$SERVER_PID" >/dev/null || die "re-pinning the server to both CPUs failed"
  for _ in $(seq 50); do
    procs=$(metric go_sched_gomaxprocs_threads)
    [[ $procs == 2 ]] && break
    sleep 0.1
  done
  [[ $procs == 2 ]] || die "GOMAXPROCS is $procs, not 2, 5 s after re-pinning the server to CPUs $SERVER_CPU,$LOAD_CPU (set by GOMAXPROCS or a CPU quota?)"
  log "  $s: 2-CPU layout: server on CPUs $SERVER_CPU,$LOAD_CPU (GOMAXPROCS $procs), one dnsperf client on each"
  warmup
  for pair in $(seq "$PAIRS"); do
    quiet_wait
    run_dnsperf2 "$s@2cpu" "$pair" with "$P_WITH"
    run_dnsperf2 "$s@2cpu" "$pair" without "$P_WITHOUT"
  done
}

# run_dnsperf2 SCENARIO PAIR SIDE PORT: one measured run of the 2-CPU layout,
# recorded in $RUNS like run_dnsperf's. Two dnsperf clients, one pinned to
# each CPU, each with half of CLIENTS and OUTSTANDING, send at once; the
# figures are theirs together. The CPU columns are in % of one CPU (up to
# 200): the server's, the rest of both CPUs' busy time (the clients
# included), and the clients' own (from the shell's children times).
run_dnsperf2() {
  local s=$1 pair=$2 side=$3 port=$4 i pids=() outs=() cpu cn qn
  local t0 b0 w0 k0 t1 b1 w1 k1 sum
  local qlimit=()
  [[ -n $QPS ]] && qlimit=(-Q "$(((QPS + 1) / 2))")
  times >"$WORK/times.0"
  t0=$(proc_ticks "$SERVER_PID") b0=$(($(cpu_busy "$SERVER_CPU") + $(cpu_busy "$LOAD_CPU"))) w0=$(date +%s.%N)
  for i in 0 1; do
    cpu=$SERVER_CPU cn=$(((CLIENTS + 1) / 2)) qn=$(((OUTSTANDING + 1) / 2))
    ((i == 1)) && cpu=$LOAD_CPU cn=$((CLIENTS / 2)) qn=$((OUTSTANDING / 2))
    outs+=("$WORK/dnsperf2.$i.out")
    taskset -c "$cpu" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l "$DURATION" \
      -c "$cn" -q "$qn" -T 1 "${qlimit[@]}" -S 1 -v >"${outs[$i]}" 2>&1 &
    pids+=($!)
  done
  for i in 0 1; do
    wait "${pids[$i]}" || { tail -5 "${outs[$i]}" >&2; die "dnsperf failed (2-CPU layout)"; }
  done
  t1=$(proc_ticks "$SERVER_PID") b1=$(($(cpu_busy "$SERVER_CPU") + $(cpu_busy "$LOAD_CPU"))) w1=$(date +%s.%N)
  times >"$WORK/times.1"
  k0=$(awk 'NR == 2 { print $1, $2 }' "$WORK/times.0") k1=$(awk 'NR == 2 { print $1, $2 }' "$WORK/times.1")
  sum=$("$WORK/loadtool" summary "${outs[@]}")
  for i in 0 1; do grep -v '^> ' "${outs[$i]}" >"$WORK/dnsperf.$s.$pair.$side.$i.txt" || true; done
  rm -f "${outs[@]}"
  kv() { tr ' ' '\n' <<<"$sum" | sed -n "s/^$1=//p"; }
  awk -v s="$s" -v pair="$pair" -v side="$side" -v qps="$(kv qps)" -v avg="$(kv avg_ms)" -v p50="$(kv p50_ms)" \
    -v p99="$(kv p99_ms)" -v p999="$(kv p999_ms)" -v min1s="$(kv min1s_qps)" -v lost="$(kv lost)" -v completed="$(kv completed)" \
    -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" -v k0="$k0" -v k1="$k1" -v w0="$w0" -v w1="$w1" -v hz="$HZ" '
    function secs(t,  a, m) { split(t, a, " "); return mins(a[1]) + mins(a[2]) }
    function mins(x,  p) { split(x, p, "m"); sub(/s$/, "", p[2]); return p[1] * 60 + p[2] }
    BEGIN {
      dt = t1 - t0; wall = w1 - w0
      srv = 100 * dt / (wall * hz); other = 100 * (b1 - b0 - dt) / (wall * hz); if (other < 0) other = 0
      cpuus = completed > 0 ? dt / hz * 1e6 / completed : 0
      load = 100 * (secs(k1) - secs(k0)) / wall
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.2f\t%.0f\n", s, pair, side, qps, avg, p50, p99, p999, min1s, lost, srv, other, cpuus, load
    }' >>"$RUNS"
  log "  $s pair $pair $(printf '%-7s' "$side") $(tail -1 "$RUNS" | awk -F'\t' '{ printf "qps %s  avg %s ms  p99 %s ms  lost %s  server CPU %s%% of one (+%s%% other, clients included)  %s us/query  clients CPU %s%%", $4, $5, $7, $10, $11, $12, $13, $14 }')"
}

# scale_table: the scaling table, for the scenarios with 2-CPU runs (none:
# nothing).
scale_table() {
  local s w1 w2 o1 o2
  grep -q $'^[^\t]*@2cpu\t' "$RUNS" || return 0
  echo "| scenario | plugin block 1 CPU qps | 2 CPU qps | **plugin 2cpu/1cpu** | bare chain 1 CPU qps | 2 CPU qps | **bare 2cpu/1cpu** | with/without at 2 CPU (per-pair median, range) | server CPU % at 2 CPU, with / without (of one CPU) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in $SCENARIOS; do
    awk -F'\t' -v k="$s@2cpu" '$1 == k { f = 1 } END { exit !f }' "$RUNS" || continue
    w1=$(med "$s" with 4) w2=$(med "$s@2cpu" with 4) o1=$(med "$s" without 4) o2=$(med "$s@2cpu" without 4)
    printf '| %s | %.0f | %.0f | **%s** | %.0f | %.0f | **%s** | %s | %.0f / %.0f |\n' "$(label "$s")" "$w1" "$w2" "$(ratio "$w2" "$w1")" \
      "$o1" "$o2" "$(ratio "$o2" "$o1")" "$(pair_ratios "$s@2cpu" 4)" "$(med "$s@2cpu" with 11)" "$(med "$s@2cpu" without 11)"
  done
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
  u) scenario_unbound ;;
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
  e) echo "e. enforce all, untagged, 10% sinkholed (respip)" ;; u) echo "u. Unbound $("$UNBOUND" -V | sed -n 's/^Version //p'), $U_RULES respip rules vs none (the anchor)" ;; f) echo "f. tagged, tagged-scope findings, 10% sinkholed" ;;
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

SCALETABLE=$WORK/scale.md
: >"$SCALETABLE"
[[ $SCALE == 1 ]] && scale_table >"$SCALETABLE"

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
  echo "- load: dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p') -c $CLIENTS -q $OUTSTANDING -T $THREADS ${QPS:+-Q $QPS }-l $DURATION; $PAIRS pairs per scenario, plugin block first$([[ " $SCENARIOS " == *" u "* ]] && echo " (u: $U_ORDER order)"); $PINNING; machine ${BUSY_BEFORE}% busy before the run$( ((QUIET > 0)) && echo "; QUIET=$QUIET")"
  [[ -n $PLUGIN_EXTRA ]] && echo "- cipvalidate blocks also carry: \`$PLUGIN_EXTRA\`"
  echo "- data: $(cat "$WORK/gen.txt")"
  echo "- qps ratio and p99 ratio: median with / median without the plugin (the issue's figures); a latency ratio > 1 is slower. Per-pair ratios: each pair's with / without, then their median and range (less sensitive to drift between pairs). CPU/query: the server's CPU time per query (1 / qps when the server's CPU is saturated)"
  echo
  cat "$TABLE"
  echo
  cat "$EXTRA"
  echo
  if [[ -s $SCALETABLE ]]; then
    echo "## Scaling: 2 CPUs against 1 (SCALE=1)"
    echo
    echo "Each scenario's 1-CPU pairs, then $PAIRS pairs on the same server re-pinned to CPUs $SERVER_CPU,$LOAD_CPU (GOMAXPROCS 2) with two dnsperf clients, one pinned to each CPU, each with half the clients and outstanding queries (rows SCENARIO@2cpu below). Ratios of medians; the 2-CPU runs share both CPUs with the load generator, so the ceiling is below 2."
    echo
    cat "$SCALETABLE"
    echo
  fi
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
[[ -s $SCALETABLE ]] && { echo; echo "Scaling (2-CPU qps / 1-CPU qps, same server, same run):"; cat "$SCALETABLE"; }
echo
echo "Per-run figures and the setup: $RESULTS"
