#!/usr/bin/env bash
# Debian packages the tests run for real: redis-server (cache, distributed rate limit and
# Redis loss/recovery tests). Installed with apt when missing and we are root.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and rerun" >&2
  exit 1
fi
echo "system-deps: apt-get install ${missing[*]}" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
