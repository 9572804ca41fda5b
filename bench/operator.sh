#!/usr/bin/env bash
# Blue-green controller benchmark: our operator against Argo Rollouts (bench/operator.mjs says
# what it measures), on local control planes of 3 kwok nodes (200+ fake pods fit):
#   bench/operator.sh [N]      (default 200 models per run; ONLY=1,3 runs just those column groups)
# Builds what it needs first (cached): the control plane (e2e/cluster/build.sh, ~8 min cold),
# Argo Rollouts' controller (bench/argo/build.sh, ~2-5 min cold), the operator (tsc, then
# bundled as in its image).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/node-deps.sh
npx tsc -b
# The operator as its image runs it: one bundled file (bench/subjects.mjs runs it).
scripts/bundle-operator.sh operator/dist/bundle/main.mjs
e2e/cluster/build.sh >/dev/null
nice -n 10 bench/argo/build.sh >/dev/null
# operator.mjs deletes each cluster after its runs; this catches an interrupted run.
down() {
  local c
  for c in wavelet-bench wavelet-bench-kcm; do e2e/cluster/down.sh "$c" >/dev/null 2>&1 || true; done
}
trap down EXIT
node bench/operator.mjs "${1:-200}"
