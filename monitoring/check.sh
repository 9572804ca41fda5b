#!/usr/bin/env bash
# monitoring/check.sh — the checks of monitoring/ that need no running service:
#   promtool check config and check rules; the alerts' unit tests (promtool test rules
#   tests/*.test.yml) and that every alert has one where it fires and one where it stays
#   silent; the Grafana dashboards against Grafana's schema (grafana/validate.sh).
# The live check (every query against a real Prometheus) is `npx vitest run --project monitoring`.
set -euo pipefail
cd "$(dirname "$0")"
command -v promtool >/dev/null || { echo "monitoring/check.sh: promtool not found (Debian: apt-get install prometheus)" >&2; exit 1; }
# The api's scrape credential is a file docker-compose.yml writes when Prometheus starts:
# check the config as it is, with a stand-in for that file (and the files it names beside it).
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
echo stand-in >"$check/metrics_api_key"
ln -s "$PWD/alerts.yml" "$PWD/targets" "$check/"
sed "s|/run/wavelet/metrics_api_key|$check/metrics_api_key|" prometheus.yml >"$check/prometheus.yml"
promtool check config "$check/prometheus.yml"
promtool check rules alerts.yml
promtool test rules tests/*.test.yml
node tests/coverage.mjs
grafana/validate.sh
