#!/usr/bin/env bash
# up.sh [name] — start (or reuse) a local Kubernetes control plane with fake
# kwok nodes, built by build.sh. Prints the kubeconfig path as the LAST line
# of stdout; all progress goes to stderr.
#
#   KUBECONFIG="$(e2e/cluster/up.sh | tail -n1)"
#
# What runs (kwokctl "binary" runtime, all bound to 127.0.0.1, random ports):
#   etcd, kube-apiserver (authorization-mode=Node,RBAC, admission on),
#   kube-controller-manager (all default controllers: deployment/replicaset,
#   garbage collector, serviceaccount + token controllers, ...),
#   kube-scheduler, kwok-controller (fakes kubelets for every Node).
#   Controller-manager and scheduler run without leader election so they
#   survive apiserver restarts (see kwokctl-config.yaml).
#   kube-apiserver is a kube-aggregator front proxy like on kubeadm clusters:
#   front-proxy CA + proxy client cert (CN front-proxy-client), generated here
#   with openssl into <cluster dir>/front-proxy/, --requestheader-* flags and
#   --enable-aggregator-routing (README "Aggregated APIs").
# Nothing is downloaded: every binary path is passed explicitly, and this
# machine cannot reach GitHub/dl.k8s.io anyway, so a download would fail loudly.
#
# Idempotent-ish: if the cluster exists and is healthy, just prints its
# kubeconfig; if it exists but some component died (e.g. after a reboot), it
# restarts the missing components; if that fails, it recreates the cluster.
#
# Env knobs:
#   WAVELET_CACHE       cache root (default $HOME/.cache/wavelet-platform)
#   WAVELET_KWOK_NODES  number of fake nodes (default 1)
#   WAVELET_KCM_QPS, WAVELET_KCM_BURST
#                       kube-controller-manager's --kube-api-qps / --kube-api-burst
#                       (unset: its defaults, 20 / 30); bench/operator.sh raises them to see
#                       what the controller-manager's own client limit costs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

name="${1:-wavelet}"
validate_cluster_name "$name"
nodes="${WAVELET_KWOK_NODES:-1}"
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "WAVELET_KWOK_NODES must be a positive integer"
for var in WAVELET_KCM_QPS WAVELET_KCM_BURST; do
  [[ -z "${!var:-}" || "${!var}" =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer"
done
kcm_args=()
[[ -n "${WAVELET_KCM_QPS:-}" ]] && kcm_args+=("--kube-api-qps=$WAVELET_KCM_QPS")
[[ -n "${WAVELET_KCM_BURST:-}" ]] && kcm_args+=("--kube-api-burst=$WAVELET_KCM_BURST")

start=$SECONDS

# Builds on first use (slow, see README); instant when the binaries exist.
bin="$("$here/build.sh" | tail -n1)"
[[ -x "$bin/kwokctl" ]] || die "build.sh did not produce $bin/kwokctl"
kubectl="$bin/kubectl"

dir="$(cluster_dir "$name")"
kubeconfig="$(cluster_kubeconfig "$name")"
fp_dir="$(front_proxy_dir "$name")"
[[ "$fp_dir" != *[\"\\]* && "$fp_dir" != *$'\n'* ]] ||
  die "cluster dir '$dir' contains a quote, backslash or newline (WAVELET_CACHE?)"
command -v openssl >/dev/null 2>&1 ||
  die "openssl not found: up.sh needs it for the front-proxy certificates (Debian/Ubuntu: apt-get install openssl)"

# kwokctl runs kubectl itself (readiness checks, `scale node`); it has no flag
# for it, only this env var. The version env keeps kwokctl's defaults in line.
export KWOK_KUBECTL_BINARY="$kubectl"
export KWOK_KUBE_VERSION="$K8S_VERSION"

mkdir -p "$KWOK_WORKDIR"
# One up/down at a time per cluster name (parallel test workers, humans).
exec 9>"$KWOK_WORKDIR/.$name.lock"
flock -w 300 9 || die "timed out waiting for another up/down of cluster '$name'"

# kwokctl forks the cluster's long-running processes; close fd 9 for it so they
# don't inherit (and hold forever) the lock.
kwokctl() { "$bin/kwokctl" "$@" 9>&-; }

k() { "$kubectl" --kubeconfig "$kubeconfig" --request-timeout=10s "$@"; }

# The controller-manager's client limits the cluster was created with (kwok.yaml lists every
# component's arguments), one a line, sorted: a reused cluster must have the ones asked for.
kcm_limits() { grep -oE -- '--kube-api-(qps|burst)=[0-9]+' "$1" | sort || true; }

# kwokctl-config.yaml with the per-cluster front-proxy cert dir filled in: the
# config kwokctl creates the cluster with (written to $dir/kwokctl-config.yaml).
render_config() {
  local s
  s="$(<"$here/kwokctl-config.yaml")"
  printf '%s\n' "${s//@FRONT_PROXY_DIR@/"$fp_dir"}"
}

# extraArgs of kwokctl-config.yaml that the cluster's components were not started
# with (e.g. a cluster created before the front-proxy flags existed), one a line.
missing_args() {
  comm -23 <(config_extra_args <(render_config)) <(cluster_component_args "$dir/kwok.yaml")
}
front_proxy_files() {
  local f
  for f in front-proxy-ca.crt front-proxy-client.crt front-proxy-client.key; do
    [[ -s "$fp_dir/$f" ]] || return 1
  done
}

components_alive() {
  local c
  for c in "${CLUSTER_COMPONENTS[@]}"; do
    pid_alive "$(component_pid "$name" "$c")" || return 1
  done
}

cluster_healthy() {
  [[ -f "$dir/kwok.yaml" && -f "$kubeconfig" ]] || return 1
  components_alive || return 1
  k get --raw=/readyz >/dev/null 2>&1
}

# /healthz of a component's secure port (kwokctl allows it unauthenticated).
component_healthy() {
  local port
  port="$(sed -n "s/^  $1Port: *\([0-9]*\)$/\1/p" "$dir/kwok.yaml" | head -n1)"
  [[ -n "$port" ]] && curl -skf --max-time 3 "https://127.0.0.1:$port/healthz" >/dev/null
}

# Ready for tests = API up, controller-manager and scheduler healthy, default
# ServiceAccount exists (admission rejects pods until it does), fake node(s) Ready.
wait_usable() {
  retry_until 120 k get --raw=/readyz || die "apiserver not ready (logs: $dir/logs/kube-apiserver.log)"
  if command -v curl >/dev/null 2>&1; then
    retry_until 60 component_healthy kubeControllerManager ||
      die "kube-controller-manager not healthy (logs: $dir/logs/kube-controller-manager.log)"
    retry_until 60 component_healthy kubeScheduler ||
      die "kube-scheduler not healthy (logs: $dir/logs/kube-scheduler.log)"
  fi
  retry_until 60 k get serviceaccount default -n default ||
    die "no default ServiceAccount — is kube-controller-manager working? (logs: $dir/logs/kube-controller-manager.log)"
  k wait --for=condition=Ready node --all --timeout=60s >/dev/null ||
    die "fake node(s) not Ready (logs: $dir/logs/kwok-controller.log)"
}

if [[ -f "$dir/kwok.yaml" ]]; then
  if ! grep -qF "$bin/kube-apiserver" "$dir/kwok.yaml"; then
    # Created with other binaries (versions.env bumped): don't mix versions.
    log "cluster '$name' was created with different binaries; recreating it"
    delete_cluster "$name"
  elif [[ "$(kcm_limits "$dir/kwok.yaml")" != "$(printf '%s\n' "${kcm_args[@]}" | sed '/^$/d' | sort)" ]]; then
    log "cluster '$name' was created with other kube-controller-manager limits; recreating it"
    delete_cluster "$name"
  elif [[ -n "$(missing_args)" ]] || ! front_proxy_files; then
    log "cluster '$name' was created without some args of kwokctl-config.yaml or its front-proxy certs; recreating it"
    missing_args | sed 's/^/    missing: /' >&2
    delete_cluster "$name"
  elif cluster_healthy; then
    log "cluster '$name' already running"
    echo "$kubeconfig"
    exit 0
  else
    # Typically after a reboot or a killed component: start what is missing.
    log "cluster '$name' exists but is not healthy; starting missing components"
    # Drop pid files of dead processes so kwokctl restarts them (it only checks
    # kill -0, which a not-yet-reaped zombie still passes).
    for c in "${CLUSTER_COMPONENTS[@]}"; do
      pid_alive "$(component_pid "$name" "$c")" || rm -f "$dir/pids/$c.pid"
    done
    if kwokctl --name "$name" start cluster --wait 2m >&2 && cluster_healthy; then
      wait_usable
      log "cluster '$name' restarted in $((SECONDS - start))s"
      echo "$kubeconfig"
      exit 0
    fi
    log "restart failed; recreating cluster '$name'"
    delete_cluster "$name"
  fi
fi

log "creating cluster '$name' (kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
# The front-proxy certs exist before the cluster does (the apiserver's flags
# point at them); kwokctl adds its own pki/ next to them.
generate_front_proxy_pki "$fp_dir"
render_config >"$dir/kwokctl-config.yaml"
# --config: kwokctl-config.yaml, rendered: bind to 127.0.0.1, component flags
#   (incl. the front proxy), our kwok Stages (incl. the never-ready stage).
# --kubeconfig "": do NOT merge a context into the user's ~/.kube/config;
#   callers use the per-cluster kubeconfig printed below.
# --secure-port / --kube-authorization / --kube-admission are kwokctl's
#   defaults already; spelled out because the tests rely on RBAC being enforced.
kwokctl --name "$name" --config "$dir/kwokctl-config.yaml" \
  create cluster \
  --runtime binary \
  --kubeconfig "" \
  --secure-port=true \
  --kube-authorization=true \
  --kube-admission=true \
  --etcd-binary "$bin/etcd" \
  --kube-apiserver-binary "$bin/kube-apiserver" \
  --kube-controller-manager-binary "$bin/kube-controller-manager" \
  --kube-scheduler-binary "$bin/kube-scheduler" \
  --kwok-controller-binary "$bin/kwok" \
  "${kcm_args[@]/#--/--extra-args=kube-controller-manager=}" \
  --wait 2m >&2 ||
  die "kwokctl create cluster failed (logs: $dir/logs/)"

# Fake nodes: kwok-controller runs with --manage-all-nodes, so it "kubelets"
# every Node; `scale node` applies kwok's default node template (no taints,
# 32 CPU / 256Gi / 110 pods, named node-000000, node-000001, ...).
kwokctl --name "$name" scale node --replicas "$nodes" >&2 ||
  die "could not create fake nodes"

wait_usable
log "cluster '$name' ready in $((SECONDS - start))s (nodes: $nodes, logs: $dir/logs/)"
echo "$kubeconfig"
