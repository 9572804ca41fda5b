#!/usr/bin/env bash
# Two imported bundles for the kind tier's bring-your-own-models scenario, made as a guide
# user makes them: tiny models trained with the real frameworks (models/tests/byom_fixtures.py:
# XGBoost, an LSTM and a Transformer as state dicts, a TorchScript GRU, ensemble weights) in the
# guide's layout, then `wavelet-pipeline import`. Version 1.1.0 is the same models retrained
# on other data (the same feature names). Cached by the importer's sources; prints the
# directory holding byom-1.0.0/ and byom-1.1.0/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${WAVELET_CACHE:-$HOME/.cache/wavelet-platform}
venv=$("$root/scripts/python-env.sh")
key=$(cd "$root/models" && find src tests/byom_fixtures.py requirements.txt -name '*.py' -o -name requirements.txt | sort | xargs cat | sha256sum | cut -c1-12)
out="$cache/imported/$key"
if [ ! -f "$out/.complete" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  cd "$root/models"
  for release in "1.0.0 0" "1.1.0 1"; do
    read -r version seed <<<"$release"
    PYTHONPATH=src:. "$venv/bin/python" -m tests.byom_fixtures "$out/guide-$version" --seed "$seed" >&2
    PYTHONPATH=src "$venv/bin/python" -m wavelet_pipeline import "$out/guide-$version" --name byom --version "$version" --out "$out/byom-$version" >&2
  done
  touch "$out/.complete"
fi
echo "$out"
