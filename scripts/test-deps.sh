#!/usr/bin/env bash
# Installs the real servers the tests talk to (redis-server, memcached) when
# they are missing. Tests start their own instances on free loopback ports,
# so nothing is started here.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "tests need ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services; the tests don't use them.
for svc in redis-server memcached; do
	(service "$svc" stop || systemctl stop "$svc") >/dev/null 2>&1 || true
done
