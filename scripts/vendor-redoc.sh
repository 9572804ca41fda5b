#!/usr/bin/env bash
# ReDoc's standalone page script, served by /redoc from disk (no CDN), into <dir>
# (default server/vendor). Installing the redoc package would pull React and friends for
# one file, so the file is taken from its tarball. The version is server/src/plugins/docs.ts's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/server/vendor}
redoc_version=2.5.4
redoc=$dir/redoc-$redoc_version.standalone.js
[ -f "$redoc" ] && exit 0
echo "vendor-redoc: fetching redoc@$redoc_version standalone bundle" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "redoc@$redoc_version" >/dev/null && tar xzf "redoc-$redoc_version.tgz" package/bundles/redoc.standalone.js)
mkdir -p "$dir"
mv "$tmp/package/bundles/redoc.standalone.js" "$redoc"
