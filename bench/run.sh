#!/usr/bin/env bash
# Inference server benchmarks, side by side in one run (not a test; prints a table).
#
#   (a) a bare Fastify route returning a constant       (b) /predict, xgboost
#   (c) /predict, ensemble                              (d) /predict/batch of 1,000 rows vs
#       onnxruntime-node in-process on the same rows    (e) micro-batching on vs off, 256 connections
#   (f) the guide's stack: FastAPI + uvicorn + onnxruntime on the same ONNX files
#   and the p99 latency of (b) at half of its peak rate (open loop, vegeta).
#   (g), (h) fair scheduling, today's server against this one: bench/fairness.sh, run last.
#
# Same load generator (wrk, one thread) and connections for every row. The servers run on
# CPU 1 and the load generator on CPU 0 (taskset), one server process each, request logs
# off, rate limit and prediction cache off (every request runs the model).
#   DURATION=10 CONNECTIONS=64 bench/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${DURATION:-10}
connections=${CONNECTIONS:-64}
cache=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}
bundle=models/bundles/spx-return-1d

# --- tools -------------------------------------------------------------------------------
scripts/node-deps.sh
npx tsc -b
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
vegeta=$cache/tools/bin/vegeta
if [ ! -x "$vegeta" ]; then
  command -v go >/dev/null || { echo "bench: go is needed to build vegeta" >&2; exit 1; }
  GOBIN=$cache/tools/bin go install github.com/tsenart/vegeta/v12@v12.12.0
fi
venv=$(scripts/python-env.sh bench/requirements.txt)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
node bench/make_bodies.mjs "$work"
results=$work/results.tsv

wait_port() {
  for _ in $(seq 200); do
    if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench: nothing listening on $1" >&2
  exit 1
}

start() { # start <port> <command...>: a server on CPU 1
  local port=$1
  shift
  taskset -c 1 "$@" >"$work/server-$port.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
}

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

server() { # server <port> [VAR=value...]: the main job (scripts/run.sh) with benchmark settings
  local port=$1
  shift
  start "$port" env HOST=127.0.0.1 PORT="$port" LOG_LEVEL=warn RATE_LIMIT_MAX=0 CACHE_TTL=0 BODY_LIMIT=8388608 "$@" scripts/run.sh
}

measure() { # measure <name> <url> <body file> <connections>: wrk on CPU 0, one row of results
  local name=$1 url=$2 body=$3 conns=$4
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$body", "rb"); wrk.body = f:read("*a"); f:close()
LUA
  taskset -c 0 wrk -t1 -c"$conns" -d2s -s "$work/post.lua" "$url" >/dev/null # warm-up
  local out
  out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${duration}s" --timeout 10s --latency -s "$work/post.lua" "$url")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  # "Non-2xx or 3xx responses: N" and "Socket errors: connect A, read B, write C, timeout D"
  errors=$(awk '/Non-2xx/ {printf "non-2xx %s ", $NF} /Socket errors/ {printf "socket %s %s %s %s", $4, $6, $8, $10}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$rps" "$p50" "$p99" "${errors:-none}" | tee -a "$results" >&2
}

echo "bench: ${duration}s per row, wrk -t1, servers on CPU 1, generator on CPU 0" >&2

start 8200 node bench/bare.mjs
measure "(a) bare Fastify, constant" http://127.0.0.1:8200/predict "$work/single-xgboost.json" "$connections"
stop_all

server 8201
measure "(b) /predict xgboost" http://127.0.0.1:8201/predict "$work/single-xgboost.json" "$connections"
measure "(c) /predict ensemble" http://127.0.0.1:8201/predict "$work/single-ensemble.json" "$connections"
measure "(d) /predict/batch 1000 ensemble" http://127.0.0.1:8201/predict/batch "$work/batch-ensemble.json" "$connections"
measure "(e) /predict ensemble, micro-batching on" http://127.0.0.1:8201/predict "$work/single-ensemble.json" 256
# p99 of (b) at half its peak rate, open loop.
peak=$(awk -F'\t' '$1 == "(b) /predict xgboost" {print $3}' "$results")
rate=$(awk -v p="$peak" 'BEGIN {printf "%d", p / 2}')
printf 'POST http://127.0.0.1:8201/predict\nContent-Type: application/json\n@%s\n' "$work/single-xgboost.json" >"$work/targets.txt"
taskset -c 0 "$vegeta" attack -targets="$work/targets.txt" -rate="$rate" -duration=3s -max-workers=256 >/dev/null # warm-up: connections, JIT
taskset -c 0 "$vegeta" attack -targets="$work/targets.txt" -rate="$rate" -duration="${duration}s" -max-workers=256 >"$work/half.bin"
half=$("$vegeta" report -type=json <"$work/half.bin")
stop_all

server 8202 MICRO_BATCH=false
measure "(e) /predict ensemble, micro-batching off" http://127.0.0.1:8202/predict "$work/single-ensemble.json" 256
stop_all

start 8100 env MODEL_DIR="$bundle" "$venv/bin/uvicorn" --app-dir bench reference_server:app --host 127.0.0.1 --port 8100 --log-level warning --no-access-log
measure "(f) Python FastAPI+uvicorn+onnxruntime, xgboost" http://127.0.0.1:8100/predict "$work/single-xgboost.json" "$connections"
stop_all

inprocess=$(ROWS_FILE="$work/batch-ensemble.json" taskset -c 1 node bench/inprocess.mjs "$bundle" ensemble "$duration")

python3 - "$results" "$inprocess" "$half" "$rate" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    name, conns, rps, p50, p99, errors = line.rstrip("\n").split("\t")
    rows[name] = dict(conns=int(conns), rps=float(rps), p50=p50, p99=p99, errors=errors)
inproc = json.loads(sys.argv[2])["rows_per_second"]
half = json.loads(sys.argv[3])
rate = int(sys.argv[4])
print("| row | connections | requests/s | p50 | p99 | errors |")
print("|---|---|---|---|---|---|")
for name, r in rows.items():
    print(f"| {name} | {r['conns']} | {r['rps']:,.0f} | {r['p50']} | {r['p99']} | {r['errors']} |")
a, b, c = rows["(a) bare Fastify, constant"], rows["(b) /predict xgboost"], rows["(c) /predict ensemble"]
d, f = rows["(d) /predict/batch 1000 ensemble"], rows["(f) Python FastAPI+uvicorn+onnxruntime, xgboost"]
on, off = rows["(e) /predict ensemble, micro-batching on"], rows["(e) /predict ensemble, micro-batching off"]
print()
print("| ratio | measured | target |")
print("|---|---|---|")
print(f"| (b)/(a) requests/s | {b['rps'] / a['rps']:.2f} | ≥ 0.5 |")
print(f"| (b)/(f) requests/s | {b['rps'] / f['rps']:.2f} | ≥ 3 |")
print(f"| (d) rows/s over in-process onnxruntime ({d['rps'] * 1000:,.0f} / {inproc:,.0f}) | {d['rps'] * 1000 / inproc:.2f} | ≥ 0.7 |")
print(f"| (e) micro-batching on/off at 256 connections | {on['rps'] / off['rps']:.2f} | ≥ 1.5 |")
p99_ms = half["latencies"]["99th"] / 1e6
ok = half["success"]
print(f"| p99 of (b) at half its peak ({rate:,} req/s, open loop) | {p99_ms:.2f} ms (success {ok:.3f}) | ≤ 10 ms |")
PY

bench/fairness.sh
