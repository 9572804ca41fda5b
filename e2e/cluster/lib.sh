# shellcheck shell=bash
# lib.sh — shared helpers for build.sh / up.sh / down.sh / apiserver.sh / smoke.sh.
# Source it; don't execute it. Expects `set -euo pipefail` in the caller.

cluster_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$cluster_lib_dir/versions.env"

# Everything generated lives outside the repo, under one cache root.
WAVELET_CACHE_ROOT="${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}"
# The binaries for one version triple; build.sh fills it, everyone else reads it.
K8S_BUILD_KEY="${K8S_VERSION}-etcd${ETCD_VERSION#v}-kwok${KWOK_VERSION#v}"
K8S_BUILD_DIR="$WAVELET_CACHE_ROOT/k8s/$K8S_BUILD_KEY"
K8S_BIN_DIR="$K8S_BUILD_DIR/bin"
# kwokctl keeps one directory per cluster under $KWOK_WORKDIR/clusters/<name>
# (pki, etcd data, logs, pid files, kubeconfig.yaml). Default would be ~/.kwok.
export KWOK_WORKDIR="$WAVELET_CACHE_ROOT/kwok"

script_name="$(basename "${0:-cluster}" .sh)"
log() { printf '[%s] %s\n' "$script_name" "$*" >&2; }
die() { printf '%s: error: %s\n' "$script_name" "$*" >&2; exit 1; }

# Cluster names become directory names and kwokctl names; keep them boring.
validate_cluster_name() {
  [[ "$1" =~ ^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$ ]] ||
    die "invalid cluster name '$1' (use lowercase letters, digits and '-')"
}

cluster_dir() { printf '%s/clusters/%s\n' "$KWOK_WORKDIR" "$1"; }
cluster_kubeconfig() { printf '%s/kubeconfig.yaml\n' "$(cluster_dir "$1")"; }

# The components kwokctl starts for the binary runtime; each gets pids/<name>.pid.
# shellcheck disable=SC2034 # used by the scripts that source this file
CLUSTER_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)

# True if $1 is a live (non-zombie) process. kill -0 is not enough: in some
# sandboxes PID 1 reaps orphans late, and a zombie still answers kill -0.
pid_alive() {
  local pid="$1" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  # Field 3 (after "pid (comm)") is the state; Z = zombie, X = dead.
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z && "${stat:0:1}" != X ]]
}

# Print the pid recorded by kwokctl for component $2 of cluster $1 (may be stale).
component_pid() {
  local f
  f="$(cluster_dir "$1")/pids/$2.pid"
  [[ -r "$f" ]] && tr -dc '0-9' <"$f"
}

# True if the process behind pid $1 was started from cluster dir $2 — guards
# against pid reuse before we signal anything.
pid_belongs_to() {
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$2/"* ]]
}

# Wait (up to $2 seconds) until pid $1 is gone or a zombie.
wait_pid_gone() {
  local pid="$1" deadline=$((SECONDS + ${2:-30}))
  while pid_alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# The binaries, without building. Callers that may build use build.sh instead.
require_binaries() {
  local b
  for b in kwokctl kubectl; do
    [[ -x "$K8S_BIN_DIR/$b" ]] || die "$K8S_BIN_DIR/$b missing — run e2e/cluster/build.sh first"
  done
}

# Poll `$@` every 0.5s until it succeeds or $timeout (seconds, first arg) passes.
retry_until() {
  local timeout="$1" deadline
  shift
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# Print pids of live processes whose executable path is inside cluster dir $1
# (kwokctl starts components as <cluster-dir>/bin/<component>). Matching on
# that unique path, not on a process name, so nothing else is ever touched.
cluster_processes() {
  local dir="$1" p argv0
  for p in /proc/[0-9]*; do
    argv0="$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null | head -n1)" || continue
    [[ "$argv0" == "$dir/bin/"* ]] || continue
    pid_alive "${p#/proc/}" && echo "${p#/proc/}"
  done
  return 0
}

# Delete cluster $1: kwokctl delete (stops components, removes its dir), then
# make sure no component survived and the directory is gone. Caller holds the
# per-cluster lock.
delete_cluster() {
  local name="$1" dir pid leftovers
  dir="$(cluster_dir "$name")"
  if [[ ! -d "$dir" ]]; then
    log "cluster '$name' does not exist"
    return 0
  fi
  if [[ -x "$K8S_BIN_DIR/kwokctl" ]]; then
    # --kubeconfig: kwokctl wants a kubeconfig to remove the cluster's context
    # from (default ~/.kube/config). We never added one there, so hand it a
    # scratch path instead of letting it touch the user's file.
    "$K8S_BIN_DIR/kwokctl" --name "$name" delete cluster \
      --kubeconfig "$KWOK_WORKDIR/.scratch-kubeconfig.yaml" >&2 9>&- ||
      log "kwokctl delete cluster failed; cleaning up by hand"
  else
    log "kwokctl not built ($K8S_BIN_DIR); cleaning up by hand"
  fi
  # kwokctl SIGKILLs the pids in its pid files; catch anything it missed
  # (stale pid files, half-created clusters).
  leftovers="$(cluster_processes "$dir")"
  for pid in $leftovers; do
    log "stopping leftover process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in $leftovers; do wait_pid_gone "$pid" 10 || die "process $pid of cluster '$name' will not die"; done
  rm -rf "$dir"
  [[ -z "$(cluster_processes "$dir")" ]] || die "processes of cluster '$name' still running"
}
