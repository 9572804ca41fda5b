#!/usr/bin/env bash
# monitoring-crds.sh — the Prometheus operator's CRDs (monitoring.coreos.com: ServiceMonitor,
# PodMonitor, PrometheusRule, ...) at PROMETHEUS_OPERATOR_VERSION, from its Go module (the
# proxy serves it; its example/prometheus-operator-crd holds the CRDs the project releases).
# Prints the directory of the CRD files as the LAST line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=gobuild.sh
source "$here/gobuild.sh"
: "${PROMETHEUS_OPERATOR_VERSION:?PROMETHEUS_OPERATOR_VERSION missing from versions.env}"
go_env
module=github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION
dir="$GOMODCACHE/$module/example/prometheus-operator-crd"
if [[ ! -f "$dir/monitoring.coreos.com_prometheusrules.yaml" ]]; then
  log "downloading $module from the Go module proxy"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && go mod init crds >/dev/null 2>&1 && go mod download "$module") ||
    die "could not download $module (is the Go module proxy reachable?)"
fi
[[ -f "$dir/monitoring.coreos.com_prometheusrules.yaml" ]] || die "$module has no example/prometheus-operator-crd"
echo "$dir"
