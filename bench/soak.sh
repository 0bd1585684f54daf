#!/usr/bin/env bash
# bench/soak.sh: a three-node local cluster under steady write load, to show that the raft
# timeouts are not tuned into flapping: Set through the leader at c=64 for SOAK_DURATION
# (default 10m), then the leader changes every node saw, which must be none.
#
# Usage: bench/soak.sh [KVNODE_BINARY]
# Env:   SOAK_DURATION=10m   SOAK_CONNS=64   SOAK_LOG_STORE=boltdb   BENCH_PORT=17600
# Needs: go (unless a binary is given), jq. Prints one markdown line; exits 1 on a leader change.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${SOAK_DURATION:-10m}
CONNS=${SOAK_CONNS:-64}
STORE=${SOAK_LOG_STORE:-boltdb}
PORT=${BENCH_PORT:-17600}
command -v jq >/dev/null || { echo "soak.sh: jq is required (apt-get install jq)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/kvnode-soak.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

KV=${1:-}
if [[ -z $KV ]]; then
  KV=$tmp/kvnode
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$KV" ./cmd/kvnode)
fi

cat >"$tmp/cluster.yaml" <<YAML
version: "3"
rpc: { listen: "tcp://127.0.0.1:\${RPC_PORT}" }
logs: { level: warn }
kv: { default: { driver: memory } }
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
  NODE=n$i RAFT_PORT=$((PORT + 10 + i)) RPC_PORT=$((PORT + i)) "$KV" serve -c "$tmp/cluster.yaml" 2>"$tmp/n$i.log" &
  PIDS+=($!)
done

status() { "$KV" status --rpc "tcp://127.0.0.1:$((PORT + $1))" --json 2>/dev/null; }
changes_now() {
  local i sum=0 n
  for i in 1 2 3; do n=$(status "$i" | jq -r '.leader_changes // 0'); sum=$((sum + n)); done
  echo "$sum"
}
leader=""
for ((t = 0; t < 300; t++)); do
  for i in 1 2 3; do
    if [[ $(status "$i" | jq -r '.role // ""') == leader ]]; then leader=$i; fi
  done
  [[ -z $leader ]] || break
  sleep 0.1
done
[[ -n $leader ]] || { echo "soak.sh: no leader" >&2; exit 1; }
before=$(changes_now)

out=$("$KV" bench --rpc "tcp://127.0.0.1:$((PORT + leader))" --storage default --op set -c "$CONNS" -d "$DURATION" \
  --keys 1 --size 100 --keyspace 100000 --json -q)
after=$(changes_now)
changes=$((after - before))
load=$(cut -d' ' -f1-3 /proc/loadavg)
jq -r --arg d "$DURATION" --arg c "$CONNS" --arg s "$STORE" --arg ch "$changes" --arg l "$load" \
  '"Soak: Set through the leader, c=\($c), \($d), log_store \($s): \(.total.requests_per_s | round) req/s, p99 \(.total.latency_us.p99 / 1000 * 100 | round / 100) ms, \(.total.errors) errors, leader changes \($ch) (load average at the end \($l))"' <<<"$out"
[[ $changes -eq 0 ]]
