#!/usr/bin/env bash
# bench/memory.sh: where a kvnode's memory goes, one node against each node of a 3-node cluster.
#
# Loads BENCH_KEYS keys of 100 bytes (in kv.Set calls of 500 items, through the leader) into a
# single node, then into a local three-node cluster, and reports per process: VmRSS growth per
# key, of which anonymous (RssAnon) and file-backed (RssFile: mapped pages of raft.db), and the
# Go heap (in use, idle but not returned). Then it snapshots a follower, restarts it and reports
# the same after its restart and how long it took to be ready again. Prints markdown on stdout.
#
# Usage: bench/memory.sh [KVNODE_BINARY]     (about 2 minutes with 1M keys)
# Env:   BENCH_KEYS=1000000   keys to load
#        BENCH_PORT=17400     first loopback port used
#        BENCH_EXTRA=         extra YAML appended to every node's memory storage config, e.g.
#                             'max_memory: 64MiB, eviction: lru'
# Needs: go (unless a binary is given), jq, curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEYS=${BENCH_KEYS:-1000000}
PORT=${BENCH_PORT:-17400}
EXTRA=${BENCH_EXTRA:-}
for tool in jq curl; do command -v $tool >/dev/null || { echo "memory.sh: $tool is required" >&2; exit 1; }; done

tmp=$(mktemp -d /tmp/kvnode-memory-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
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

# wait_ready polls a node until it is ready (bounded: 60 s) and prints the seconds it took.
wait_ready() {
  local rpc=$1 i start
  start=$(date +%s.%N)
  for ((i = 0; i < 600; i++)); do
    if "$KV" health --rpc "$rpc" --ready --timeout 1s >/dev/null 2>&1; then
      awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
      return 0
    fi
    sleep 0.1
  done
  echo "memory.sh: $rpc not ready after 60 s" >&2
  return 1
}

# kb FIELD PID prints a /proc/PID/status field in kB.
kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"; }
# metric NAME OPSPORT prints a gauge from the node's /metrics.
metric() { curl -s "http://127.0.0.1:$2/metrics" | awk -v m="$1" '$1 == m { printf "%.0f", $2 }'; }

# sample PID OPSPORT prints "rss anon file heap_inuse heap_idle_unreleased" in bytes.
sample() {
  local inuse idle released
  inuse=$(metric go_memstats_heap_inuse_bytes "$2")
  idle=$(metric go_memstats_heap_idle_bytes "$2")
  released=$(metric go_memstats_heap_released_bytes "$2")
  echo "$(($(kb VmRSS "$1") * 1024)) $(($(kb RssAnon "$1") * 1024)) $(($(kb RssFile "$1") * 1024)) $inuse $((idle - released))"
}

# load RPC writes the keys through one node.
load() {
  "$KV" bench --rpc "$1" --storage default --op mget --keyspace "$KEYS" --size 100 --preload \
    --preload-batch 500 -c 4 -n 1 --warmup 0 -q --json >/dev/null
}

declare -A S
per() { awk -v a="$1" -v b="$2" -v n="$KEYS" 'BEGIN { printf "%.1f", (a - b) / n }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.0f", a / 1048576 }'; }
row() { # label sample-after sample-before
  local a=(${S[$2]}) b=(${S[$3]})
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(mib "${a[0]}")" "$(per "${a[0]}" "${b[0]}")" \
    "$(per "${a[1]}" "${b[1]}")" "$(per "${a[2]}" "${b[2]}")" "$(per "${a[3]}" "${b[3]}")" "$(mib "${a[4]}")"
}

# --- single node -----------------------------------------------------------------------------
cat >"$tmp/single.yaml" <<YAML
version: "3"
rpc: { listen: "tcp://127.0.0.1:$PORT" }
metrics: { address: "127.0.0.1:$((PORT + 50))" }
logs: { level: warn }
kv: { default: { driver: memory, config: { $EXTRA } } }
YAML
"$KV" serve -c "$tmp/single.yaml" 2>"$tmp/single.log" &
PIDS+=($!)
wait_ready "tcp://127.0.0.1:$PORT" >/dev/null
sleep 2
S[single_idle]=$(sample "${PIDS[0]}" $((PORT + 50)))
log "single node: loading $KEYS keys"
load "tcp://127.0.0.1:$PORT"
sleep 5
S[single]=$(sample "${PIDS[0]}" $((PORT + 50)))
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
PIDS=()

# --- three nodes -----------------------------------------------------------------------------
cat >"$tmp/cluster.yaml" <<YAML
version: "3"
rpc: { listen: "tcp://127.0.0.1:\${RPC_PORT}" }
metrics: { address: "127.0.0.1:\${OPS_PORT}" }
logs: { level: warn }
kv: { default: { driver: memory, config: { $EXTRA } } }
cluster:
  node_id: \${NODE}
  data_dir: $tmp/\${NODE}
  raft: { bind: "127.0.0.1:\${RAFT_PORT}" }
  peers:
    - { id: n1, address: "127.0.0.1:$((PORT + 11))" }
    - { id: n2, address: "127.0.0.1:$((PORT + 12))" }
    - { id: n3, address: "127.0.0.1:$((PORT + 13))" }
YAML
start_node() {
  NODE=n$1 RAFT_PORT=$((PORT + 10 + $1)) RPC_PORT=$((PORT + $1)) OPS_PORT=$((PORT + 50 + $1)) \
    "$KV" serve -c "$tmp/cluster.yaml" 2>>"$tmp/n$1.log" &
  PIDS[$1]=$!
}
for i in 1 2 3; do start_node $i; done
for i in 1 2 3; do wait_ready "tcp://127.0.0.1:$((PORT + i))" >/dev/null; done
sleep 2
LEADER="" FOLLOWER=""
for i in 1 2 3; do
  S[idle_$i]=$(sample "${PIDS[$i]}" $((PORT + 50 + i)))
  if [[ $("$KV" status --rpc "tcp://127.0.0.1:$((PORT + i))" --json | jq -r .role) == leader ]]; then LEADER=$i; else FOLLOWER=$i; fi
done
log "cluster: loading $KEYS keys through n$LEADER"
load "tcp://127.0.0.1:$((PORT + LEADER))"
# Wait until every node has applied what the leader has (bounded: 60 s).
want=$("$KV" status --rpc "tcp://127.0.0.1:$((PORT + LEADER))" --json | jq .fsm_applied_index)
for i in 1 2 3; do
  for ((t = 0; t < 600; t++)); do
    got=$("$KV" status --rpc "tcp://127.0.0.1:$((PORT + i))" --json | jq .fsm_applied_index)
    ((got >= want)) && break
    sleep 0.1
  done
done
sleep 5
for i in 1 2 3; do S[node_$i]=$(sample "${PIDS[$i]}" $((PORT + 50 + i))); done

log "cluster: snapshot and restart of follower n$FOLLOWER"
"$KV" snapshot save "$tmp/backup.kvn" --rpc "tcp://127.0.0.1:$((PORT + FOLLOWER))" >/dev/null
kill -TERM "${PIDS[$FOLLOWER]}"; wait "${PIDS[$FOLLOWER]}" 2>/dev/null || true
start_node "$FOLLOWER"
READY=$(wait_ready "tcp://127.0.0.1:$((PORT + FOLLOWER))")
sleep 5
S[restarted]=$(sample "${PIDS[$FOLLOWER]}" $((PORT + 50 + FOLLOWER)))

cat <<MD
### Memory per key, one node against a three-node cluster ($(date -u +%Y-%m-%dT%H:%MZ), kvnode $(cd "$ROOT" && git describe --always --dirty 2>/dev/null))

\`bench/memory.sh\`: $KEYS keys of 100 bytes written in kv.Set calls of 500 items (through the
leader), memory storage${EXTRA:+ with \`$EXTRA\`}. Read 5 s after the last write; growth over the idle process, per key.
RssFile is raft.db's pages mapped by bbolt; heap idle is Go heap neither in use nor returned to the OS.

| process | VmRSS MiB | RSS B/key | anon B/key | file B/key | Go heap in use B/key | heap idle MiB |
|---|---:|---:|---:|---:|---:|---:|
$(row "single node" single single_idle)
$(for i in 1 2 3; do role=follower; [[ $i == "$LEADER" ]] && role=leader; row "cluster n$i ($role)" "node_$i" "idle_$i"; done)
$(row "n$FOLLOWER restarted from its snapshot and log (ready in ${READY}s)" restarted "idle_$FOLLOWER")
MD
