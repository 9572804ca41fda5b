#!/usr/bin/env bash
# Ensures a pinned Python venv exists and prints its path.
#   scripts/python-env.sh [requirements.txt]   (default: models/requirements.txt)
# The venv (torch alone is ~4 GB) and pip's downloads live in a cache outside the
# repository, keyed by the hash of the requirements file, so a clean clone reuses them.
# The pipeline itself is not installed into it (the venv is shared by every checkout):
# callers put models/src on PYTHONPATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}
req=$(realpath "${1:-$root/models/requirements.txt}")
key=$(sha256sum "$req" | cut -c1-12)
venv="$cache/venv-$key"

if [ ! -f "$venv/.complete" ]; then
  py=""
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      py=$c; break
    fi
  done
  if [ -z "$py" ]; then
    echo "python-env: Python 3.11 is required ($req is pinned for it); none found on PATH" >&2
    exit 1
  fi
  echo "python-env: creating $venv from $req" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  export PIP_CACHE_DIR="$cache/pip"
  "$venv/bin/pip" install --quiet --progress-bar off -r "$req" >&2
  touch "$venv/.complete"
fi
echo "$venv"
