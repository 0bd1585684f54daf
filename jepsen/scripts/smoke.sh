#!/bin/sh
# smoke.sh: the CI jepsen smoke (make jepsen-smoke). Builds the static binary
# and the image, runs the harness for JEPSEN_SMOKE_DURATION (default 120s)
# with kill, pause, partition and leader isolation against a compose project
# named for this run, then the unsafe-reads test. The project is torn down
# whatever happens. Without docker it falls back to local processes (no
# partitions). Bounded: the whole script is killed after 290 s.
set -eu
cd "$(dirname "$0")/../.."
GO=${GO:-go}
IMAGE=${KVNODE_IMAGE:-kvnode:local}
DURATION=${JEPSEN_SMOKE_DURATION:-120s}
OUT=${JEPSEN_OUT:-/tmp/kvnode-jepsen-smoke-$$}
PROJECT=kvjepsensmoke$$
start=$(date +%s)

CGO_ENABLED=0 $GO build -trimpath -ldflags='-s -w' -o bin/kvnode ./cmd/kvnode
mode=local
if command -v docker-compose >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	mode=docker
	docker build -q -t "$IMAGE" . >/dev/null
	# compose down even if the harness is killed before its own teardown.
	trap 'docker-compose -p "$PROJECT" -f docker-compose.cluster.yml down -v --remove-orphans -t 2 >/dev/null 2>&1 || true' EXIT INT TERM
fi
echo "jepsen smoke: $mode cluster, $DURATION, output in $OUT"

cd jepsen
$GO build -o "$OUT.bin" ./cmd/jepsen
timeout -s INT 290 "$OUT.bin" -mode=$mode -image="$IMAGE" -project="$PROJECT" -kvnode="$PWD/../bin/kvnode" \
	-duration="$DURATION" -nemeses=kill,pause,partition,leader -out="$OUT"
rm -f "$OUT.bin"
KVNODE_BIN="$PWD/../bin/kvnode" KVNODE_IMAGE="$IMAGE" $GO test -count=1 -timeout 4m -run 'TestUnsafeReadsAreCaught|TestSafeReadsPassTheSameScenario' ./harness/
echo "jepsen smoke passed in $(( $(date +%s) - start ))s"
