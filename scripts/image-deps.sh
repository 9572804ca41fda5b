#!/usr/bin/env bash
# Installs, from the lock file, the npm dependencies an image of one workspace needs:
#   image-deps.sh <server|operator> <out> [build] [prod]
#   <out>/build/node_modules  what the image's build stage compiles with (dev tools included)
#   <out>/prod/node_modules   what the image ships: production dependencies only
#   <out>/vendor/             files fetched from the registry besides packages (server: ReDoc)
# The same script serves both ways of building an image: Dockerfile.server/.operator run it
# inside the build (default, with a registry); scripts/images.sh runs it outside for the
# offline build, whose containers cannot reach the npm registry, and the Dockerfiles COPY
# the result in (build argument DEPS=context).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ws=$1 out=$2
shift 2
(($#)) || set -- build prod
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$root/package.json" "$root/package-lock.json" "$root/.npmrc" "$tmp/"
for w in server operator; do mkdir -p "$tmp/$w" && cp "$root/$w/package.json" "$tmp/$w/"; done
export ONNXRUNTIME_NODE_INSTALL=skip
for kind in "$@"; do
  case "$kind" in
  build) flags=(--include-workspace-root) ;;
  prod) flags=(--omit=dev) ;;
  *) echo "image-deps: unknown kind '$kind' (build or prod)" >&2; exit 2 ;;
  esac
  (cd "$tmp" && npm ci --workspace "$ws" "${flags[@]}" --no-audit --no-fund --loglevel=error) >&2
  # The workspace's own link (node_modules/@wavelet/<ws> -> ../../<ws>) means nothing in an image.
  rm -rf "$tmp/node_modules/@wavelet" "$out/$kind"
  mkdir -p "$out/$kind"
  mv "$tmp/node_modules" "$out/$kind/node_modules"
done
[[ "$ws" == server ]] && "$root/scripts/vendor-redoc.sh" "$out/vendor"
exit 0
