#!/usr/bin/env bash
# Fair scheduling of model runs (issue 9), today's server against this one, side by side:
#
#   (g) 64 connections, each sending 1,000-row ensemble batches (wrk, closed loop), while
#       /livez is probed every 20 ms on its own connection;
#   (h) /livez while /predict/stream reads 100,000 prices (xgboost), one stream after another.
#
# "Today" is BASELINE (a git ref; default: main before the run queue), built into a temporary
# directory. Servers on CPU 1, load generator and probe on CPU 0, one server process each,
# request logs, rate limit and cache off. Targets: at (g), p99 ≤ 4 × p50 and no timeouts,
# rows/s within 10 % of today's; /livez p99 under 50 ms during (g) and (h).
#   DURATION=10 bench/fairness.sh        (also run at the end of bench/run.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${DURATION:-10}
baseline=${BASELINE:-5a19b12cf0fe92a68ad069c9f7ef5fa4843cc2ce}

# No scripts/node-deps.sh here: bench/run.sh runs it first, and alone this uses the
# node_modules already installed (an npm ci through a symlinked node_modules empties its target).
npx tsc -b
command -v wrk >/dev/null || { echo "fairness: wrk is missing (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Today's server: the baseline's server/ with the baseline's own dependencies (its lock file
# may differ from this checkout's), built once into the cache and kept there by commit.
base=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}/bench-baseline/$baseline
if [ ! -f "$base/server/dist/server.js" ]; then
  rm -rf "$base" && mkdir -p "$base"
  git archive "$baseline" server operator/package.json package.json package-lock.json tsconfig.base.json | tar -x -C "$base"
  (cd "$base" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  mkdir -p "$base/server/vendor" && cp "$root"/server/vendor/* "$base/server/vendor/"
  (cd "$base" && npx tsc -b server)
fi
ln -sfn "$root/models" "$base/models"

node bench/make_bodies.mjs "$work"
node -e '
const prices = Array.from({ length: 100000 }, (_, i) => 100 * Math.exp(0.01 * Math.sin(i / 3) + i * 1e-5));
require("fs").writeFileSync(process.argv[1], JSON.stringify({ prices, model_type: "xgboost" }));' "$work/stream-prices.json"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/batch-ensemble.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA

serve() { # serve <dir> <port>: that checkout's server on CPU 1, benchmark settings
  local dir=$1 port=$2
  (cd "$dir" && exec env HOST=127.0.0.1 PORT="$port" LOG_LEVEL=warn RATE_LIMIT_MAX=0 CACHE_TTL=0 BODY_LIMIT=8388608 \
    taskset -c 1 node --max-semi-space-size=32 server/dist/server.js) >"$work/server-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/livez" >/dev/null && return 0
    sleep 0.1
  done
  echo "fairness: server on $port did not start" >&2
  cat "$work/server-$port.log" >&2
  exit 1
}

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

measure() { # measure <label> <port>: (g) and (h) against one server; one JSON line
  local label=$1 port=$2 url=http://127.0.0.1:$2
  taskset -c 0 wrk -t1 -c64 -d2s -s "$work/post.lua" "$url/predict/batch" >/dev/null # warm-up
  taskset -c 0 node bench/probe.mjs "$url/livez" "$duration" >"$work/probe-g-$port.json" &
  local probe=$!
  taskset -c 0 wrk -t1 -c64 -d"${duration}s" --timeout 10s --latency -s "$work/post.lua" "$url/predict/batch" >"$work/wrk-$port.txt"
  wait "$probe"
  taskset -c 0 node bench/probe.mjs "$url/livez" "$duration" >"$work/probe-h-$port.json" &
  probe=$!
  local streams=0 end=$((SECONDS + duration))
  while [ "$SECONDS" -lt "$end" ]; do
    taskset -c 0 curl -sf -o /dev/null -H 'content-type: application/json' --data-binary @"$work/stream-prices.json" "$url/predict/stream"
    streams=$((streams + 1))
  done
  wait "$probe"
  python3 - "$label" "$work/wrk-$port.txt" "$work/probe-g-$port.json" "$work/probe-h-$port.json" "$streams" <<'PY' >>"$work/fairness.jsonl"
import json, re, sys
label, wrk, g, h, streams = sys.argv[1:]
text = open(wrk).read()
def ms(q):
    m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
timeouts = re.search(r"timeout (\d+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(json.dumps({
    "label": label,
    "rows_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)) * 1000,
    "p50_ms": ms(50), "p99_ms": ms(99),
    "timeouts": int(timeouts.group(1)) if timeouts else 0,
    "non2xx": int(non2xx.group(1)) if non2xx else 0,
    "livez_batches": json.load(open(g)), "livez_streams": json.load(open(h)), "streams": int(streams),
}))
PY
}

echo "fairness: ${duration}s per measurement, baseline ${baseline:0:12}" >&2
serve "$base" 8310
measure today 8310
stop_all
serve "$root" 8311
measure now 8311
stop_all

python3 - "$work/fairness.jsonl" <<'PY'
import json, sys
r = {row["label"]: row for row in map(json.loads, open(sys.argv[1]))}
t, n = r["today"], r["now"]
def livez(x):
    if not x["count"]:
        return f"no answer ({x['errors']} probes failed, 10 s timeout)"
    return f"{x['p99_ms']} ms (max {x['max_ms']}, {x['count']} probes, {x['errors']} failed)"
print()
print("| (g) 64 connections × 1,000-row ensemble batches | today | now | target |")
print("|---|---|---|---|")
print(f"| rows/s | {t['rows_per_s']:,.0f} | {n['rows_per_s']:,.0f} | now ≥ 0.9 × today: {n['rows_per_s'] / t['rows_per_s']:.2f} |")
print(f"| p50 / p99 | {t['p50_ms']:,.0f} / {t['p99_ms']:,.0f} ms | {n['p50_ms']:,.0f} / {n['p99_ms']:,.0f} ms | p99 ≤ 4 × p50: {n['p99_ms'] / n['p50_ms']:.2f} |")
print(f"| timeouts (10 s), non-2xx | {t['timeouts']}, {t['non2xx']} | {n['timeouts']}, {n['non2xx']} | 0 |")
print(f"| /livez p99 meanwhile | {livez(t['livez_batches'])} | {livez(n['livez_batches'])} | < 50 ms |")
print(f"| (h) /livez p99 while 100,000-price streams are read | {livez(t['livez_streams'])}, {t['streams']} streams | {livez(n['livez_streams'])}, {n['streams']} streams | < 50 ms |")
PY
