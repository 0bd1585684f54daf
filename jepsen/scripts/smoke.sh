#!/bin/sh
# smoke.sh: the CI jepsen smoke (make jepsen-smoke). Builds the static binary
# and the image, and the failpoint binary and image beside them, runs the
# harness for JEPSEN_SMOKE_DURATION (default 120s) with every workload (the
# evict workload on the bounded storage included) and every nemesis (wipe
# twice, so that both of its variants run) against a compose project named
# for this run, then a shorter run on raft-wal (cluster.raft.log_store: wal,
# the store offered behind a setting: JEPSEN_SMOKE_WAL_DURATION, default 60s,
# 0 skips it), then the unsafe-reads test. The harness's own unit tests (the
# checkers' mutation tests) run first. The project is torn down whatever
# happens. Without docker it falls back to local processes (no partitions).
# Bounded: the harness is killed after 290 s (the wal run after 150 s), the
# test after 4 minutes.
set -eu
cd "$(dirname "$0")/../.."
GO=${GO:-go}
IMAGE=${KVNODE_IMAGE:-kvnode:local}
FP_IMAGE=${KVNODE_FP_IMAGE:-$IMAGE-failpoint}
DURATION=${JEPSEN_SMOKE_DURATION:-120s}
WAL_DURATION=${JEPSEN_SMOKE_WAL_DURATION:-60s}
NEMESES=${JEPSEN_SMOKE_NEMESES:-wipe,kill,pause,partition,leader,wipe,skew,slow-fsm,slow-disk}
OUT=${JEPSEN_OUT:-/tmp/kvnode-jepsen-smoke-$$}
PROJECT=kvjepsensmoke$$
start=$(date +%s)

CGO_ENABLED=0 $GO build -trimpath -ldflags='-s -w' -o bin/kvnode ./cmd/kvnode
CGO_ENABLED=0 $GO build -tags failpoint -trimpath -ldflags='-s -w' -o bin/failpoint/kvnode ./cmd/kvnode
mode=local
if command -v docker-compose >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	mode=docker
	docker build -q -t "$IMAGE" . >/dev/null
	docker build -q -t "$FP_IMAGE" --build-arg BASE="$IMAGE" -f jepsen/docker/Dockerfile.failpoint bin/failpoint >/dev/null
	# compose down even if the harness is killed before its own teardown.
	trap 'for p in "$PROJECT" "${PROJECT}wal"; do docker-compose -p "$p" -f docker-compose.cluster.yml down -v --remove-orphans -t 2 >/dev/null 2>&1 || true; done' EXIT INT TERM
fi
echo "jepsen smoke: $mode cluster, $DURATION, $NEMESES, output in $OUT"

cd jepsen
# The checkers' own tests first (mutation tests: doctored histories they
# must reject); -short leaves out the ones that start a cluster.
CGO_ENABLED=0 $GO test -trimpath -short -count=1 ./...
# The same flags as kvnode's build, so the harness reuses its compiled packages.
CGO_ENABLED=0 $GO build -trimpath -o "$OUT.bin" ./cmd/jepsen
timeout -s INT 290 "$OUT.bin" -mode=$mode -image="$FP_IMAGE" -project="$PROJECT" -kvnode="$PWD/../bin/failpoint/kvnode" \
	-duration="$DURATION" -nemeses="$NEMESES" -out="$OUT"
# About three faults fit in a minute: the disk-loss and slow-disk ones first,
# as what a log store must survive.
if [ "$WAL_DURATION" != 0 ]; then
	echo "jepsen smoke: the same on log_store wal, $WAL_DURATION, wipe,slow-disk,kill,partition"
	timeout -s INT 150 "$OUT.bin" -mode=$mode -image="$FP_IMAGE" -project="${PROJECT}wal" -kvnode="$PWD/../bin/failpoint/kvnode" \
		-log-store=wal -duration="$WAL_DURATION" -nemeses=wipe,slow-disk,kill,partition -out="$OUT-wal"
fi
rm -f "$OUT.bin"
KVNODE_BIN="$PWD/../bin/kvnode" KVNODE_IMAGE="$IMAGE" CGO_ENABLED=0 $GO test -trimpath -count=1 -timeout 4m -run 'TestUnsafeReadsAreCaught|TestSafeReadsPassTheSameScenario' ./harness/
echo "jepsen smoke passed in $(( $(date +%s) - start ))s"
