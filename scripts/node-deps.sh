#!/usr/bin/env bash
# Installs the npm workspaces from the lock file when node_modules is missing or stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The minimum is package.json's engines.node (">=MAJOR.MINOR"), the one place it is written.
if ! command -v node >/dev/null; then
  echo "node-deps: Node.js is required (package.json engines.node), found none" >&2
  exit 1
fi
node -e '
  const want = require("./package.json").engines.node;
  const min = /^>=(\d+)\.(\d+)$/.exec(want)?.slice(1).map(Number);
  if (!min) throw new Error(`package.json engines.node ${want}: expected >=MAJOR.MINOR`);
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < min[0] || (major === min[0] && minor < min[1])) {
    console.error(`node-deps: Node.js ${want} is required (found ${process.version})`);
    process.exit(1);
  }'
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "node-deps: npm ci" >&2
  # package.json's allowScripts already keeps onnxruntime-node's install script (CUDA libraries
  # from NuGet) from running; npm releases without allowScripts run it, so skip it here too.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
fi

scripts/vendor-redoc.sh
