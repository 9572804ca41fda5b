#!/usr/bin/env bash
# build.sh — build a local Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl), etcd and kwok/kwokctl from
# the Go module proxy only. No GitHub, dl.k8s.io or container registry needed.
#
# Usage: e2e/cluster/build.sh            # prints the bin dir as the last stdout line
#
# Output: ${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}/k8s/<key>/bin/
#   key = <k8s-version>-etcd<etcd-version>-kwok<kwok-version>   (see versions.env)
# The Go module cache and build cache live under the same cache root
# (go/mod, go/build), so a rebuild after a version bump reuses most work.
# If every binary already exists, the script exits immediately.
#
# Env knobs:
#   WAVELET_CACHE        cache root (default $HOME/.cache/wavelet-platform)
#   WAVELET_BUILD_JOBS   go build -p parallelism (default 2; the machine is shared)
#   GOPROXY              honoured as-is (default proxy.golang.org works here)
#
# Measured on the 2-core shared dev VM (Go 1.26.8, -p=2), details in README.md:
#   cold (empty module cache + build cache): 8m03s (12m36s while the box was busier)
#   warm (all binaries present):             0.02s
#   binaries deleted, Go caches warm:        17.5s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# lib.sh reads versions.env and defines the cache layout, log and die.
# shellcheck source=lib.sh
source "$here/lib.sh"

: "${K8S_VERSION:?K8S_VERSION missing from versions.env}"
: "${ETCD_VERSION:?ETCD_VERSION missing from versions.env}"
: "${KWOK_VERSION:?KWOK_VERSION missing from versions.env}"

cache_root="$WAVELET_CACHE_ROOT"
key="$K8S_BUILD_KEY" # <k8s>-etcd<ver>-kwok<ver>
out="$K8S_BUILD_DIR"
bin="$K8S_BIN_DIR"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)

all_built() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

# Fast path: nothing to do (this is what tests hit on every run).
if all_built; then
  log "all binaries present"
  echo "$bin"
  exit 0
fi

# --- prerequisites ----------------------------------------------------------
command -v go >/dev/null 2>&1 ||
  die "'go' not found on PATH (need Go >= 1.26; e.g. export PATH=/usr/local/go/bin:\$PATH)"
command -v flock >/dev/null 2>&1 || die "'flock' not found on PATH (util-linux)"
go_version="$(go env GOVERSION)" # e.g. go1.26.8
go_mm="${go_version#go}"
go_major="${go_mm%%.*}"
go_minor="$(cut -d. -f2 <<<"$go_mm")"
# etcd v3.6.16 and kwok v0.8.0 declare `go 1.26.0` in their go.mod; with
# GOTOOLCHAIN=local an older Go would fail deep inside the build, so fail early.
if ((go_major < 1 || (go_major == 1 && go_minor < 26))); then
  die "Go >= 1.26 required (found $go_version at $(command -v go))"
fi

mkdir -p "$out"
# Serialise concurrent builds (e.g. two test runs starting at once): the second
# one waits and then finds everything built.
exec 9>"$out/.build.lock"
if ! flock -n 9; then
  log "another build.sh is running for $key; waiting for it"
  flock 9
fi
if all_built; then
  echo "$bin"
  exit 0
fi

# --- Go environment: everything under the cache root, nothing downloaded but modules
export GOMODCACHE="$cache_root/go/mod"
export GOCACHE="$cache_root/go/build"
export GOTOOLCHAIN=local # never try to download a Go toolchain
export GOWORK=off
export GOFLAGS="-p=${WAVELET_BUILD_JOBS:-2} -buildvcs=false -trimpath"
export CGO_ENABLED=0 # static binaries; upstream builds these components without cgo too
mkdir -p "$GOMODCACHE" "$GOCACHE"

src="$out/src"   # generated wrapper modules (kept for debugging / go.sum reuse)
stage="$out/stage" # binaries land here first, moved into bin/ only when all succeeded
rm -rf "$stage"
mkdir -p "$src" "$stage"

start=$SECONDS

# Print the local path of <module>@<version>'s go.mod (downloads it if needed).
modfile() {
  local json
  json="$(cd "$src" && go mod download -json "$1@$2")" ||
    die "cannot fetch $1@$2 from the Go module proxy (GOPROXY=$(go env GOPROXY))"
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$json"
}

# Print the .info "Time" of <module>@<version> (used as a reproducible buildDate).
modtime() {
  local json
  json="$(cd "$src" && go mod download -json "$1@$2")"
  sed -n 's/^[[:space:]]*"Info": "\(.*\)",*$/\1/p' <<<"$json" |
    xargs cat | sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p'
}

# Copy the `go` and `godebug` directives of an upstream go.mod, so the wrapper
# main module gets the same language version and GODEBUG defaults upstream
# ships with (e.g. kubernetes pins `godebug default=go1.24`).
go_directives() {
  grep -E '^(go|godebug) ' "$1" || true
}

# --- 1. Kubernetes ----------------------------------------------------------
build_kubernetes() {
  local dir="$src/kubernetes" upstream staging_version m
  mkdir -p "$dir"
  log "kubernetes $K8S_VERSION: resolving modules"
  upstream="$(modfile k8s.io/kubernetes "$K8S_VERSION")"
  [[ -s "$upstream" ]] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION"

  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
  # with ./staging/src/k8s.io/*; replace directives of dependencies are ignored
  # by Go, so the wrapper must re-point every one of them at the published
  # v0.<minor>.<patch> tag of the same release.
  staging_version="v0.${K8S_VERSION#v1.}"
  local staging
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$upstream")"
  [[ -n "$staging" ]] || die "could not find the staging replace block in $upstream"

  {
    echo "// Generated by e2e/cluster/build.sh — throwaway wrapper module, do not commit."
    echo "module wavelet.local/build/kubernetes"
    echo
    go_directives "$upstream"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
    echo
    echo "tool ("
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
    echo "	k8s.io/kubernetes/cmd/kube-scheduler"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo ")"
  } >"$dir/go.mod"
  log "kubernetes: $(wc -w <<<"$staging") staging modules replaced with $staging_version"

  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the kubernetes wrapper ($dir/go.mod)"

  # Same version stamping as hack/lib/version.sh, so `kube-apiserver --version`
  # says v1.34.x and kwokctl (which parses that output) picks matching flags.
  local minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local build_date x ldflags="-s -w"
  build_date="$(modtime k8s.io/kubernetes "$K8S_VERSION")"
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $x.gitVersion=$K8S_VERSION -X $x.gitMajor=1 -X $x.gitMinor=$minor"
    ldflags+=" -X $x.gitTreeState=clean -X $x.buildDate=${build_date:-1970-01-01T00:00:00Z}"
  done

  log "kubernetes: compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (slow when cold)"
  (cd "$dir" && go build -ldflags "$ldflags" -o "$stage/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl) || die "kubernetes build failed"
}

# --- 2. etcd ------------------------------------------------------------------
build_etcd() {
  local dir="$src/etcd" upstream
  mkdir -p "$dir"
  log "etcd $ETCD_VERSION: resolving modules"
  # go.etcd.io/etcd/server/v3's root package is the etcd main (wrapper around etcdmain).
  upstream="$(modfile go.etcd.io/etcd/server/v3 "$ETCD_VERSION")"
  {
    echo "// Generated by e2e/cluster/build.sh — throwaway wrapper module, do not commit."
    echo "module wavelet.local/build/etcd"
    echo
    go_directives "$upstream"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "tool go.etcd.io/etcd/server/v3"
  } >"$dir/go.mod"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the etcd wrapper ($dir/go.mod)"
  log "etcd: compiling"
  (cd "$dir" && go build -ldflags "-s -w" -o "$stage/etcd" go.etcd.io/etcd/server/v3) ||
    die "etcd build failed"
}

# --- 3. kwok / kwokctl --------------------------------------------------------
build_kwok() {
  local dir="$src/kwok" upstream
  mkdir -p "$dir"
  log "kwok $KWOK_VERSION: resolving modules"
  upstream="$(modfile sigs.k8s.io/kwok "$KWOK_VERSION")"
  {
    echo "// Generated by e2e/cluster/build.sh — throwaway wrapper module, do not commit."
    echo "module wavelet.local/build/kwok"
    echo
    go_directives "$upstream"
    echo
    echo "require sigs.k8s.io/kwok $KWOK_VERSION"
    echo
    echo "tool ("
    echo "	sigs.k8s.io/kwok/cmd/kwok"
    echo "	sigs.k8s.io/kwok/cmd/kwokctl"
    echo ")"
  } >"$dir/go.mod"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the kwok wrapper ($dir/go.mod)"
  # Like kwok's hack/releases.sh: stamp the version and make kwokctl default to
  # OUR Kubernetes version (it otherwise assumes its own default, 1.36.x).
  local ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
  ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
  log "kwok: compiling kwok, kwokctl"
  (cd "$dir" && go build -ldflags "$ldflags" -o "$stage/" \
    sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl) || die "kwok build failed"
}

# Small ones first so problems with the proxy show up quickly.
build_etcd
build_kwok
build_kubernetes

for b in "${binaries[@]}"; do
  [[ -x "$stage/$b" ]] || die "build finished but $b is missing from $stage"
done
mkdir -p "$bin"
for b in "${binaries[@]}"; do mv -f "$stage/$b" "$bin/$b"; done
rmdir "$stage" 2>/dev/null || true

cat >"$out/build-info.txt" <<EOF
key=$key
K8S_VERSION=$K8S_VERSION
ETCD_VERSION=$ETCD_VERSION
KWOK_VERSION=$KWOK_VERSION
go=$go_version
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$((SECONDS - start))
EOF

log "done in $((SECONDS - start))s: $(cd "$bin" && echo "${binaries[*]}")"
log "$("$bin/kube-apiserver" --version 2>&1 | head -1); $("$bin/etcd" --version 2>&1 | head -1); $("$bin/kwokctl" --version 2>&1 | head -1)"
echo "$bin"
