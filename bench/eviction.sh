#!/usr/bin/env bash
# bench/eviction.sh: what bounding a memory storage costs, on one node and on a 3-node cluster.
#
# 1. Set throughput with eviction active against the same run without a limit: kvnode bench
#    writes 1-key Sets of 100 bytes over a keyspace far larger than max_memory holds, so nearly
#    every write needs a victim (lru), for BENCH_DURATION, alternating limit/no limit BENCH_REPS
#    times, on a single node and through the leader of a local three-node cluster.
# 2. With BENCH_FLOOD (a duration, e.g. 10m): a flood of writes through the leader of a fresh
#    cluster whose only storage is the bounded one (so kvnode sets the Go soft memory limit
#    from max_memory), sampling every node's RSS every BENCH_SAMPLE, to show it flat.
# Prints markdown on stdout.
#
# Usage: bench/eviction.sh [KVNODE_BINARY]
# Env:   BENCH_DURATION=30s  BENCH_REPS=3  BENCH_MAX_MEMORY=64MiB  BENCH_KEYSPACE=5000000
#        BENCH_FLOOD=  BENCH_SAMPLE=30s  BENCH_PORT=18500  BENCH_C=16
#        BENCH_ONLY_FLOOD=1 skips the throughput runs; BENCH_KEEP_LOGS=1 prints the nodes' logs' ends
# Needs: go (unless a binary is given), jq.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-30s}
REPS=${BENCH_REPS:-3}
MAXMEM=${BENCH_MAX_MEMORY:-64MiB}
KEYSPACE=${BENCH_KEYSPACE:-5000000}
FLOOD=${BENCH_FLOOD:-}
SAMPLE=${BENCH_SAMPLE:-30s}
PORT=${BENCH_PORT:-18500}
C=${BENCH_C:-16}
command -v jq >/dev/null || { echo "eviction.sh: jq is required" >&2; exit 1; }
# FILL is one and a half times what max_memory holds of the bench's keys (14 + 100 bytes and
# drivers.KeyOverhead).
FILL=$(awk -v m="$MAXMEM" 'BEGIN {
  u = 1; if (m ~ /GiB$/) u = 2^30; else if (m ~ /MiB$/) u = 2^20; else if (m ~ /KiB$/) u = 2^10
  sub(/[A-Za-z]+$/, "", m); printf "%d", 1.5 * m * u / 146 }')

tmp=$(mktemp -d /tmp/kvnode-eviction-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid f
  if [[ -n ${BENCH_KEEP_LOGS:-} ]]; then
    for f in "$tmp"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done
  fi
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

KV=${1:-}
if [[ -z $KV ]]; then
  KV=$tmp/kvnode
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$KV" ./cmd/kvnode)
fi

wait_ready() {
  local i
  for ((i = 0; i < 600; i++)); do
    "$KV" health --rpc "$1" --ready --timeout 1s >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "eviction.sh: $1 not ready after 60 s" >&2
  return 1
}

# set_run RPC STORAGE DURATION prints "req/s p99ms errors".
set_run() {
  "$KV" bench --rpc "$1" --storage "$2" --op set -c "$C" -d "$3" --warmup 1s --keys 1 --size 100 \
    --keyspace "$KEYSPACE" --json -q |
    jq -r '"\(.total.requests_per_s) \(.total.latency_us.p99 / 1000 * 100 | round / 100) \(.total.errors)"'
}

storages() {
  echo 'kv:'
  [[ ${1:-} == bounded-only ]] || echo '  open:    { driver: memory }'
  echo "  bounded: { driver: memory, config: { max_memory: $MAXMEM, eviction: lru } }"
}

# fill RPC STORAGE empties a storage, then writes FILL keys (more than the bounded one holds)
# in kv.Set calls of 500, so that the measured run starts full.
fill() {
  "$KV" clear --rpc "$1" --storage "$2" >/dev/null
  "$KV" bench --rpc "$1" --storage "$2" --op mget --preload --preload-batch 500 --keyspace "$FILL" \
    --size 100 -c 4 -n 1 --warmup 0 -q --json >/dev/null
}

# compare LABEL RPC: alternating runs on the unbounded and the bounded storage, each
# started from the same fill.
compare() {
  local label=$1 rpc=$2 r a b ratios=() open=() bounded=()
  for ((r = 1; r <= REPS; r++)); do
    log "$label: rep $r/$REPS"
    fill "$rpc" open
    a=$(set_run "$rpc" open "$DURATION")
    fill "$rpc" bounded
    b=$(set_run "$rpc" bounded "$DURATION")
    open+=("$a") bounded+=("$b")
    ratios+=("$(awk -v x="${b%% *}" -v y="${a%% *}" 'BEGIN { printf "%.2f", x / y }')")
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  local oa ob
  oa=$(med "$(for x in "${open[@]}"; do echo "${x%% *}"; done)")
  ob=$(med "$(for x in "${bounded[@]}"; do echo "${x%% *}"; done)")
  local errs
  errs=$(for x in "${open[@]}" "${bounded[@]}"; do echo "${x##* }"; done | awk '{ s += $1 } END { print s + 0 }')
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$oa" "$ob" "$(med "${ratios[@]}")" "$errs"
}

# start_cluster [bounded-only] starts three fresh nodes and sets LEADER.
start_cluster() {
  rm -rf "$tmp/n1" "$tmp/n2" "$tmp/n3"
  {
    echo 'version: "3"'
    echo 'rpc: { listen: "tcp://127.0.0.1:${RPC_PORT}" }'
    echo 'logs: { level: warn }'
    storages "${1:-}"
    cat <<YAML
cluster:
  node_id: \${NODE}
  data_dir: $tmp/\${NODE}
  raft: { bind: "127.0.0.1:\${RAFT_PORT}" }
  peers:
    - { id: n1, address: "127.0.0.1:$((PORT + 11))" }
    - { id: n2, address: "127.0.0.1:$((PORT + 12))" }
    - { id: n3, address: "127.0.0.1:$((PORT + 13))" }
YAML
  } >"$tmp/cluster.yaml"
  local i t role
  for i in 1 2 3; do
    NODE=n$i RAFT_PORT=$((PORT + 10 + i)) RPC_PORT=$((PORT + i)) "$KV" serve -c "$tmp/cluster.yaml" 2>"$tmp/n$i.log" &
    PIDS[$i]=$!
  done
  for i in 1 2 3; do
    wait_ready "tcp://127.0.0.1:$((PORT + i))"
    # Ready, but ours? (Something else may hold the port: BENCH_PORT.)
    kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "eviction.sh: n$i exited: $(tail -3 "$tmp/n$i.log")" >&2; exit 1; }
  done
  # The leader, as the nodes report it (bounded: 20 s).
  LEADER=""
  for ((t = 0; t < 200; t++)); do
    [[ -z $LEADER ]] || break
    for i in 1 2 3; do
      role=$("$KV" status --rpc "tcp://127.0.0.1:$((PORT + i))" --json 2>/dev/null | jq -r .role) || true
      if [[ $role == leader ]]; then LEADER=$i; fi
    done
    [[ -n $LEADER ]] || sleep 0.1
  done
  [[ -n $LEADER ]] || { echo "eviction.sh: no leader" >&2; exit 1; }
}

stop_cluster() {
  local i
  for i in 1 2 3; do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for i in 1 2 3; do wait "${PIDS[$i]}" 2>/dev/null || true; done
}

# --- single node -----------------------------------------------------------------------------
if [[ -z ${BENCH_ONLY_FLOOD:-} ]]; then
{
  echo 'version: "3"'
  echo "rpc: { listen: \"tcp://127.0.0.1:$PORT\" }"
  echo 'logs: { level: warn }'
  storages
} >"$tmp/single.yaml"
"$KV" serve -c "$tmp/single.yaml" 2>"$tmp/single.log" &
PIDS+=($!)
wait_ready "tcp://127.0.0.1:$PORT"
kill -0 "${PIDS[0]}" 2>/dev/null || { echo "eviction.sh: the single node exited: $(tail -3 "$tmp/single.log")" >&2; exit 1; }
ROWS=$(compare "single node" "tcp://127.0.0.1:$PORT")
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
PIDS=()

# --- three nodes -----------------------------------------------------------------------------
start_cluster
ROWS+=$'\n'$(compare "cluster, via the leader" "tcp://127.0.0.1:$((PORT + LEADER))")

cat <<MD
### Set throughput with eviction active ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, kvnode $(cd "$ROOT" && git describe --always --dirty 2>/dev/null))

\`bench/eviction.sh\`: 1-key Sets of 100 bytes, c=$C, over $KEYSPACE keys, $DURATION per run;
the bounded storage has \`max_memory: $MAXMEM, eviction: lru\`. Before each run both storages
are filled with $FILL keys (one and a half times what the bounded one holds), so every new key
written to the bounded one evicts one (in the same batch or raft entry). $REPS alternating
pairs, medians; the ratio is the median of the pairs' ratios. Target: ≥ 0.80.

| run | no limit req/s | lru req/s | ratio | errors |
|---|---:|---:|---:|---:|
$ROWS
MD

stop_cluster
fi

[[ -z $FLOOD ]] && exit 0

# --- flood -----------------------------------------------------------------------------------
start_cluster bounded-only
log "flood: filling the bounded storage"
fill "tcp://127.0.0.1:$((PORT + LEADER))" bounded
log "flood: $FLOOD through n$LEADER, sampling every $SAMPLE"
"$KV" bench --rpc "tcp://127.0.0.1:$((PORT + LEADER))" --storage bounded --op set -c "$C" -d "$FLOOD" \
  --warmup 0 --keys 1 --size 100 --keyspace 10000000 --json -q >"$tmp/flood.json" &
FLOODPID=$!
secs=$(awk -v d="$SAMPLE" 'BEGIN { sub(/s$/, "", d); if (d ~ /m$/) { sub(/m$/, "", d); d *= 60 } print d }')
echo
echo "### RSS over a $FLOOD flood of writes into \`max_memory: $MAXMEM, eviction: lru\` (cluster, through the leader)"
echo
echo "A fresh cluster whose only storage is the bounded one: kvnode sets the Go soft memory limit to"
echo "1.25 × max_memory + 128 MiB. Filled first with $FILL keys, then 1-key Sets of 100 bytes over 10M keys,"
echo "c=$C, sampled every $SAMPLE."
echo
echo "| elapsed | $(for i in 1 2 3; do printf 'n%s%s MiB | ' $i "$([[ $i == "$LEADER" ]] && echo ' (leader)')"; done)usage MiB | evicted |"
echo "|---:|---:|---:|---:|---:|---:|"
start=$(date +%s)
while kill -0 $FLOODPID 2>/dev/null; do
  st=$("$KV" status --rpc "tcp://127.0.0.1:$((PORT + LEADER))" --json)
  printf '| %ss | ' $(($(date +%s) - start))
  for i in 1 2 3; do printf '%s | ' "$(awk '$1 == "VmRSS:" { printf "%d", $2 / 1024 }' "/proc/${PIDS[$i]}/status" 2>/dev/null || echo -)"; done
  jq -r '.storages[] | select(.name == "bounded") | "\((.usage // 0) / 1048576 | floor) | \(.evicted // 0) |"' <<<"$st"
  sleep "$secs"
done
wait $FLOODPID || true
echo
jq -r '"flood: \(.total.requests) writes, \(.total.requests_per_s) req/s, p99 \(.total.latency_us.p99 / 1000) ms, \(.total.errors) errors"' "$tmp/flood.json"
