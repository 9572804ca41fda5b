#!/usr/bin/env bash
# sa-kubeconfig.sh <namespace> <serviceaccount> [cluster-name] [duration]
#
# Mint a short-lived token for a ServiceAccount (TokenRequest API, i.e.
# `kubectl create token`) and write a kubeconfig that authenticates ONLY with
# that token — no admin client certificate — so RBAC applies exactly as it
# would to an in-cluster operator. Prints the kubeconfig path as the last line.
# Creates the namespace/ServiceAccount if missing; grants nothing.
# The file lives in the cluster's work dir and disappears with down.sh.
#
#   KUBECONFIG="$(e2e/cluster/sa-kubeconfig.sh wavelet-system operator | tail -n1)" kubectl get pods
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

[[ $# -ge 2 ]] || die "usage: sa-kubeconfig.sh <namespace> <serviceaccount> [cluster-name] [duration, default 24h]"
namespace="$1"
sa="$2"
name="${3:-wavelet}"
duration="${4:-24h}"
validate_cluster_name "$name"
require_binaries

admin="$(cluster_kubeconfig "$name")"
[[ -f "$admin" ]] || die "cluster '$name' does not exist (run up.sh)"
k() { "$K8S_BIN_DIR/kubectl" --kubeconfig "$admin" --request-timeout=20s "$@"; }

k get namespace "$namespace" >/dev/null 2>&1 || k create namespace "$namespace" >&2
k -n "$namespace" get serviceaccount "$sa" >/dev/null 2>&1 || k -n "$namespace" create serviceaccount "$sa" >&2
token="$(k -n "$namespace" create token "$sa" --duration="$duration")"
server="$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(k config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')"

out="$(cluster_dir "$name")/sa-$namespace-$sa.kubeconfig.yaml"
umask 077 # it holds a bearer token
cat >"$out" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: $namespace-$sa
  user:
    token: $token
contexts:
- name: $namespace-$sa@$name
  context:
    cluster: $name
    user: $namespace-$sa
    namespace: $namespace
current-context: $namespace-$sa@$name
YAML
log "token for system:serviceaccount:$namespace:$sa valid for $duration"
echo "$out"
