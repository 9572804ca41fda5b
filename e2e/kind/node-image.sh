#!/usr/bin/env bash
# node-image.sh — builds a kind node image for Kubernetes $K8S_VERSION with no registry and
# no GitHub, doing what `kind build node-image` does from pieces built here:
#   1. component images tagged exactly as `kubeadm config images list` asks (kube-apiserver,
#      kube-controller-manager, kube-scheduler, kube-proxy, etcd, coredns, pause) plus
#      metrics-server, each a small image of a binary built from the Go module proxy;
#   2. the node base (node/Dockerfile: kind v0.30.0's images/base with Debian's containerd,
#      runc and CNI plugins, a static ptp CNI config in place of kindnetd);
#   3. kubelet, kubeadm and kubectl copied in, the component images preloaded into the
#      node's containerd and pinned, the result committed.
# Expects DOCKER and DOCKER_HOST (scripts/docker-env.sh). Prints the image name last.
# Cached: the image tag is a hash of everything it is built from.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=../cluster/gobuild.sh
source "$here/../cluster/gobuild.sh"
# shellcheck source=versions.env
source "$here/versions.env"
: "${DOCKER:?run under scripts/docker-env.sh (DOCKER, DOCKER_HOST)}"
docker() { "$DOCKER" "$@"; }

# Everything the image is built from: versions, how binaries are built, the node's files.
inputs=$(cat "$here/../cluster/versions.env" "$here/../cluster/build.sh" "$here/../cluster/gobuild.sh" \
  "$here/versions.env" "$here/build.sh" "$here/node-image.sh" "$here"/node/* "$root/images/offline/versions.env" |
  sha256sum | cut -c1-12)
image="wavelet-kind/node:$K8S_VERSION-$inputs"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
start=$SECONDS

k8s_bin="$("$here/../cluster/build.sh" | tail -n1)"
tools_bin="$("$here/build.sh" coredns crictl pause metrics-server | tail -n1)"
debian="$("$root/images/offline/base.sh" debian)"
work="$(mktemp -d)"
container=""
cleanup() {
  [[ -n "$container" ]] && docker rm -f "$container" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. component images ------------------------------------------------------------------
# import_binary <tag> <binary> [docker import --change ...]: a FROM-scratch image of one binary.
import_binary() {
  local tag=$1 binary=$2 dir="$work/$(basename "$2")"
  shift 2
  mkdir -p "$dir/usr/local/bin"
  cp "$binary" "$dir/usr/local/bin/"
  tar -C "$dir" --owner=0 --group=0 -c usr | docker import --change 'ENV PATH=/usr/local/bin' "$@" - "$tag" >/dev/null
}
reg=registry.k8s.io
components=()
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  import_binary "$reg/$c:$K8S_VERSION" "$k8s_bin/$c"
  components+=("$reg/$c:$K8S_VERSION")
done
import_binary "$reg/etcd:$ETCD_IMAGE_TAG" "$k8s_bin/etcd"
import_binary "$reg/coredns/coredns:$COREDNS_VERSION" "$tools_bin/coredns" --change 'ENTRYPOINT ["/usr/local/bin/coredns"]'
import_binary "$reg/pause:$PAUSE_VERSION" "$tools_bin/pause" --change 'USER 65535:65535' --change 'ENTRYPOINT ["/usr/local/bin/pause"]'
import_binary "$reg/metrics-server/metrics-server:$METRICS_SERVER_VERSION" "$tools_bin/metrics-server" \
  --change 'USER 65534:65534' --change 'ENTRYPOINT ["/usr/local/bin/metrics-server"]'
components+=("$reg/etcd:$ETCD_IMAGE_TAG" "$reg/coredns/coredns:$COREDNS_VERSION" "$reg/pause:$PAUSE_VERSION"
  "$reg/metrics-server/metrics-server:$METRICS_SERVER_VERSION" "$reg/kube-proxy:$K8S_VERSION")
mkdir -p "$work/kube-proxy"
cp "$k8s_bin/kube-proxy" "$work/kube-proxy/"
log "building $reg/kube-proxy:$K8S_VERSION"
docker build -q -f "$here/node/kube-proxy.Dockerfile" --build-arg BASE_IMAGE="$debian" \
  -t "$reg/kube-proxy:$K8S_VERSION" "$work/kube-proxy" >/dev/null

# --- 2. the node base -------------------------------------------------------------------------
go_env
kind_src="$(moddir sigs.k8s.io/kind "$KIND_VERSION")"
[[ -d "$kind_src/images/base/files" ]] || die "kind $KIND_VERSION module source not found (go mod download failed?)"
ctx="$work/base"
mkdir -p "$ctx"
cp -r "$kind_src/images/base/files" "$ctx/"
chmod -R u+w "$ctx"
cp "$here"/node/{Dockerfile,containerd-config.toml,10-wavelet-ptp.conflist} "$ctx/"
log "building the node base"
docker build -q --build-arg BASE_IMAGE="$debian" -t "wavelet-kind/node-base:$inputs" "$ctx" >/dev/null

# --- 3. binaries, preloaded images, commit ----------------------------------------------------
container="$(docker run -d --privileged --entrypoint=sleep "wavelet-kind/node-base:$inputs" infinity)"
for b in kubelet kubeadm kubectl; do docker cp -L "$k8s_bin/$b" "$container:/usr/bin/$b"; done
docker cp -L "$tools_bin/crictl" "$container:/usr/local/bin/crictl"
docker exec "$container" bash -c "chown root:root /usr/bin/kube* /usr/local/bin/crictl && mkdir -p /kind/manifests && echo $K8S_VERSION >/kind/version"
docker cp "$here/node/default-storage.yaml" "$container:/kind/manifests/default-storage.yaml"

# Every image kubeadm wants must be present, or the node would try to pull it.
wanted="$(docker exec "$container" kubeadm config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)"
for w in $wanted; do
  printf '%s\n' "${components[@]}" | grep -qx "$w" || die "kubeadm wants $w, which is not built (versions.env?)"
done

log "preloading ${#components[@]} images into the node's containerd"
docker exec "$container" bash -c 'nohup containerd >/dev/null 2>&1 &
  for i in $(seq 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1' ||
  die "containerd did not start in the build container"
docker save "${components[@]}" |
  docker exec -i "$container" ctr -n k8s.io images import --all-platforms --no-unpack --digests - >/dev/null
for c in "${components[@]}"; do
  docker exec "$container" ctr -n k8s.io images label "$c" io.cri-containerd.pinned=pinned >/dev/null
done
docker exec "$container" bash -c 'pkill containerd; for i in $(seq 50); do pgrep containerd >/dev/null || exit 0; sleep 0.2; done'
docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' "$container" "$image" >/dev/null
log "built $image in $((SECONDS - start))s"
echo "$image"
