#!/usr/bin/env bash
# Every test tier that can run on this machine. Installs what it needs first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$SECONDS

step() { printf '\n==> %s (%ds)\n' "$*" $((SECONDS - started)); }

step "system packages (redis-server, Docker, debootstrap)"
scripts/system-deps.sh
step "npm: a user's plain npm ci, in a scratch directory, prints no warning and downloads nothing"
scripts/check-install.sh
step "npm workspaces"
scripts/node-deps.sh
step "Python venv for models/"
venv=$(scripts/python-env.sh)

step "TypeScript: type check and build"
npm run --silent typecheck

step "models/: pytest (features, leakage, loaders, metrics, quick pipeline, default bundles)"
(cd models && "$venv/bin/python" -m pytest -q)

step "server/ and operator/: vitest (unit; real HTTP, Redis and server processes; operator against a real control plane)"
npx vitest run --project server --project operator --project operator-integration

step "monitoring/: promtool checks and the alerts' unit tests, the dashboards against Grafana's schema"
monitoring/check.sh

step "monitoring/: every panel, recording rule and alert against a real Prometheus scraping a real server and operator"
npx vitest run --project monitoring

step "server/: schemathesis fuzzing of /openapi.json"
scripts/fuzz-api.sh 200

step "e2e: images, docker-compose (api, Redis, Prometheus), a kind cluster built offline, the Helm chart, the scenarios under load"
scripts/e2e.sh

step "all tiers passed in $((SECONDS - started)) s"
