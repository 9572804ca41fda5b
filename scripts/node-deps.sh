#!/usr/bin/env bash
# Installs the npm workspaces from the lock file when node_modules is missing or stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "node-deps: Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "node-deps: npm ci" >&2
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
fi

# ReDoc's standalone page script, served by /redoc from disk (no CDN). Installing the redoc
# package would pull React and friends for one file, so the file is taken from its tarball.
redoc_version=2.5.4
redoc=server/vendor/redoc-$redoc_version.standalone.js
if [ ! -f "$redoc" ]; then
  echo "node-deps: fetching redoc@$redoc_version standalone bundle" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "redoc@$redoc_version" >/dev/null && tar xzf "redoc-$redoc_version.tgz" package/bundles/redoc.standalone.js)
  mkdir -p server/vendor
  mv "$tmp/package/bundles/redoc.standalone.js" "$redoc"
  rm -rf "$tmp"
fi
