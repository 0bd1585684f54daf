#!/usr/bin/env bash
# bench/trace.sh: where a replicated call's time goes, measured on a running cluster.
#
# Starts three local kvnode processes (raft log in raft-boltdb unless BENCH_LOG_STORE=wal) with
# Go's profiler on their metrics ports, and for each scenario runs the load generator while it
# takes a 3-second execution trace of the leader and of a follower. From the traces it prints,
# per scenario: req/s and latency, raft entries committed per second (and writes per entry), how
# long the leader's and the follower's raft log writes took per entry (StoreLogs, fsync included)
# and how long goroutines that were ready to run waited for a CPU, per request. A write at one
# client waits for the leader's log write and then a follower's, in series; what is left of its
# latency is network hops and wake-ups. Prints a markdown table on stdout.
#
# Usage: bench/trace.sh [KVNODE_BINARY]     (about 2 minutes)
# Env:   BENCH_DURATION=8s      length of one measured run (the trace is its middle 3 seconds)
#        BENCH_LOG_STORE=boltdb cluster.raft.log_store
#        BENCH_PORT=17500       first loopback port used
# Needs: go (for `go tool trace` and `go tool pprof`), jq, curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-8s}
STORE=${BENCH_LOG_STORE:-boltdb}
PORT=${BENCH_PORT:-17500}
for tool in jq curl go; do
  command -v $tool >/dev/null || { echo "trace.sh: $tool is required" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/kvnode-trace-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/cpu.sh
. "$ROOT/bench/cpu.sh"

KV=${1:-}
if [[ -z $KV ]]; then
  KV=$tmp/kvnode
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$KV" ./cmd/kvnode)
fi

rpc() { echo "tcp://127.0.0.1:$((PORT + $1))"; }
metrics() { echo "http://127.0.0.1:$((PORT + 20 + $1))"; }

cat >"$tmp/cluster.yaml" <<YAML
version: "3"
rpc: { listen: "tcp://127.0.0.1:\${RPC_PORT}" }
logs: { level: warn }
metrics: { address: "127.0.0.1:\${METRICS_PORT}", pprof: true }
kv:
  default: { driver: memory }
  strict:  { driver: memory, consistency: linearizable }
  files:   { driver: boltdb, config: { file: files.db } }
cluster:
  node_id: \${NODE}
  data_dir: $tmp/\${NODE}
  raft: { bind: "127.0.0.1:\${RAFT_PORT}", log_store: $STORE }
  peers:
    - { id: n1, address: "127.0.0.1:$((PORT + 11))" }
    - { id: n2, address: "127.0.0.1:$((PORT + 12))" }
    - { id: n3, address: "127.0.0.1:$((PORT + 13))" }
YAML
for i in 1 2 3; do
  NODE=n$i RAFT_PORT=$((PORT + 10 + i)) RPC_PORT=$((PORT + i)) METRICS_PORT=$((PORT + 20 + i)) \
    "$KV" serve -c "$tmp/cluster.yaml" 2>"$tmp/n$i.log" &
  PIDS+=($!)
done

# Find the leader (bounded: 20 s).
LEADER="" FOLLOWER=""
for ((t = 0; t < 100; t++)); do
  for i in 1 2 3; do
    if [[ $("$KV" status --rpc "$(rpc $i)" --json 2>/dev/null | jq -r .role 2>/dev/null) == leader ]]; then
      LEADER=$i
      FOLLOWER=$((i % 3 + 1))
    fi
  done
  [[ -z $LEADER ]] || break
  sleep 0.2
done
[[ -n $LEADER ]] || { echo "trace.sh: no leader after 20 s" >&2; exit 1; }
log "log_store $STORE: leader n$LEADER, follower n$FOLLOWER"

commit_index() { curl -sf "$(metrics "$1")/metrics" | awk '/^kvnode_raft_commit_index /{print $2}'; }

# ms converts pprof's durations (123us, 4.5ms, 1.2s) to milliseconds.
ms() { awk '{ v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  f = (u == "s") ? 1000 : (u == "us" ? 0.001 : (u == "ns" ? 0.000001 : 1)); printf "%.1f", v * f }' <<<"$1"; }
# storelogs TRACE: milliseconds spent in raft log writes (syscalls under StoreLogs) in the trace.
storelogs() {
  go tool trace -pprof=syscall "$1" >"$1.sys" 2>/dev/null || true
  local v
  v=$(go tool pprof -top -cum "$1.sys" 2>/dev/null | awk '/log\.\(\*sizedCache\)\.StoreLogs$/ {print $4; exit}')
  ms "${v:-0ms}"
}
# schedwait TRACE: milliseconds goroutines spent runnable but not running in the trace.
schedwait() {
  go tool trace -pprof=sched "$1" >"$1.sched" 2>/dev/null || true
  local v
  v=$(go tool pprof -top "$1.sched" 2>/dev/null | sed -n 's/.* of \([0-9.]*[a-z]*\) total.*/\1/p' | head -1)
  ms "${v:-0ms}"
}

ROWS=()
# scenario OP STORAGE C VIA(leader|follower)
scenario() {
  local op=$1 storage=$2 c=$3 via=$4 target out c0 c1 lt ft n reqs
  target=$LEADER
  [[ $via == follower ]] && target=$FOLLOWER
  log "$op $storage c=$c via the $via"
  "$KV" bench --rpc "$(rpc "$target")" --storage "$storage" --op "$op" -c "$c" -d "$DURATION" \
    --warmup 1s --keys 1 --size 100 --keyspace 1000 --json -q >"$tmp/bench.json" &
  local bench=$! cpu0
  cpu0=$(cpu_sample)
  sleep 3 # the warm-up, and a second of the measured run
  c0=$(commit_index "$LEADER")
  curl -sf -o "$tmp/leader.trace" "$(metrics "$LEADER")/debug/pprof/trace?seconds=3" &
  curl -sf -o "$tmp/follower.trace" "$(metrics "$FOLLOWER")/debug/pprof/trace?seconds=3"
  wait $!
  c1=$(commit_index "$LEADER")
  wait "$bench"
  local cpu
  cpu=$(cpu_since "$cpu0")
  out=$(jq -r '"\(.total.requests_per_s) \(.total.latency_us.p50 / 1000 * 100 | round / 100) \(.total.latency_us.p99 / 1000 * 100 | round / 100)"' "$tmp/bench.json")
  read -r reqs p50 p99 <<<"$out"
  n=$((c1 - c0))
  lt=$(storelogs "$tmp/leader.trace")
  ft=$(storelogs "$tmp/follower.trace")
  local lsched fsched
  lsched=$(schedwait "$tmp/leader.trace")
  fsched=$(schedwait "$tmp/follower.trace")
  ROWS+=("$(awk -v op="$op $storage c=$c via $via" -v r="$reqs" -v p50="$p50" -v p99="$p99" -v n="$n" \
    -v lt="$lt" -v ft="$ft" -v ls="$lsched" -v fs="$fsched" -v cpu="$cpu" 'BEGIN {
      e = n / 3; per = (n > 0) ? 1 / n : 0; q = r * 3
      printf "| %s | %s | %s / %s | %.0f | %.1f | %.2f | %.2f | %.2f | %s |",
        op, r, p50, p99, e, (e > 0 ? r / e : 0), lt * per, ft * per, (q > 0 ? (ls + fs) / q : 0), cpu }')")
}

scenario set default 1 leader
scenario set default 1 follower
scenario set default 64 leader
scenario set default 64 follower
scenario set files 64 leader
scenario mget strict 1 follower
scenario mget strict 64 follower

cat <<MD
### Where the time goes, from execution traces ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, log_store $STORE, kvnode ${BENCH_REV:-$(cd "$ROOT" && git describe --always --dirty 2>/dev/null)})

\`bench/trace.sh\`: three kvnode processes and the load generator on this machine, $DURATION per run
over 1,000 keys, a 3-second execution trace of the leader and of a follower in its middle (tracing
slows the nodes: compare req/s with bench/cluster.sh's, not across the two). Entries: raft entries
committed per second; reads commit some too, a tick when the replicated clock lags by 50 ms and a
barrier that brings a follower the commit index. Log write: milliseconds per entry a node spent in
the syscalls of its raft log's StoreLogs (writes and fsyncs). Run queue: milliseconds per request
that the leader's and the follower's goroutines spent ready to run but waiting for a CPU. CPU: the
machine's CPU time during the run (bench/cpu.sh).

| scenario | req/s | p50 / p99 ms | entries/s | requests per entry | leader log write ms/entry | follower log write ms/entry | run queue ms/request | CPU during the run |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")
MD
