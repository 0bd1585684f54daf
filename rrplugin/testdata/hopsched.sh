#!/usr/bin/env bash
# hopsched.sh: where a c=1 mget's time goes, per process, for each target of
# TestHopCost (direct, rr-kvnode, rr-memory). For each target in turn it
# runs TestHopHold (one caller, one call at a time), records one second of
# the kernel's scheduler events with `perf sched record` (system-wide) in
# the middle of the load, and prints per process: how often its threads
# were switched in per call, how long a woken thread waited for a CPU on
# average (perf's "sch delay"), and the CPU time it used per call.
#
# Needs perf and the rights to trace the scheduler (root). Run from rrplugin/:
#
#	testdata/hopsched.sh [target...]      # default: all three
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(direct rr-kvnode rr-memory)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go test -c -o "$work/rrplugin.test" . # build once, outside the measured window

for tg in "${targets[@]}"; do
	pids="$work/$tg.pids"
	RRPLUGIN_HOLD=$tg RRPLUGIN_HOLD_DURATION=8s RRPLUGIN_HOLD_PIDS=$pids \
		"$work/rrplugin.test" -test.run '^TestHopHold$' -test.v >"$work/$tg.out" 2>&1 &
	test=$!
	# The cluster and RoadRunner take a few seconds to start (binaries are
	# built on first use): wait for the load to begin, at most 5 minutes.
	for _ in $(seq 1 600); do
		[ -s "$pids" ] && break
		kill -0 "$test" 2>/dev/null || break
		sleep 0.5
	done
	if [ ! -s "$pids" ]; then
		wait "$test" || true
		cat "$work/$tg.out"
		exit 1
	fi
	sleep 2 # into the load, past its first calls
	perf sched record -o "$work/$tg.data" -- sleep 1 >/dev/null 2>&1
	wait "$test"
	result=$(grep -o "$tg mget c=1: .*" "$work/$tg.out")
	rps=$(sed -E 's/.*: ([0-9]+) req\/s.*/\1/' <<<"$result")
	echo "== $result    load average $(cut -d' ' -f1-3 /proc/loadavg)"
	perf sched timehist -i "$work/$tg.data" 2>/dev/null |
		awk -v procs="$(cat "$pids")" -v rps="$rps" '
			BEGIN { n = split(procs, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); name[p[2]] = p[1] } }
			NR > 3 {
				# column 3 is task[tid/pid], or task[pid] for a main thread
				split($3, f, /[\[\]\/]/); pid = (f[3] != "") ? f[3] : f[2]
				if (!(pid in name)) next
				if (first == "") first = $1
				last = $1
				who = name[pid]; sw[who]++; delay[who] += $5; run[who] += $6
			}
			END {
				calls = (last - first) * rps
				for (w in sw) printf "  %-7s switched in %.2f times/call   mean wait for a CPU %5.1f µs   CPU %5.1f µs/call\n", w, sw[w] / calls, delay[w] / sw[w] * 1000, run[w] / calls * 1000
			}' | sort
done
