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
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
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
    argv0="$(tr '\0' '\n' 2>/dev/null <"$p/cmdline" | head -n1)" || continue
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
    log "stopping leftover process $pid ($(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | cut -c1-80))"
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in $leftovers; do wait_pid_gone "$pid" 10 || die "process $pid of cluster '$name' will not die"; done
  rm -rf "$dir"
  [[ -z "$(cluster_processes "$dir")" ]] || die "processes of cluster '$name' still running"
}

# --- front proxy (kube-aggregator) --------------------------------------------
# Per-cluster dir holding the front-proxy CA and the apiserver's proxy client
# pair (CN front-proxy-client), next to kwokctl's own pki/ (NOT inside it:
# kwokctl only generates its pki when pki/ does not exist yet).
front_proxy_dir() { printf '%s/front-proxy\n' "$(cluster_dir "$1")"; }

# Generate into dir $1: front-proxy-ca.{crt,key} (self-signed CA) and
# front-proxy-client.{crt,key} (CN front-proxy-client, clientAuth) signed by it.
# ECDSA P-256, 10 years. Overwrites whatever is there.
generate_front_proxy_pki() {
  local d="$1"
  command -v openssl >/dev/null 2>&1 ||
    die "openssl not found: needed for the front-proxy certificates (Debian/Ubuntu: apt-get install openssl)"
  mkdir -p "$d"
  (
    set -e
    umask 077
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj /CN=front-proxy-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout front-proxy-client.key -out front-proxy-client.csr -subj /CN=front-proxy-client
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out front-proxy-client.crt \
      -extfile <(printf '%s\n' basicConstraints=critical,CA:FALSE \
        keyUsage=critical,digitalSignature extendedKeyUsage=clientAuth)
    rm -f front-proxy-client.csr
    chmod 644 front-proxy-ca.crt front-proxy-client.crt
  ) >/dev/null 2>"$d/openssl.log" || die "openssl failed generating the front-proxy certs (see $d/openssl.log)"
  rm -f "$d/openssl.log"
}

# --- component args: config vs running cluster ----------------------------------
# "<component> --key=value" for every componentsPatches extraArg in kwokctl
# config file $1 (first YAML document only; expects the `- name:` / `- key:` /
# `value:` layout of kwokctl-config.yaml), sorted.
config_extra_args() {
  awk '
    /^---/ { exit }
    /^componentsPatches:/ { p = 1; next }
    p && /^[A-Za-z]/ { p = 0 }
    !p || /^[ \t]*#/ { next }
    { sub(/[ \t]+#.*$/, "") }
    /^- name: / { c = $3; next }
    /^  - key: / { k = $3; next }
    k != "" && /^    value:/ {
      v = $0; sub(/^    value:[ \t]*/, "", v)
      if (v ~ /^".*"$/ || v ~ /^\x27.*\x27$/) v = substr(v, 2, length(v) - 2)
      print c " --" k "=" v; k = ""
    }' "$1" | sort -u
}

# "<component> --arg" for every argument of every component in a cluster's
# kwok.yaml ($1) — what kwokctl actually starts — sorted.
cluster_component_args() {
  awk '
    /^componentsPatches:/ { exit }
    /^- args:/ { n = 0 }
    /^  - --/ { a[n++] = substr($0, 5) }
    /^  name: / { for (i = 0; i < n; i++) print $2 " " a[i]; n = 0 }' "$1" | sort -u
}

# --- host address ---------------------------------------------------------------
# First non-loopback IPv4 address of this machine (e.g. 192.0.2.2), for an
# EndpointSlice that points the apiserver at a server running on the host (an
# extension apiserver behind an APIService, a webhook). The apiserver runs on
# the host too and, with --enable-aggregator-routing, dials that IP directly.
# EndpointSlice validation rejects loopback (127.0.0.0/8), link-local
# (169.254.0.0/16) and unspecified addresses, so 127.0.0.1 cannot be used.
# Prints nothing and fails if the machine has no such address.
host_ipv4() {
  local ip
  ip="$({ hostname -I 2>/dev/null || true; } | tr ' ' '\n' |
    grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | grep -vE '^(127|169\.254)\.' | head -n1 || true)"
  if [[ -z "$ip" ]] && command -v ip >/dev/null 2>&1; then
    ip="$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4 }' |
      grep -vE '^(127|169\.254)\.' | head -n1 || true)"
  fi
  [[ -n "$ip" ]] && printf '%s\n' "$ip"
}
