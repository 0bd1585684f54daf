#!/usr/bin/env bash
# bench/cluster.sh: kvnode as a 3-node local cluster against kvnode as a single node, in one run.
#
# Starts one single-node kvnode and measures memory Set and MGet at c=1/16/64; stops it; starts
# three local kvnode processes forming a raft cluster (raft log in raft-boltdb, the default) and
# measures, with the same load generator: Set through the leader and through a follower, Set of a
# replicated boltdb storage, MGet with consistency local and linearizable on a follower; then the
# same cluster with cluster.raft.log_store wal, Set only. Prints a markdown section on stdout
# (bench/run.sh puts it in docs/benchmarks.md).
#
# Usage: bench/cluster.sh [KVNODE_BINARY]     (about 4 minutes)
# Env:   BENCH_DURATION=5s   length of one measured run
#        BENCH_REV=          what the binary was built from (default: git describe of the work tree)
#        BENCH_PORT=17300    first loopback port used
# Needs: go (unless a binary is given), jq.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-5s}
PORT=${BENCH_PORT:-17300}
command -v jq >/dev/null || { echo "cluster.sh: jq is required (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/kvnode-cluster-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
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
CPU0=$(cpu_sample)

# wait_ready polls a node's status until it has a leader (bounded: 20 s).
wait_ready() {
  local rpc=$1 i
  for ((i = 0; i < 200; i++)); do
    if "$KV" status --rpc "$rpc" --json 2>/dev/null | jq -e '.leader_id != ""' >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "cluster.sh: $rpc never saw a leader" >&2
  return 1
}

# bench OP RPC STORAGE C prints "req/s p99ms" of one run.
bench() {
  local out
  out=$("$KV" bench --rpc "$2" --storage "$3" --op "$1" -c "$4" -d "$DURATION" --warmup 1s \
    --keys 1 --size 100 --keyspace 100000 --json -q)
  jq -r '"\(.total.requests_per_s) \(.total.latency_us.p99 / 1000 * 100 | round / 100) \(.total.errors)"' <<<"$out"
}

declare -A R
CONNS=(1 16 64)

# --- single node -----------------------------------------------------------------------------
cat >"$tmp/single.yaml" <<YAML
version: "3"
rpc: { listen: "tcp://127.0.0.1:$PORT" }
logs: { level: warn }
kv: { default: { driver: memory } }
YAML
"$KV" serve -c "$tmp/single.yaml" 2>"$tmp/single.log" &
PIDS+=($!)
SINGLE=tcp://127.0.0.1:$PORT
wait_ready "$SINGLE" || true # a standalone node reports itself as its leader
for c in "${CONNS[@]}"; do
  log "single node: set, mget c=$c"
  R[single_set_$c]=$(bench set "$SINGLE" default "$c")
  R[single_mget_$c]=$(bench mget "$SINGLE" default "$c")
done
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
PIDS=()

# --- three nodes -----------------------------------------------------------------------------
# cluster STORE [full]: three nodes with cluster.raft.log_store STORE; measures Set through the
# leader and a follower (and with "full" the boltdb storage and both read levels too).
cluster() {
  local store=$1 full=${2:-} i rpc LEADER="" FOLLOWER=""
  cat >"$tmp/cluster.yaml" <<YAML
version: "3"
rpc: { listen: "tcp://127.0.0.1:\${RPC_PORT}" }
logs: { level: warn }
kv:
  default: { driver: memory }
  strict:  { driver: memory, consistency: linearizable }
  files:   { driver: boltdb, config: { file: files.db } }
cluster:
  node_id: \${NODE}
  data_dir: $tmp/$store-\${NODE}
  raft: { bind: "127.0.0.1:\${RAFT_PORT}", log_store: $store }
  peers:
    - { id: n1, address: "127.0.0.1:$((PORT + 11))" }
    - { id: n2, address: "127.0.0.1:$((PORT + 12))" }
    - { id: n3, address: "127.0.0.1:$((PORT + 13))" }
YAML
  PIDS=()
  for i in 1 2 3; do
    NODE=n$i RAFT_PORT=$((PORT + 10 + i)) RPC_PORT=$((PORT + i)) \
      "$KV" serve -c "$tmp/cluster.yaml" 2>"$tmp/$store-n$i.log" &
    PIDS+=($!)
  done
  for i in 1 2 3; do wait_ready "tcp://127.0.0.1:$((PORT + i))"; done
  for i in 1 2 3; do
    rpc=tcp://127.0.0.1:$((PORT + i))
    if [[ $("$KV" status --rpc "$rpc" --json | jq -r .role) == leader ]]; then LEADER=$rpc; else FOLLOWER=$rpc; fi
  done
  [[ -n $LEADER && -n $FOLLOWER ]] || { echo "cluster.sh: no leader/follower found" >&2; exit 1; }
  log "log_store $store: leader $LEADER, follower $FOLLOWER"
  for c in "${CONNS[@]}"; do
    log "log_store $store: set via leader, set via follower c=$c"
    R[${store}_leader_set_$c]=$(bench set "$LEADER" default "$c")
    R[${store}_follower_set_$c]=$(bench set "$FOLLOWER" default "$c")
    if [[ -n $full ]]; then
      log "log_store $store: boltdb storage set, mget local, mget linearizable c=$c"
      R[${store}_leader_bset_$c]=$(bench set "$LEADER" files "$c")
      R[local_mget_$c]=$(bench mget "$FOLLOWER" default "$c")
      R[lin_mget_$c]=$(bench mget "$FOLLOWER" strict "$c")
    fi
  done
  for i in "${PIDS[@]}"; do kill -TERM "$i" 2>/dev/null || true; done
  for i in "${PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
  PIDS=()
}
cluster boltdb full
cluster wal

# --- report ----------------------------------------------------------------------------------
rate() { cut -d' ' -f1 <<<"${R[$1]}"; }
p99() { cut -d' ' -f2 <<<"${R[$1]}"; }
errs() { cut -d' ' -f3 <<<"${R[$1]}"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }'; }
row() { # label key single-key
  local label=$1 k=$2 s=$3 c
  printf '| %s |' "$label"
  for c in "${CONNS[@]}"; do
    printf ' %s (%s ms) |' "$(rate "${k}_$c")" "$(p99 "${k}_$c")"
  done
  if [[ -n $s ]]; then
    printf ' %s |' "$(pct "$(rate "${k}_64")" "$(rate "${s}_64")")"
  else
    printf ' |'
  fi
  echo
}
cat <<MD
### Three-node cluster against one node ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, kvnode ${BENCH_REV:-$(cd "$ROOT" && git describe --always --dirty 2>/dev/null)})

\`bench/cluster.sh\`: three kvnode processes and the load generator share the machine's $(nproc)
CPUs; memory storages, 1 key of 100 bytes per request, $DURATION per run, req/s (p99 latency).
Errors in any run: $(for k in "${!R[@]}"; do errs "$k"; done | awk '{s += $1} END {print s + 0}').
CPUs during the runs: $(cpu_since "$CPU0").

| run | c=1 | c=16 | c=64 | c=64 vs single node |
|---|---:|---:|---:|---:|
$(row "single node, Set" single_set "")
$(row "single node, MGet" single_mget "")
$(row "cluster, Set via leader" boltdb_leader_set single_set)
$(row "cluster, Set via follower" boltdb_follower_set single_set)
$(row "cluster, Set via leader, boltdb storage" boltdb_leader_bset single_set)
$(row "cluster, MGet local (follower)" local_mget single_mget)
$(row "cluster, MGet linearizable (follower)" lin_mget single_mget)
$(row "cluster, log_store wal, Set via leader" wal_leader_set single_set)
$(row "cluster, log_store wal, Set via follower" wal_follower_set single_set)
MD
