#!/usr/bin/env bash
# bench/run.sh: kvnode against RoadRunner v2025.1.15's KV plugin, side by side.
#
# Both servers are built from source in this run, started one after the other on the same
# machine with the same RoadRunner config file (bench/rrserver/rr-*.yaml, which kvnode reads as
# is), and driven by the same load generator (`kvnode bench`). Throughput scenarios alternate
# RoadRunner/kvnode for BENCH_REPS repetitions and report the median. The result is written to
# docs/benchmarks.md.
#
# Usage: bench/run.sh            (about 6-8 minutes)
# Env:   BENCH_DURATION=10s      length of one measured run
#        BENCH_REPS=3            repetitions per scenario and server (median is reported)
#        BENCH_KEYS=1000000      keys loaded for the footprint row
#        BENCH_PORT=17100        first loopback port; each server start takes the next one
#        BENCH_OUT=docs/benchmarks.md
#        BENCH_REF=              git revision of kvnode to build (default: the work tree as it is)
#        BENCH_CLUSTER=1         also run bench/cluster.sh (3-node cluster vs single node; 0 skips it)
#        BENCH_RRPLUGIN=1        also measure the RoadRunner plugin's hop (rrplugin TestHopCost; 0 skips it)
# Needs: go, jq; redis-server is optional (reference row of the footprint table).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10s}
REPS=${BENCH_REPS:-3}
NKEYS=${BENCH_KEYS:-1000000}
PORT=${BENCH_PORT:-17100}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
REF=${BENCH_REF:-}
VALUE_SIZE=100     # bytes per value, every scenario
KEYSPACE=100000    # distinct keys in the throughput scenarios
SETTLE_SECONDS=5   # pause before reading RSS so both Go runtimes have scavenged alike

LOADAVG=$(cut -d" " -f1-3 /proc/loadavg)
# What follows this line in $OUT is written by hand (analyses that take longer runs than this
# script's: the write path's breakdown, failover, memory); the script keeps it.
MARKER='<!-- Written by hand from here on: bench/run.sh keeps what follows. -->'
command -v jq >/dev/null || { echo "run.sh: jq is required (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/kvnode-bench.XXXXXX)
kept=$tmp/kept.md
if [[ -f $OUT ]] && grep -qF "$MARKER" "$OUT"; then
  awk -v m="$MARKER" 'f || $0 == m { f = 1; print }' "$OUT" >"$kept"
else
  : >"$kept"
fi
PIDS=()
cleanup() {
  local rc=$? pid f
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    # A failed run keeps its server logs: a reset connection is only explained there.
    for f in "$tmp"/*.log; do
      [[ -s $f ]] || continue
      echo "--- $f (last 20 lines)" >&2
      tail -n 20 "$f" >&2
    done
    echo "run.sh: failed; logs kept in $tmp" >&2
    return
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# build

# BENCH_REF builds kvnode from a committed revision (git archive) instead of the work tree, so
# the figures belong to a commit even while the tree is being edited.
if [[ -n $REF ]]; then
  KVNODE_REV=$(cd "$ROOT" && git rev-parse --short "$REF^{commit}")
  log "building kvnode at $REF ($KVNODE_REV), rrserver and the smoke probe into $tmp"
  mkdir "$tmp/src"
  (cd "$ROOT" && git archive "$KVNODE_REV") | tar -x -C "$tmp/src"
  (cd "$tmp/src" && CGO_ENABLED=0 go build -o "$tmp/kvnode" ./cmd/kvnode)
else
  KVNODE_REV="$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown) (work tree)"
  log "building kvnode from the work tree, rrserver and the smoke probe into $tmp"
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$tmp/kvnode" ./cmd/kvnode)
fi
(cd "$ROOT/bench/rrserver" && CGO_ENABLED=0 go build -o "$tmp/rrserver" . \
  && CGO_ENABLED=0 go build -o "$tmp/smoke" ./smoke)

# ---------------------------------------------------------------------------------------------
# servers

# next_port advances PORT to a loopback port nobody listens on, so a server that failed to stop
# cannot answer for the next one. (It sets PORT rather than printing it: in a $(...) subshell the
# advance would be lost.)
next_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    PORT=$((PORT + 1))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      return 0
    fi
  done
  echo "run.sh: no free port found" >&2
  return 1
}

# start_server KIND CONFIG PORT: starts rr or kvnode, waits until the smoke probe passes
# (kv.Set + kv.MGet), and sets SERVER_PID.
start_server() {
  local kind=$1 cfg=$2 port=$3 i
  local logf="$tmp/$kind-$port.log"
  local bolt="$tmp/$kind-$port.db"
  case $kind in
    rr) RR_PORT=$port RR_BOLT_FILE=$bolt "$tmp/rrserver" -c "$cfg" >"$logf" 2>&1 & ;;
    kvnode) RR_PORT=$port RR_BOLT_FILE=$bolt "$tmp/kvnode" serve -c "$cfg" >"$logf" 2>&1 & ;;
    *) echo "run.sh: unknown server $kind" >&2; return 1 ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "run.sh: $kind exited during start-up:" >&2
      cat "$logf" >&2
      return 1
    fi
    if "$tmp/smoke" -rpc "tcp://127.0.0.1:$port" -timeout 1s >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "run.sh: $kind did not answer on 127.0.0.1:$port within 10 s:" >&2
  cat "$logf" >&2
  return 1
}

# stop_server PID: SIGTERM, then SIGKILL after 10 s.
stop_server() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# rss_kb PID prints the resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# cpu_ticks PID prints the user+system CPU time the process has used, in clock ticks.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# ---------------------------------------------------------------------------------------------
# load generator

# bench PORT ARGS...: one `kvnode bench` run against 127.0.0.1:PORT, its JSON on stdout.
bench() {
  local port=$1
  shift
  "$tmp/kvnode" bench --rpc "tcp://127.0.0.1:$port" --json "$@"
}

# The JSON fields of `kvnode bench --json` that this script reads.
rps_of() { jq -r '.total.requests_per_s' "$1"; }
p99_of() { jq -r '.total.latency_us.p99' "$1"; }   # microseconds

# median prints the middle of its numeric arguments (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ---------------------------------------------------------------------------------------------
# throughput scenarios

declare -A RPS P99 RATIO CPU

# scenario NAME CONFIG -- BENCH_ARGS...: REPS alternating runs of RoadRunner and kvnode; each run
# gets a fresh server (and a fresh boltdb file) so no run inherits another's data.
scenario() {
  local name=$1 cfg=$2
  shift 3
  local rep kind port out t0 t1 cpu
  local -A rps=() p99=() cpus=() this=()
  local ratios=""
  for ((rep = 1; rep <= REPS; rep++)); do
    for kind in rr kvnode; do
      next_port
      port=$PORT
      start_server "$kind" "$cfg" "$port"
      out="$tmp/$name-$kind-$rep.json"
      log "$name: $kind, repetition $rep/$REPS"
      t0=$(cpu_ticks "$SERVER_PID")
      bench "$port" "$@" >"$out"
      t1=$(cpu_ticks "$SERVER_PID")
      stop_server "$SERVER_PID"
      # Server CPU per request: the ticks cover the warm-up (1 s) and any preload too, so the
      # request count is scaled up to the whole run at the measured rate; an approximation.
      cpu=$(jq -r --argjson ticks "$((t1 - t0))" --argjson hz "$CLK_TCK" \
        '($ticks / $hz * 1e6) / (.total.requests_per_s * (.elapsed_s + 1)) | . * 10 | round / 10' "$out")
      this[$kind]=$(rps_of "$out")
      rps[$kind]+="${this[$kind]} "
      p99[$kind]+="$(p99_of "$out") "
      cpus[$kind]+="$cpu "
      log "  ${this[$kind]} req/s, p99 $(p99_of "$out") us, server CPU $cpu us/req"
    done
    # The ratio is taken per back-to-back pair, so load that drifts during the run cancels out.
    ratios+="$(awk -v k="${this[kvnode]}" -v r="${this[rr]}" 'BEGIN { printf "%.4f", (r > 0 ? k / r : 0) }') "
  done
  # shellcheck disable=SC2086 # space-separated numbers
  RATIO[$name]=$(median $ratios)
  for kind in rr kvnode; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    RPS[$name,$kind]=$(median ${rps[$kind]})
    # shellcheck disable=SC2086
    P99[$name,$kind]=$(median ${p99[$kind]})
    # shellcheck disable=SC2086
    CPU[$name,$kind]=$(median ${cpus[$kind]})
  done
}

MEM_CFG=$ROOT/bench/rrserver/rr-memory.yaml
BOLT_CFG=$ROOT/bench/rrserver/rr-boltdb.yaml
# Every request carries one key out of KEYSPACE, picked at random; MGet preloads all of them
# (100 per kv.Set) so every read hits. One second of warm-up precedes each measured run.
COMMON=(-d "$DURATION" --warmup 1s --keys 1 --size "$VALUE_SIZE" --keyspace "$KEYSPACE" -q)

scenario mem-set "$MEM_CFG" -- --op set -c 16 "${COMMON[@]}"
scenario mem-mget "$MEM_CFG" -- --op mget -c 16 "${COMMON[@]}"
scenario bolt-set "$BOLT_CFG" -- --op set -c 64 "${COMMON[@]}"

# ---------------------------------------------------------------------------------------------
# footprint

declare -A BPK

# footprint KIND: sets FP to the bytes of RSS per key after loading NKEYS keys of VALUE_SIZE bytes.
# (A global rather than output, so the server is started by this shell and not a subshell that
# the EXIT trap does not know about.)
footprint() {
  local kind=$1 port idle full
  next_port
  port=$PORT
  start_server "$kind" "$MEM_CFG" "$port"
  sleep "$SETTLE_SECONDS"
  idle=$(rss_kb "$SERVER_PID")
  # --preload writes every key of the keyspace once, 100 per kv.Set; -n 1 then ends the run.
  bench "$port" --op set --preload --keyspace "$NKEYS" --size "$VALUE_SIZE" -c 16 -n 1 --warmup 0 -q \
    >"$tmp/footprint-$kind.json"
  [[ $(jq -r '.preloaded_keys' "$tmp/footprint-$kind.json") == "$NKEYS" ]] ||
    { echo "run.sh: $kind footprint preload incomplete" >&2; return 1; }
  sleep "$SETTLE_SECONDS"
  full=$(rss_kb "$SERVER_PID")
  stop_server "$SERVER_PID"
  log "footprint: $kind RSS idle $idle KiB, with $NKEYS keys $full KiB"
  FP=$(awk -v a="$full" -v b="$idle" -v n="$NKEYS" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
}

# RSS after loading depends on where the last GC fell, so the footprint is repeated like the
# throughput scenarios and the median kept.
declare -A fps=()
for ((rep = 1; rep <= REPS; rep++)); do
  for kind in rr kvnode; do
    footprint "$kind"
    fps[$kind]+="$FP "
  done
done
for kind in rr kvnode; do
  # shellcheck disable=SC2086 # space-separated numbers
  BPK[$kind]=$(median ${fps[$kind]})
  log "footprint: $kind runs ${fps[$kind]}-> median ${BPK[$kind]} B/key"
done

# redis-server holding the same keys, for reference: DEBUG POPULATE writes NKEYS keys of
# VALUE_SIZE bytes without any client overhead.
REDIS_VERSION=""
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  next_port
  port=$PORT
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --enable-debug-command local --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  rpid=$!
  PIDS+=("$rpid")
  for ((i = 0; i < 100; i++)); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  REDIS_VERSION=$(redis-server --version | awk '{ print $3 }' | sed 's/^v=//')
  idle=$(rss_kb "$rpid")
  redis-cli -p "$port" debug populate "$NKEYS" key "$VALUE_SIZE" >/dev/null
  got=$(redis-cli -p "$port" dbsize)
  [[ $got == "$NKEYS" ]] || { echo "run.sh: redis holds $got keys, want $NKEYS" >&2; exit 1; }
  full=$(rss_kb "$rpid")
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  stop_server "$rpid"
  BPK[redis]=$(awk -v a="$full" -v b="$idle" -v n="$NKEYS" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')
  log "footprint: redis-server ${BPK[redis]} B/key"
fi

# ---------------------------------------------------------------------------------------------
# report

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
int() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }

# verdict_rps NAME MIN_RATIO CHECK_P99: "met" when kvnode/RR >= MIN_RATIO (and p99 no worse).
verdict_rps() {
  local name=$1 min=$2 check_p99=$3
  awk -v q="${RATIO[$name]}" -v m="$min" \
    -v kp="${P99[$name,kvnode]}" -v rp="${P99[$name,rr]}" -v c="$check_p99" \
    'BEGIN { print (q >= m && (c == 0 || kp <= rp)) ? "met" : "NOT met" }'
}

row() {
  local name=$1 label=$2 target=$3 min=$4 check_p99=$5
  printf '| %s | %s | %s | %s× | %s | %s | %s µs | %s µs | %s | %s |\n' "$label" \
    "$(int "${RPS[$name,rr]}")" "$(int "${RPS[$name,kvnode]}")" \
    "$(awk -v q="${RATIO[$name]}" 'BEGIN { printf "%.2f", q }')" \
    "$(ms "${P99[$name,rr]}")" "$(ms "${P99[$name,kvnode]}")" \
    "${CPU[$name,rr]}" "${CPU[$name,kvnode]}" \
    "$target" "$(verdict_rps "$name" "$min" "$check_p99")"
}

fp_ratio=$(ratio "${BPK[kvnode]}" "${BPK[rr]}")
fp_verdict=$(awk -v r="$fp_ratio" 'BEGIN { print (r != "n/a" && r <= 0.5) ? "met" : "NOT met" }')

{
  echo "# Benchmarks: kvnode against RoadRunner's KV plugin"
  echo
  echo "Generated by \`bench/run.sh\`; do not edit by hand, run it again."
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
    "$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)," \
    "load average at start ${LOADAVG:-n/a}, at end $(cut -d" " -f1-3 /proc/loadavg)"
  echo "- go: $(go version | awk '{ print $3, $4 }')"
  echo "- kvnode: $KVNODE_REV"
  echo "- RoadRunner: v2025.1.15 plugins (kv v5.2.9, memory v5.2.9, boltdb v5.1.9, rpc v5.1.9)," \
    "built from \`bench/rrserver\`"
  echo "- command: \`BENCH_DURATION=$DURATION BENCH_REPS=$REPS BENCH_KEYS=$NKEYS${REF:+ BENCH_REF=$REF} bench/run.sh\`"
  echo
  echo "Both servers read the same config file (\`bench/rrserver/rr-memory.yaml\` or \`rr-boltdb.yaml\`)"
  echo "and are loaded by the same client, \`kvnode bench\`, over goridge on 127.0.0.1, one server at"
  echo "a time, alternating RoadRunner/kvnode, $REPS repetitions of $DURATION each; figures are medians,"
  echo "and kvnode/RR is the median of the ratios of back-to-back pairs."
  echo "Requests carry one key with a $VALUE_SIZE-byte value; \`c\` is the number of concurrent callers."
  echo "The load generator runs on the same $(nproc) CPUs as the server, so absolute figures are low;"
  echo "the ratios are what the targets are about. CPU/req is the server process's user+system CPU"
  echo "time over the run divided by the requests it served (approximate: it includes the 1 s warm-up"
  echo "and, for MGet, the preload of the keyspace); it does not depend on how fast the client is."
  if awk -v l="${LOADAVG%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
    echo
    echo "**The machine was busy when this ran** (1-minute load average ${LOADAVG%% *} on $(nproc) CPUs):"
    echo "other work shared the CPUs, so single runs varied widely; the medians are less reliable than usual."
  fi
  echo
  echo "| scenario | RoadRunner req/s | kvnode req/s | kvnode/RR | RR p99 | kvnode p99 | RR CPU/req | kvnode CPU/req | target | |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
  row mem-set "memory, Set 1 key, c=16" "≥ 1.3×, p99 no worse" 1.3 1
  row mem-mget "memory, MGet 1 key, c=16" "≥ 1.3×, p99 no worse" 1.3 1
  row bolt-set "boltdb, Set 1 key, c=64" "≥ 5×" 5 0
  echo
  echo "| footprint, $NKEYS keys × $VALUE_SIZE B (memory driver) | RoadRunner | kvnode | kvnode/RR | target | |"
  echo "|---|---:|---:|---:|---|---|"
  echo "| RSS growth per key | ${BPK[rr]} B | ${BPK[kvnode]} B | ${fp_ratio}× | ≤ 0.5× | $fp_verdict |"
  echo
  echo "RSS is VmRSS from /proc after loading, minus VmRSS of the same process idle, divided by the"
  echo "number of keys; both are read ${SETTLE_SECONDS} s after the last write, median of $REPS runs per server."
  if [[ -n ${BPK[redis]:-} ]]; then
    echo "For reference, redis-server $REDIS_VERSION holding the same keys (DEBUG POPULATE) grows by"
    echo "${BPK[redis]} B/key (kvnode/redis = $(ratio "${BPK[kvnode]}" "${BPK[redis]}")×)."
  fi
} >"$OUT"

if [[ ${BENCH_CLUSTER:-1} == 1 ]]; then
  log "three-node cluster against one node (bench/cluster.sh)"
  { echo; echo "## Replication"; echo; BENCH_PORT=$((PORT + 200)) BENCH_REV="$KVNODE_REV" "$ROOT/bench/cluster.sh" "$tmp/kvnode"; } >>"$OUT"
fi

if [[ ${BENCH_RRPLUGIN:-1} == 1 ]]; then
  log "RoadRunner plugin: the added hop (rrplugin TestHopCost, about 4 minutes)"
  (cd "$ROOT/rrplugin" && RRPLUGIN_BENCH=1 RRPLUGIN_BENCH_OUT="$tmp/hop.md" \
    go test -count=1 -run TestHopCost -timeout 30m . >"$tmp/hop.log" 2>&1) ||
    { tail -n 40 "$tmp/hop.log" >&2; exit 1; }
  { echo; cat "$tmp/hop.md"; } >>"$OUT"
fi

if [[ -s $kept ]]; then
  { echo; cat "$kept"; } >>"$OUT"
fi
log "wrote $OUT"
cat "$OUT"
