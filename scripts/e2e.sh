#!/usr/bin/env bash
# The kind tier (make e2e): the images as Docker runs them (e2e/images), docker-compose.yml with
# local stand-ins for the public images (e2e/compose), then a kind cluster built offline (e2e/kind/up.sh: Docker from Debian,
# Kubernetes, kind, helm and metrics-server from the Go module proxy, our images), the
# operator installed by its Helm chart, and the scenarios of e2e/kind/test with real server
# pods and traffic. Installs what it needs. KEEP_CLUSTER=1 keeps the cluster afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/system-deps.sh
scripts/node-deps.sh
npx tsc -b
# The images first (what up.sh loads into the cluster), then the cluster's scenarios.
npx vitest run --project images
e2e/compose/test.sh
npx vitest run --project e2e-kind
