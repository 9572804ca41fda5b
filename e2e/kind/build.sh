#!/usr/bin/env bash
# build.sh [tool...] — the programs of the offline kind cluster, built from the Go module
# proxy (and one C file): kind, helm, coredns, crictl, metrics-server, pause. With no
# arguments, all of them. Prints the bin dir as the last stdout line.
#
# Each tool is cached by version under ${WAVELET_CACHE:-~/.cache/wavelet-platform}/kind-tools/
# <tool>-<version>/, so bumping one version rebuilds only that tool. The Kubernetes node
# binaries (kubelet, kubeadm, kube-proxy, kubectl) and etcd come from e2e/cluster/build.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=../cluster/gobuild.sh
source "$here/../cluster/gobuild.sh"
# shellcheck source=versions.env
source "$here/versions.env"

tools_root="$WAVELET_CACHE_ROOT/kind-tools"
bin="$tools_root/bin"
all=(kind helm coredns crictl metrics-server pause)
(($# == 0)) && set -- "${all[@]}"

version_of() {
  case "$1" in
  kind) echo "$KIND_VERSION" ;; helm) echo "$HELM_VERSION" ;; coredns) echo "$COREDNS_VERSION" ;;
  crictl) echo "$CRICTL_VERSION" ;; metrics-server) echo "$METRICS_SERVER_VERSION" ;; pause) echo "$PAUSE_VERSION" ;;
  *) die "unknown tool '$1' (known: ${all[*]})" ;;
  esac
}

# build_go <tool> <dir> <module> <version> <main package> <ldflags>
build_go() {
  tool_module "$2/$1.src" "$3" "$4" "$5"
  (cd "$2/$1.src" && go build -ldflags "-s -w $6" -o "$2/$1.tmp" "$5") || die "$1 build failed"
  mv "$2/$1.tmp" "$2/$1"
}

build() {
  local tool="$1" version dir
  version="$(version_of "$tool")"
  dir="$tools_root/$tool-$version"
  mkdir -p "$dir" "$bin"
  if [[ ! -x "$dir/$tool" ]]; then
    exec 9>"$dir/.lock"
    flock 9
    if [[ ! -x "$dir/$tool" ]]; then
      local start=$SECONDS
      log "$tool $version: building"
      case "$tool" in
      kind) build_go kind "$dir" sigs.k8s.io/kind "$version" sigs.k8s.io/kind "" ;;
      helm)
        build_go helm "$dir" helm.sh/helm/v3 "$version" helm.sh/helm/v3/cmd/helm \
          "-X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
        ;;
      coredns) build_go coredns "$dir" github.com/coredns/coredns "$version" github.com/coredns/coredns "" ;;
      crictl)
        build_go crictl "$dir" sigs.k8s.io/cri-tools "$version" sigs.k8s.io/cri-tools/cmd/crictl \
          "-X sigs.k8s.io/cri-tools/pkg/version.Version=${version#v}"
        ;;
      metrics-server)
        build_go metrics-server "$dir" sigs.k8s.io/metrics-server "$version" sigs.k8s.io/metrics-server/cmd/metrics-server \
          "-X k8s.io/client-go/pkg/version.gitVersion=$version" # as its Makefile stamps it
        ;;
      pause)
        # Kubernetes' pause container, compiled as upstream does (build/pause/Makefile).
        command -v gcc >/dev/null || die "gcc not found (Debian: apt-get install gcc libc6-dev)"
        local src
        src="$(moddir k8s.io/kubernetes "$K8S_VERSION")/build/pause/linux/pause.c"
        [[ -f "$src" ]] || die "no $src in the k8s.io/kubernetes module"
        gcc -Os -Wall -Werror -static -DVERSION="v$version" -o "$dir/pause.tmp" "$src" || die "pause build failed (static libc: libc6-dev)"
        strip "$dir/pause.tmp"
        mv "$dir/pause.tmp" "$dir/pause"
        ;;
      esac
      log "$tool $version: built in $((SECONDS - start))s"
    fi
    exec 9>&-
  fi
  ln -sfn "$dir/$tool" "$bin/$tool"
}

go_env
for t in "$@"; do build "$t"; done
echo "$bin"
