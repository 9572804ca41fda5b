#!/usr/bin/env bash
# validate.sh [dashboard.json...] — checks Grafana dashboards offline, without Grafana:
#   1. (with no arguments) `go test` of the validator: the shipped dashboards pass and each
#      fixture in validate/testdata fails with its expected message;
#   2. grafana-validate: each dashboard against the Grafana Foundation SDK's schema (strict
#      unmarshal, Validate) and the project's rules (see validate/main.go);
#   3. `promtool check rules` on every panel query, variables substituted, as a recording
#      rule: a PromQL syntax error in any panel fails without a running Prometheus.
# validate.sh --queries [dashboard.json...] prints "<panel title>\t<expr>" per query instead,
# with the variables substituted as for the live check below (for a query run against a
# real Prometheus).
#
# Default: every monitoring/grafana/dashboards/*.json. The validator is built once from the
# Go module proxy into ${WAVELET_CACHE:-~/.cache/wavelet-platform}/tools/grafana-validate-<hash
# of its sources>. Needs go (>= 1.26) and promtool (Debian: apt-get install prometheus).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../e2e/cluster/lib.sh
source "$here/../../e2e/cluster/lib.sh"
# shellcheck source=../../e2e/cluster/gobuild.sh
source "$here/../../e2e/cluster/gobuild.sh"

# What Grafana would send for the dashboard's defaults (job financial-api, all instances and
# models), with the 1m rate interval of a 15s scrape.
substitutions=(-set job=financial-api -set 'instance=.*' -set 'model=.*' -set __rate_interval=1m)

mode=check
if [[ "${1:-}" == --queries ]]; then
  mode=queries
  shift
fi
run_tests=false
if (($# == 0)); then
  run_tests=true
  shopt -s nullglob
  set -- "$here"/dashboards/*.json
  shopt -u nullglob
  (($# > 0)) || die "no dashboards in $here/dashboards"
fi

go_env
src="$here/validate"
mapfile -t sources < <(find "$src" -maxdepth 1 -name '*.go' ! -name '*_test.go' | sort)
key="$(cat "$src/go.mod" "$src/go.sum" "${sources[@]}" | sha256sum | cut -c1-12)"
tools="$WAVELET_CACHE_ROOT/tools"
bin="$tools/grafana-validate-$key"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$tools"
  exec 9>"$tools/grafana-validate.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    start=$SECONDS
    (cd "$src" && go build -o "$bin.tmp" .) ||
      die "building the validator failed (it needs github.com/grafana/grafana-foundation-sdk/go from GOPROXY=$(go env GOPROXY))"
    mv "$bin.tmp" "$bin"
    log "built $bin in $((SECONDS - start))s"
  fi
  exec 9>&-
fi

if [[ $mode == queries ]]; then
  exec "$bin" -queries "${substitutions[@]}" "$@"
fi

command -v promtool >/dev/null || die "promtool not found (Debian: apt-get install prometheus)"
if $run_tests; then
  # -count=1: with go_env's -trimpath, Go's test cache does not notice a changed dashboard.
  (cd "$src" && go test -count=1 ./...) || die "the validator's tests failed"
fi
"$bin" "$@" || die "invalid dashboard(s): see above"

rules="$(mktemp --suffix=.yml)"
trap 'rm -f "$rules"' EXIT
"$bin" -rules "${substitutions[@]}" "$@" >"$rules" 2>/dev/null
promtool check rules "$rules" >&2 || die "a dashboard query is not valid PromQL (group = file, panel id and title)"
log "ok: $* — schema, rules and PromQL syntax"
