#!/usr/bin/env bash
# down.sh — removes every trace of the kind cluster `wavelet-e2e` (KIND_CLUSTER): the node
# container, kind's docker network when nothing else uses it, the kubeconfig and work files,
# and the private dockerd if scripts/docker-env.sh started one. Safe when nothing exists.
# Caches stay (built binaries and images, under ${WAVELET_CACHE:-~/.cache/wavelet-platform}).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
name="${KIND_CLUSTER:-wavelet-e2e}"
validate_cluster_name "$name"
dir="$WAVELET_CACHE_ROOT/kind/$name"
private_sock="$WAVELET_CACHE_ROOT/docker/docker.sock"

if [[ -z "${DOCKER_HOST:-}" && -S "$private_sock" ]]; then export DOCKER_HOST="unix://$private_sock"; fi
docker_cli="$(command -v docker || echo /usr/bin/docker)"
[[ -x "$WAVELET_CACHE_ROOT/kind/bin/docker" ]] && docker_cli="$WAVELET_CACHE_ROOT/kind/bin/docker"
if "$docker_cli" info >/dev/null 2>&1; then
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock -w 600 9 || die "timed out waiting for another up/down of '$name'"
  kind="$WAVELET_CACHE_ROOT/kind-tools/bin/kind"
  if [[ -x "$kind" ]]; then
    PATH="$(dirname "$docker_cli"):$PATH" "$kind" delete cluster --name "$name" --kubeconfig "$dir/kubeconfig" >&2 || true
  fi
  # kind's labels find the node containers even without the kind binary.
  for c in $("$docker_cli" ps -aq --filter "label=io.x-k8s.kind.cluster=$name"); do "$docker_cli" rm -f -v "$c" >/dev/null; done
  if "$docker_cli" network inspect kind >/dev/null 2>&1 &&
    [[ "$("$docker_cli" network inspect -f '{{len .Containers}}' kind)" == 0 ]]; then
    "$docker_cli" network rm kind >/dev/null
  fi
  exec 9>&-
fi
rm -rf "$dir"
if [[ "${DOCKER_HOST:-}" == "unix://$private_sock" ]] && [[ -z "$("$docker_cli" ps -q 2>/dev/null)" ]]; then
  "$root/scripts/docker-env.sh" --stop
fi
log "cluster '$name' removed"
