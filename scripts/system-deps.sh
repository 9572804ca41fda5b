#!/usr/bin/env bash
# Debian packages the tests run for real, installed with apt when missing and we are root:
#   test    redis-server (cache, distributed rate limit, Redis loss/recovery tests), curl,
#           prometheus (promtool for the alerts' tests; the live check of every query),
#           chromium (the /docs and /redoc browser test, through puppeteer-core)
#   docker  Docker Engine (docker.io), and what the offline image and kind builds use:
#           debootstrap, jq, gcc + libc6-dev (static pause and probe binaries), iptables
#   scripts/system-deps.sh [test] [docker]     (default: both)
set -euo pipefail
(($#)) || set -- test docker
missing=()
need() { # need <command> <package>
  command -v "$1" >/dev/null || missing+=("$2")
}
for group in "$@"; do
  case "$group" in
  test)
    need redis-server redis-server
    need curl curl
    need promtool prometheus
    need chromium chromium
    ;;
  docker)
    need dockerd docker.io
    need debootstrap debootstrap
    need jq jq
    need gcc gcc
    [[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
    need iptables iptables
    ;;
  *) echo "system-deps: unknown group '$group' (test, docker)" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and rerun" >&2
  exit 1
fi
echo "system-deps: apt-get install ${missing[*]}" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
