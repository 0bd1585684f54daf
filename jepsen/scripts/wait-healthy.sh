#!/bin/sh
# wait-healthy.sh COMPOSE-ARGS...: wait (at most 90 s) until every container
# of the compose project reports healthy; print the states and fail otherwise.
set -eu
deadline=$(( $(date +%s) + 90 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
	ids=$("$@" ps -q)
	total=0; healthy=0
	for id in $ids; do
		total=$((total + 1))
		s=$(docker inspect -f '{{.State.Health.Status}}' "$id")
		[ "$s" = healthy ] && healthy=$((healthy + 1))
	done
	if [ "$total" -gt 0 ] && [ "$healthy" -eq "$total" ]; then
		echo "cluster healthy: $healthy/$total nodes"
		exit 0
	fi
	sleep 1
done
echo "cluster not healthy after 90s:" >&2
"$@" ps >&2
exit 1
