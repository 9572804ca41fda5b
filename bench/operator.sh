#!/usr/bin/env bash
# Operator benchmark on its own local control plane (3 kwok nodes, so 200+ fake pods fit):
#   bench/operator.sh [N]      (default 200 WaveletModels)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/node-deps.sh
npx tsc -b
kubeconfig=$(WAVELET_KWOK_NODES=3 e2e/cluster/up.sh wavelet-bench | tail -n1)
bin=$(e2e/cluster/build.sh | tail -n1)
trap 'e2e/cluster/down.sh wavelet-bench >/dev/null 2>&1 || true' EXIT
KUBECONFIG=$kubeconfig "$bin/kubectl" apply --server-side -f crds/waveletmodel.yaml >/dev/null
KUBECONFIG=$kubeconfig "$bin/kubectl" wait --for=condition=Established crd/waveletmodels.wavelet.dev --timeout=60s >/dev/null
KUBECONFIG=$kubeconfig node bench/operator.mjs "${1:-200}"
