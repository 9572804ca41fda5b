#!/usr/bin/env bash
# The main job: the inference server on port 8000 serving the bundled default models
# (models/bundles/spx-return-1d). No Redis, no cluster. Settings come from the environment
# (README: Settings); e.g. PORT=9000 MODEL_DIR=models/bundles/spx-vol-5d scripts/run.sh
# Once it listens, the server prints the URLs of the API, /docs and /metrics.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/node-deps.sh
npx tsc -b
# A larger young generation: request bodies, feature rows and responses die young, and
# fewer scavenges means fewer promotions and shorter tail latency (bench/run.sh).
exec node --max-semi-space-size=32 server/dist/server.js
