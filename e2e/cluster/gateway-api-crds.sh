#!/usr/bin/env bash
# gateway-api-crds.sh — the Gateway API's standard-channel CRDs (gateway.networking.k8s.io:
# HTTPRoute, Gateway, GatewayClass, ...) at GATEWAY_API_VERSION, from its Go module (the proxy
# serves it; its config/crd/standard holds the CRDs the project releases as standard-install.yaml),
# kept in the module cache by version. Prints the directory of the CRD files as the LAST line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=gobuild.sh
source "$here/gobuild.sh"
: "${GATEWAY_API_VERSION:?GATEWAY_API_VERSION missing from versions.env}"
go_env
dir="$(moddir sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION")/config/crd/standard"
[[ -f "$dir/gateway.networking.k8s.io_httproutes.yaml" ]] || die "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION has no config/crd/standard"
echo "$dir"
