#!/usr/bin/env bash
# build.sh — Argo Rollouts' controller, built from the Go module proxy (no GitHub, no image):
# the baseline bench/operator.sh compares our operator with. Prints the bin dir as the last
# stdout line; its CRDs (manifests/crds of the same module) are in ../crds next to it.
#
# Cached by version under ${WAVELET_CACHE:-~/.cache/wavelet-platform}/argo-rollouts-<version>/.
# argo-rollouts' go.mod `replace`s k8s.io/* (v0.0.0 => v0.29.3), which `go install module@version`
# refuses and a wrapper module would ignore, so it is built as the main module, from a
# writable copy of its module source. Cold: 7 min on 2 cores shared with e2e/cluster/build.sh;
# with warm Go caches: 5 s.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../e2e/cluster/lib.sh
source "$here/../../e2e/cluster/lib.sh"
# shellcheck source=../../e2e/cluster/gobuild.sh
source "$here/../../e2e/cluster/gobuild.sh"
# shellcheck source=versions.env
source "$here/versions.env"
script_name=argo-rollouts-build # log prefix (lib.sh would say "build", like e2e/cluster's)
: "${ARGO_ROLLOUTS_VERSION:?ARGO_ROLLOUTS_VERSION missing from versions.env}"

module=github.com/argoproj/argo-rollouts
version="$ARGO_ROLLOUTS_VERSION"
dir="$WAVELET_CACHE_ROOT/argo-rollouts-$version"
bin="$dir/bin"

built() { [[ -x "$bin/rollouts-controller" && -s "$dir/crds/rollout-crd.yaml" ]]; }
if built; then
  echo "$bin"
  exit 0
fi

go_env
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if ! built; then
  start=$SECONDS
  log "argo-rollouts $version: fetching the module"
  upstream="$(moddir "$module" "$version")"
  [[ -d "$upstream/cmd/rollouts-controller" ]] || die "no cmd/rollouts-controller in $upstream"
  src="$dir/src"
  rm -rf "$src" "$dir/crds.tmp"
  cp -r "$upstream" "$src"
  chmod -R u+w "$src" # the module cache is read-only
  # Stamped as its Makefile does; the module proxy knows no commit, so it says v1.8.5+unknown.
  pkg="$module/utils/version"
  ldflags="-s -w -X $pkg.version=${version#v} -X $pkg.gitTag=$version -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=$(modtime "$module" "$version")"
  log "argo-rollouts $version: compiling rollouts-controller (slow when cold)"
  mkdir -p "$bin"
  (cd "$src" && go build -ldflags "$ldflags" -o "$bin/rollouts-controller.tmp" ./cmd/rollouts-controller) ||
    die "rollouts-controller build failed"
  mkdir -p "$dir/crds.tmp"
  cp "$src"/manifests/crds/*-crd.yaml "$dir/crds.tmp/"
  rm -rf "$dir/crds" "$src"
  mv "$dir/crds.tmp" "$dir/crds"
  mv "$bin/rollouts-controller.tmp" "$bin/rollouts-controller"
  log "argo-rollouts $version: built in $((SECONDS - start))s ($("$bin/rollouts-controller" --version 2>/dev/null | head -n1))"
fi
exec 9>&-
echo "$bin"
