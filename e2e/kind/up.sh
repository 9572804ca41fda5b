#!/usr/bin/env bash
# up.sh — creates (or reuses) the kind cluster `wavelet-e2e` (KIND_CLUSTER), Kubernetes
# v1.34 on one node, with metrics-server, and loads the platform's images into it
# (scripts/images.sh: wavelet-server, wavelet-operator and the two bundle images). Prints
# the kubeconfig path as the last stdout line; progress goes to stderr.
#
#   export KUBECONFIG="$(e2e/kind/up.sh | tail -n1)"
#
# With no registry (this machine) the node image is built here (node-image.sh) and the
# cluster runs a static ptp CNI (kindnetd cannot be fetched). With a registry, skip that:
#   KIND_NODE_IMAGE=kindest/node:v1.34.0 e2e/kind/up.sh      (kind's default CNI)
#
# Docker: the running daemon if it can start privileged containers, else a private one
# (scripts/docker-env.sh). Everything lives under ${WAVELET_CACHE:-~/.cache/wavelet-platform}.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=../cluster/gobuild.sh
source "$here/../cluster/gobuild.sh"
# shellcheck source=versions.env
source "$here/versions.env"
name="${KIND_CLUSTER:-wavelet-e2e}"
validate_cluster_name "$name"
start=$SECONDS

# Images first: this also starts (or finds) the Docker daemon.
eval "$("$root/scripts/images.sh" | tail -n1)"
# kind runs `docker` from PATH: make it the CLI docker-env chose.
shim="$WAVELET_CACHE_ROOT/kind/bin"
mkdir -p "$shim"
ln -sfn "$DOCKER" "$shim/docker"
export PATH="$shim:$PATH"

kind="$("$here/build.sh" kind | tail -n1)/kind"
k8s_bin="$("$here/../cluster/build.sh" | tail -n1)"
dir="$WAVELET_CACHE_ROOT/kind/$name"
kubeconfig="$dir/kubeconfig"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock -w 600 9 || die "timed out waiting for another up/down of '$name'"
k() { "$k8s_bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }

# kind's default, spelled out: reject_unrouted_services names it.
service_subnet=10.96.0.0/16
# A packet to a Service address that kube-proxy has not (yet) rewritten to a pod's leaves by the
# node's default route. A real network drops it; this machine's answers TLS on every address
# (404 to everything), and the API server keeps such a connection open and reuses it: an
# APIService created with its Service (the chart's custom metrics API, metrics-server) would stay
# unavailable. The node refuses those packets instead, so the first attempt fails and the next
# one, made once kube-proxy has the Service, reaches the pods. Idempotent; rules last as long as
# the node's container.
reject_unrouted_services() {
  local chain
  for chain in OUTPUT FORWARD; do
    docker exec "$name-control-plane" iptables -C "$chain" -d "$service_subnet" -j REJECT 2>/dev/null ||
      docker exec "$name-control-plane" iptables -I "$chain" -d "$service_subnet" -j REJECT
  done
}

offline=true
if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
  node_image="$KIND_NODE_IMAGE"
  offline=false
else
  node_image="$("$here/node-image.sh" | tail -n1)"
fi

metrics_api() { k get --raw /apis/metrics.k8s.io/v1beta1/nodes; }
# A node restarted with the daemon (the private one dies with the session that started it)
# comes back with an API server whose connection to metrics-server goes nowhere (see the
# APIService below): such a cluster is made again rather than reused.
healthy() {
  "$kind" get clusters 2>/dev/null | grep -qx "$name" &&
    [[ "$(docker inspect -f '{{.Config.Image}}' "$name-control-plane" 2>/dev/null)" == "$node_image" ]] &&
    retry_until 60 k get --raw /readyz && retry_until 30 metrics_api
}
if healthy; then
  log "reusing cluster '$name'"
else
  if "$kind" get clusters 2>/dev/null | grep -qx "$name"; then
    log "cluster '$name' exists but is unhealthy or runs another node image; recreating it"
    "$kind" delete cluster --name "$name" --kubeconfig "$kubeconfig" >&2
  fi
  mkdir -p /lib/modules # kind bind-mounts it
  log "creating cluster '$name' from $node_image"
  t=$SECONDS
  "$kind" create cluster --name "$name" --image "$node_image" --kubeconfig "$kubeconfig" --wait 180s --config - >&2 <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: $offline
  kubeProxyMode: iptables
  serviceSubnet: $service_subnet
nodes:
  - role: control-plane
EOF
  log "cluster created in $((SECONDS - t))s"
  # --wait covers the node only; clients need DNS.
  k -n kube-system rollout status deployment/coredns --timeout=180s >&2

  # metrics-server from its own release manifests (the module source), for the HPA.
  ms_src="$(go_env && moddir sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION")"
  kustom="$dir/metrics-server"
  rm -rf "$kustom"
  mkdir -p "$kustom"
  cp -r "$ms_src/manifests/base" "$kustom/base"
  cat >"$kustom/kustomization.yaml" <<EOF
resources: [base]
images:
  - name: gcr.io/k8s-staging-metrics-server/metrics-server
    newName: registry.k8s.io/metrics-server/metrics-server
    newTag: $METRICS_SERVER_VERSION
patches:
  # kind's kubelets serve self-signed certificates.
  - target: {kind: Deployment, name: metrics-server}
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --kubelet-insecure-tls
EOF
  reject_unrouted_services
  k apply -k "$kustom" >&2
  k -n kube-system rollout status deployment/metrics-server --timeout=180s >&2
fi
reject_unrouted_services

# Our images (WAVELET_IMAGES, from images.sh): kind load skips what the node already has.
log "loading $WAVELET_IMAGES"
# shellcheck disable=SC2086 # a list of image names
"$kind" load docker-image --name "$name" $WAVELET_IMAGES >&2
# A registry would give each image a manifest digest that pods can pin (bundle.image must be
# name@sha256:...). With no registry, record the same reference in the node's containerd, as a
# pull by digest would: name@<digest of the manifest the node holds>.
node="$name-control-plane"
for image in $WAVELET_IMAGES; do
  ref="docker.io/library/$image"
  digest="$(docker exec "$node" ctr -n k8s.io images ls "name==$ref" | awk 'NR == 2 {print $3}')"
  [[ "$digest" == sha256:* ]] || die "no digest for $ref in the node"
  docker exec "$node" ctr -n k8s.io images tag --force "$ref" "${ref%:*}@$digest" >/dev/null
done
retry_until 120 metrics_api || die "the metrics API does not answer"
log "cluster '$name' ready in $((SECONDS - start))s"
echo "$kubeconfig"
