#!/usr/bin/env bash
# Finds (or starts) a Docker daemon that can run privileged containers, which kind needs,
# and prints the environment to use it:   eval "$(scripts/docker-env.sh)"
#   DOCKER=<a docker CLI that builds with BuildKit>  DOCKER_HOST=<the daemon>
#
# The user's Docker is never changed. If it is reachable and runs a privileged container,
# it is used as it is. Otherwise (not running, or privileged containers fail, as on VMs whose
# capability bounding set lacks CAP_SYS_RESOURCE: "unable to apply caps") a private dockerd
# is started with its own data root, socket and bridge under the cache, and a runc wrapper
# (e2e/kind/runc-wrapper.sh) as its default runtime that drops capabilities the machine
# cannot grant. It keeps running for later calls; `scripts/docker-env.sh --stop` stops it.
#
#   WAVELET_CACHE          cache root (default ~/.cache/wavelet-platform)
#   WAVELET_PRIVATE_DOCKER 1: always use the private daemon; 0: never start it
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}
dir="$cache/docker"
sock="$dir/docker.sock"
private_host="unix://$sock"
bridge=wvl-docker0
bridge_cidr=172.29.0.1/24

log() { printf '[docker-env] %s\n' "$*" >&2; }
die() { printf 'docker-env: error: %s\n' "$*" >&2; exit 1; }

stop_private() {
  local pid
  pid=$(cat "$dir/dockerd.pid" 2>/dev/null || true)
  # Only our daemon: after a reboot or a killed session the pid may be another process's.
  if [[ -n "$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--data-root $dir/data"; then
    log "stopping private dockerd ($pid)"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  ip link del "$bridge" 2>/dev/null || true
}
if [[ "${1:-}" == "--stop" ]]; then stop_private; exit 0; fi

"$root/scripts/system-deps.sh" docker

# A CLI that builds with BuildKit: one with buildx, or a classic CLI (< 23) that has
# BuildKit built in. (A Docker 23+ CLI without the buildx plugin cannot build with it.)
pick_cli() {
  local c v
  for c in "${DOCKER:-}" "$(command -v docker || true)" /usr/bin/docker; do
    [[ -n "$c" && -x "$c" ]] || continue
    if "$c" buildx version >/dev/null 2>&1; then echo "$c"; return; fi
    v=$("$c" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [[ -n "$v" ]] && ((v < 23)); then echo "$c"; return; fi
  done
  return 1
}
cli=$(pick_cli) || die "no docker CLI that can build with BuildKit (install buildx, or Debian's docker.io)"

# A tiny static image to probe privileged runs with: nothing can be pulled here.
probe_image=wavelet-probe:1
ensure_probe_image() {
  "$cli" image inspect "$probe_image" >/dev/null 2>&1 && return
  local tmp
  tmp=$(mktemp -d)
  printf 'int main(void){return 0;}\n' | gcc -static -Os -x c -o "$tmp/true" -
  tar -C "$tmp" -c true | "$cli" import -c 'ENTRYPOINT ["/true"]' - "$probe_image" >/dev/null
  rm -rf "$tmp"
}
privileged_ok() {
  ensure_probe_image && "$cli" run --rm --privileged "$probe_image" >/dev/null 2>&1
}

emit() {
  log "using $1 (${2})"
  printf 'export DOCKER=%q DOCKER_HOST=%q DOCKER_BUILDKIT=1\n' "$cli" "$1"
}

# --- the user's daemon, if it can do what kind needs -----------------------------------
if [[ "${WAVELET_PRIVATE_DOCKER:-}" != 1 ]]; then
  user_host=${DOCKER_HOST:-unix:///var/run/docker.sock}
  if [[ "$user_host" != "$private_host" ]] && DOCKER_HOST=$user_host "$cli" info >/dev/null 2>&1; then
    if DOCKER_HOST=$user_host privileged_ok; then
      emit "$user_host" "the running daemon"
      exit 0
    fi
    log "the running daemon ($user_host) cannot start privileged containers; using a private one"
  fi
  [[ "${WAVELET_PRIVATE_DOCKER:-}" == 0 ]] && die "no usable Docker daemon at $user_host and WAVELET_PRIVATE_DOCKER=0"
fi

# --- the private daemon -----------------------------------------------------------------
export DOCKER_HOST=$private_host
mkdir -p "$dir"
exec 8>"$dir/.lock"
flock -w 120 8 || die "timed out waiting for another docker-env.sh"
if ! "$cli" info >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || die "starting a private dockerd needs root"
  stop_private
  mkdir -p "$dir/data" "$dir/exec" /lib/modules # kind bind-mounts /lib/modules
  install -m 0755 "$root/e2e/kind/runc-wrapper.sh" "$dir/runc-wrapper"
  # Our own bridge, so the user's docker0 (if any) is never touched.
  ip link add "$bridge" type bridge 2>/dev/null || true
  ip addr replace "$bridge_cidr" dev "$bridge"
  ip link set "$bridge" up
  mtu=$(cat /sys/class/net/"$(ip route show default | awk '{print $5; exit}')"/mtu 2>/dev/null || echo 1500)
  log "starting private dockerd (data root $dir/data, MTU $mtu)"
  # setsid: the daemon outlives this script and the test run that called it.
  setsid dockerd \
    --host "$private_host" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" \
    --bridge "$bridge" \
    --mtu "$mtu" \
    --add-runtime "wavelet-runc=$dir/runc-wrapper" \
    --default-runtime wavelet-runc \
    --storage-driver overlay2 \
    </dev/null >"$dir/dockerd.log" 2>&1 8>&- & # 8>&-: the daemon must not hold our lock
  for _ in $(seq 150); do "$cli" info >/dev/null 2>&1 && break; sleep 0.2; done
  "$cli" info >/dev/null 2>&1 || die "private dockerd did not start; see $dir/dockerd.log"
fi
privileged_ok || die "even the private daemon cannot start privileged containers; see $dir/dockerd.log"
emit "$private_host" "private daemon, runc wrapper"
