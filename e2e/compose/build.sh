#!/usr/bin/env bash
# build.sh — Docker Compose v2 built from the Go module proxy as the standalone
# `docker-compose` binary (what the guide types). Prints the bin dir as the last stdout line.
#
#   e2e/compose/build.sh            # builds once, then instant
#   PATH="$(e2e/compose/build.sh | tail -1):$PATH" docker-compose version
#
# Cached by version under ${WAVELET_CACHE:-~/.cache/wavelet-platform}/compose/<version>/.
# Built inside the module's own source tree (a copy), so its go.mod, go.sum and `exclude`
# directives apply as upstream's Makefile build does (same tags, same version stamp).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=../cluster/gobuild.sh
source "$here/../cluster/gobuild.sh"
# shellcheck source=versions.env
source "$here/versions.env"

module=github.com/docker/compose/v2
dir="$WAVELET_CACHE_ROOT/compose/$COMPOSE_VERSION"
bin="$dir/bin"
mkdir -p "$dir"
if [[ ! -x "$bin/docker-compose" ]]; then
  exec 9>"$dir/.lock"
  flock 9
  if [[ ! -x "$bin/docker-compose" ]]; then
    go_env
    start=$SECONDS
    log "docker compose $COMPOSE_VERSION: building from the Go module proxy"
    src="$(moddir "$module" "$COMPOSE_VERSION")"
    [[ -f "$src/cmd/main.go" ]] || die "no cmd/main.go in $module@$COMPOSE_VERSION"
    rm -rf "$dir/src"
    cp -r "$src" "$dir/src"
    chmod -R u+w "$dir/src" # the module cache is read-only
    mkdir -p "$bin"
    # As upstream's Makefile: -tags e2e, -X internal.Version; -s for size.
    (cd "$dir/src" && go build -tags e2e \
      -ldflags "-s -w -X $module/internal.Version=$COMPOSE_VERSION" \
      -o "$bin/docker-compose.tmp" ./cmd) || die "docker compose build failed (see the go output above)"
    mv "$bin/docker-compose.tmp" "$bin/docker-compose"
    rm -rf "$dir/src"
    log "docker compose $COMPOSE_VERSION: built in $((SECONDS - start))s"
  fi
  exec 9>&-
fi
echo "$bin"
