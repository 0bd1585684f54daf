#!/usr/bin/env bash
# check-versions.sh: the modules kvnode ships with stay at the versions approved to build together
# (hashicorp/raft v1.7.3 and v1.8.0 are served by the proxy but not approved; memberlist v0.7.0
# breaks raft-boltdb/v2). `go mod tidy -diff` accepts an upgrade that another requirement pulls
# in, so `make vet` runs this on every go.mod that builds kvnode's code: the main module, jepsen/,
# rrplugin/ and the RoadRunner it is tested in. bench/rrserver (RoadRunner's own build, the
# baseline) and tools/ (the linter) keep their own.
set -euo pipefail
cd "$(dirname "$0")/.."
approved='
github.com/hashicorp/raft v1.7.2
github.com/hashicorp/raft-boltdb/v2 v2.3.1
github.com/hashicorp/memberlist v0.6.0
go.etcd.io/bbolt v1.4.3
github.com/redis/go-redis/v9 v9.23.0
github.com/roadrunner-server/goridge/v3 v3.8.3
github.com/roadrunner-server/api/v4 v4.24.0
go.opentelemetry.io/otel v1.47.0
github.com/prometheus/client_golang v1.25.0
github.com/anishathalye/porcupine v1.3.1
'
bad=0
for mod in go.mod jepsen/go.mod rrplugin/go.mod rrplugin/testdata/rr/go.mod; do
	while read -r path want; do
		[[ -n $path ]] || continue
		got=$(awk -v p="$path" '$1 == p { print $2 } $1 == "require" && $2 == p { print $3 }' "$mod")
		if [[ -n $got && $got != "$want" ]]; then
			echo "$mod: $path $got, approved $want" >&2
			bad=1
		fi
	done <<<"$approved"
done
exit $bad
