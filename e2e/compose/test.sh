#!/usr/bin/env bash
# test.sh — runs docker-compose.yml the way the guide does (docker-compose up -d, logs,
# down -v) and checks that the stack works: the api healthy and answering with its key,
# /metrics only with the metrics key, Redis shared (a cached prediction and the rate-limit
# budget survive an api restart) and refusing clients without its password, Prometheus
# scraping the api (with the metrics key) and the Redis exporter with the rules loaded, its
# lifecycle API off, and a failing request mix turning WaveletApiHighErrorRatio pending.
#
#   e2e/compose/test.sh   (about 100 s once cached; the first run builds Compose, about 5 min,
#                          and the images)
#
# Public images cannot be pulled here, so it builds stand-ins (images/standins.Dockerfile:
# Debian's redis-server, prometheus and prometheus-redis-exporter laid out as the official
# images) and the api's image offline (scripts/images.sh server), and runs the user's file with
# docker-compose.offline.yml, which swaps those images and nothing else (plus ephemeral ports).
# grafana is not started: its image cannot be obtained here. Compose is v2, built from the Go
# module proxy (build.sh); Debian's docker-compose 1.29 checks the file too (config). Everything
# it starts is removed on exit, whatever happens.
# Needs: Docker (scripts/docker-env.sh), Go >= 1.26 (first run), curl, jq.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/e2e/compose"
cd "$root"
started=$SECONDS
log() { printf '[compose-test] %s\n' "$*" >&2; }
die() { printf 'compose-test: FAIL: %s\n' "$*" >&2; exit 1; }
for c in curl jq; do command -v "$c" >/dev/null || die "'$c' not found (Debian: apt-get install $c)"; done
export PATH="/usr/local/go/bin:$PATH"

timings=()
phase_start=$SECONDS
phase() { # phase <what just finished>
  timings+=("$(printf '%-64s %4ss' "$1" "$((SECONDS - phase_start))")")
  phase_start=$SECONDS
}

# --- tools and images -------------------------------------------------------------------------
eval "$(scripts/docker-env.sh | tail -1)"
docker() { "$DOCKER" "$@"; }
PATH="$("$here/build.sh" | tail -1):$PATH"
log "$(docker-compose version)"
eval "$(scripts/images.sh server | tail -1)"
export COMPOSE_TEST_API_IMAGE="$WAVELET_IMAGES"
base=$(images/offline/base.sh debian)
for target in redis redis-exporter prometheus; do
  var="COMPOSE_TEST_$(tr a-z- A-Z_ <<<"$target")_IMAGE"
  export "$var=wavelet-standin/$target:local"
  docker build -q -f "$here/images/standins.Dockerfile" --target "$target" --build-arg "BASE_IMAGE=$base" \
    -t "${!var}" "$here/images" >/dev/null || die "building the $target stand-in failed"
done
compose_v1=wavelet-check/docker-compose-1:local
docker build -q -f "$here/images/compose-v1.Dockerfile" --build-arg "BASE_IMAGE=$base" -t "$compose_v1" "$here/images" >/dev/null ||
  die "building the image with Debian's docker-compose 1.29 failed"
phase "images (api offline build, stand-ins, compose 1.29)"

# --- the project: a generated .env, a unique name, cleanup on exit -----------------------------
tmp=$(mktemp -d)
project="wavelet-compose-test-$$"
# The shell's values would win over the env file: the test's .env must be the only source.
mapfile -t interpolated < <(grep -o '\${[A-Z_]*' docker-compose.yml | cut -c3- | sort -u)
unset "${interpolated[@]}"
key=$(openssl rand -hex 32)
metrics_key=$(openssl rand -hex 32)
cat >"$tmp/env" <<EOF
API_KEY=$key
METRICS_API_KEY=$metrics_key
REDIS_PASSWORD=$(openssl rand -hex 32)
GRAFANA_ADMIN_PASSWORD=$(openssl rand -hex 16)
# lstm is not loaded, so model_type "lstm" answers 503: the failing request mix.
MODELS=xgboost
# Long enough that the api's restart happens inside one rate-limit window.
RATE_LIMIT_WINDOW_MS=600000
# A loaded CI machine can take longer than the default 30 ms; a slower answer would be
# counted locally, and this test is about what Redis holds.
REDIS_TIMEOUT_MS=1000
EOF
dc() { docker-compose -p "$project" --env-file "$tmp/env" -f docker-compose.yml -f "$here/docker-compose.offline.yml" "$@"; }
cleanup() {
  local rc=$?
  if ((rc != 0)) && [[ -n "${up:-}" ]]; then
    log "failed; the last log lines:"
    dc logs --no-color --tail 40 >&2 || true
  fi
  if [[ -n "${up:-}" ]]; then dc down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- the file as users get it ----------------------------------------------------------------
version=$(node -p 'require("./server/package.json").version')
[[ "$(docker-compose -p check --env-file "$tmp/env" -f docker-compose.yml config --format json | jq -r .services.api.image)" == "wavelet-server:$version" ]] ||
  die "docker-compose.yml's api image is not wavelet-server:$version (server/package.json's version, scripts/images.sh's tag)"
for secret in API_KEY METRICS_API_KEY REDIS_PASSWORD; do
  grep -v "^$secret=" "$tmp/env" >"$tmp/env.nokey"
  if out=$(docker-compose -p check --env-file "$tmp/env.nokey" -f docker-compose.yml config -q 2>&1); then
    die "docker-compose.yml accepted a missing $secret (there must be no default secret)"
  fi
  grep -q "$secret is not set" <<<"$out" || die "a missing $secret did not say so: $out"
done
# Prometheus (no login) is published on this host only, Redis not at all.
user_file=$(docker-compose -p check --env-file "$tmp/env" -f docker-compose.yml config --format json)
[[ "$(jq -r '[.services.prometheus.ports[] | .host_ip] | unique | join(",")' <<<"$user_file")" == 127.0.0.1 ]] ||
  die "docker-compose.yml publishes Prometheus beyond 127.0.0.1"
jq -e '[.services[] | .ports // [] | .[] | .target] | index(6379) == null' <<<"$user_file" >/dev/null || die "docker-compose.yml publishes Redis"
docker run --rm -v "$root:/src:ro" -v "$tmp/env:/test.env:ro" -w /src "$compose_v1" --env-file /test.env -f docker-compose.yml config -q ||
  die "Debian's docker-compose 1.29 refuses docker-compose.yml"
dc config -q
phase "compose files valid (v2 and 1.29); missing secrets refused; Prometheus on 127.0.0.1 only"

# --- up -------------------------------------------------------------------------------------------
log "docker-compose up -d (project $project; grafana is not started: its image cannot be obtained here)"
up=1
dc up -d --wait --wait-timeout 240 api redis redis-exporter prometheus
api_container=$(dc ps -q api)
[[ "$(docker inspect -f '{{.State.Health.Status}}' "$api_container")" == healthy ]] || die "the api container is not healthy"
api="http://$(dc port api 8000)"
prom="http://$(dc port prometheus 9090)"
phase "up -d: api, redis, redis-exporter, prometheus healthy"

# --- predictions with the key ----------------------------------------------------------------
features='{"features": [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "model_type": "xgboost"}'
# predict <body> [curl args...]: prints the status; the body and headers land in $tmp.
predict() {
  local body=$1
  shift
  curl -sS -m 10 -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -H 'content-type: application/json' "$@" -d "$body" "$api/predict"
}
header() { tr -d '\r' <"$tmp/headers" | sed -n "s/^$1: //Ip"; }
metric() { # metric <name{labels}>: its value on the api's /metrics, 0 when absent
  curl -sS -m 10 -H "Authorization: Bearer $metrics_key" "$api/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
scrape_status() { curl -sS -m 10 -o /dev/null -w '%{http_code}' "$@" "$api/metrics"; }
[[ "$(predict "$features")" == 401 ]] || die "a prediction without the key was not refused with 401"
[[ "$(predict "$features" -H "X-API-Key: $key")" == 200 ]] || die "a prediction with the key failed: $(cat "$tmp/body")"
# Another client's prediction is in /metrics (prediction_value_sum): the metrics key only.
[[ "$(scrape_status)" == 401 ]] || die "/metrics without the metrics key was not refused with 401"
[[ "$(scrape_status -H "X-API-Key: $key")" == 403 ]] || die "/metrics took the prediction key"
[[ "$(metric 'prediction_value_count{model="xgboost"}')" == 1 ]] || die "/metrics with the metrics key does not count the prediction"
first=$(jq -er .prediction "$tmp/body") || die "no prediction in $(cat "$tmp/body")"
limit=$(header x-ratelimit-limit)
remaining=$(header x-ratelimit-remaining)
[[ -n "$limit" && -n "$remaining" ]] || die "no X-RateLimit headers on a prediction"
phase "predictions: 200 with the key, 401 without"

# --- Redis holds the cache and the rate-limit counts ---------------------------------------------
rcli() { dc exec -T redis redis-cli "$@"; }
# redis-cli in the container logs in with REDISCLI_AUTH; without the password Redis refuses.
[[ "$(dc exec -T redis sh -c 'unset REDISCLI_AUTH; redis-cli ping' 2>&1)" == *NOAUTH* ]] || die "Redis answers clients without its password"
# The key's own budget (the refused scrapes above spent the address's: ratelimit:v2:predict:ip:*).
budget_key=$(rcli --scan --pattern 'ratelimit:v2:predict:key:*')
[[ $(wc -l <<<"$budget_key") == 1 && -n "$budget_key" ]] || die "expected one rate-limit key for the API key in Redis, found: '$budget_key'"
[[ -n "$(rcli --scan --pattern 'ratelimit:v2:predict:ip:*')" ]] || die "the refused scrapes spent no budget of their address"
[[ "$(rcli get "$budget_key")" == "$((limit - remaining))" ]] || die "Redis's count for $budget_key is not the $((limit - remaining)) rows spent"
[[ -n "$(rcli --scan --pattern 'pred:v3:*')" ]] || die "the prediction was not cached in Redis"
# A restart empties the api's memory: what it still knows came from Redis.
dc restart api >/dev/null
for _ in $(seq 120); do
  [[ "$(docker inspect -f '{{.State.Health.Status}}' "$api_container")" == healthy ]] && break
  sleep 1
done
[[ "$(docker inspect -f '{{.State.Health.Status}}' "$api_container")" == healthy ]] || die "the api did not become healthy again after a restart"
api="http://$(dc port api 8000)"
[[ "$(predict "$features" -H "X-API-Key: $key")" == 200 ]] || die "a prediction after the restart failed: $(cat "$tmp/body")"
[[ "$(jq -r .prediction "$tmp/body")" == "$first" ]] || die "the same features gave another prediction after the restart"
[[ "$(metric 'prediction_cache_hits_total{backend="redis"}')" == 1 ]] || die "the repeated prediction was not a Redis cache hit"
[[ "$(header x-ratelimit-remaining)" == "$((remaining - 1))" ]] ||
  die "the rate-limit budget restarted with the api (remaining $(header x-ratelimit-remaining), expected $((remaining - 1)) from Redis)"
phase "Redis: cache hit and rate-limit budget across an api restart"

# --- Prometheus --------------------------------------------------------------------------------
query() { curl -sS -m 10 --get --data-urlencode "query=$1" "$prom/api/v1/query" | jq -r '.data.result[0].value[1] // empty'; }
wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 2
  done
}
scraped() { [[ "$(query "$1")" == 1 ]]; }
wait_for 'up{job="financial-api"} == 1' 120 scraped 'up{job="financial-api"}'
wait_for 'redis_up{job="redis"} == 1 (the exporter reaches Redis)' 120 scraped 'redis_up{job="redis"}'
curl -sS -m 10 "$prom/api/v1/rules" | jq -e '[.data.groups[].rules[] | select(.name == "WaveletApiHighErrorRatio")] | length == 1' >/dev/null ||
  die "Prometheus has not loaded WaveletApiHighErrorRatio from monitoring/alerts.yml"
[[ "$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X POST "$prom/-/reload")" == 403 ]] || die "Prometheus's lifecycle API is on (POST /-/reload was not refused)"
phase "Prometheus: api (with the metrics key) and Redis scraped, rules loaded, no lifecycle API"

# --- a failing request mix: half the predictions ask for a model that is not loaded -------------
lstm='{"features": [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "model_type": "lstm"}'
[[ "$(predict "$lstm" -H "X-API-Key: $key")" == 503 ]] || die "model_type lstm did not answer 503 with MODELS=xgboost"
jq -e '.message == "Model lstm not loaded"' "$tmp/body" >/dev/null || die "unexpected 503 body: $(cat "$tmp/body")"
alert_state() {
  curl -sS -m 10 "$prom/api/v1/alerts" | jq -r '[.data.alerts[] | select(.labels.alertname == "WaveletApiHighErrorRatio") | .state][0] // "inactive"'
}
pending() {
  predict "$lstm" -H "X-API-Key: $key" >/dev/null
  predict "$features" -H "X-API-Key: $key" >/dev/null
  [[ "$(alert_state)" == pending ]]
}
wait_for "WaveletApiHighErrorRatio to go pending" 180 pending
log "error ratio: $(query 'job:http_requests_errors:ratio_rate5m{job="financial-api"}')"
phase "failing mix: WaveletApiHighErrorRatio pending"

# --- logs and down -v -------------------------------------------------------------------------
dc logs --no-color api >"$tmp/api.log"
grep -q '"msg":"shutting down: unready, draining keep-alive clients"' "$tmp/api.log" ||
  die "docker-compose logs api does not show the server's log lines (the restart's drain)"
grep -q '"statusCode":503' "$tmp/api.log" || die "docker-compose logs api does not show the 503 answers"
dc down -v
unset up
label="label=com.docker.compose.project=$project"
left="$(docker ps -aq --filter "$label")$(docker volume ls -q --filter "$label")$(docker network ls -q --filter "$label")"
[[ -z "$left" ]] || die "docker-compose down -v left containers, volumes or networks of $project"
phase "logs api; down -v removed containers, volumes, network"

printf '\ncompose test passed (%s, project %s; grafana not started: no image here)\n' "$(docker-compose version --short)" "$project"
printf '  %s\n' "${timings[@]}"
printf '  %-64s %4ss\n' total "$((SECONDS - started))"
