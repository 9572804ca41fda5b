#!/usr/bin/env bash
# A user's plain `npm ci` from the lock file, in a scratch copy of the manifests, must be clean:
#   - npm prints no warning (unknown .npmrc keys, EBADENGINE on a supported Node,
#     install scripts not covered by package.json's allowScripts);
#   - onnxruntime-node's install script downloads nothing (it fetches CUDA libraries from
#     NuGet; the CPU binaries ship inside the package);
#   - esbuild, whose install script is denied too, still runs;
#   - the workspaces ask for the Node.js the root does (npm checks theirs too).
# No skip variable is set: what package.json and .npmrc say must be enough.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
read -ra workspaces < <(node -p 'require(process.argv[1]).workspaces.join(" ")' "$root/package.json")
cp "$root/package.json" "$root/package-lock.json" "$root/.npmrc" "$tmp/"
for w in "${workspaces[@]}"; do mkdir -p "$tmp/$w" && cp "$root/$w/package.json" "$tmp/$w/"; done

# Clear whatever this shell and user carry (npm run's npm_config_*, a skip variable, the
# user's ~/.npmrc) so only the project's files decide.
unset_env=()
while IFS='=' read -r name _; do
  case "${name,,}" in npm_config_* | onnxruntime_node_install*) unset_env+=(-u "$name") ;; esac
done < <(env)
log=$tmp/npm-ci.log
if ! (cd "$tmp" && env "${unset_env[@]}" npm ci --prefer-offline --userconfig=/dev/null) >"$log" 2>&1; then
  cat "$log" >&2
  echo "check-install: npm ci failed" >&2
  exit 1
fi

fail=0
if warnings=$(grep -i '^npm warn' "$log"); then
  printf 'check-install: npm ci printed warnings:\n%s\n' "$warnings" >&2
  fail=1
fi
# The files onnxruntime-node's install script would add, from the package's own manifest.
downloaded=$(cd "$tmp" && node -e '
  const path = require("node:path"), fs = require("node:fs");
  const pkg = path.dirname(require.resolve("onnxruntime-node/package.json", { paths: ["server"] }));
  const meta = require(path.join(pkg, "script/install-metadata.js"));
  const platform = `${process.platform}/${process.arch}`;
  const bin = path.join(pkg, "bin/napi-v6", platform);
  const found = (meta.requirements[platform] ?? [])
    .flatMap((name) => Object.keys(meta.manifests[`${platform}:${name}`]))
    .map((file) => path.join(bin, file))
    .filter((file) => fs.existsSync(file));
  console.log(found.join("\n"));')
if [[ -n "$downloaded" ]]; then
  printf "check-install: onnxruntime-node's install script downloaded:\n%s\n" "$downloaded" >&2
  fail=1
fi
want=$(node -p 'require(process.argv[1]).devDependencies.esbuild' "$root/package.json")
if ! got=$("$tmp/node_modules/.bin/esbuild" --version 2>&1) || [[ "$got" != "$want" ]]; then
  echo "check-install: node_modules/.bin/esbuild --version: $got (want $want)" >&2
  fail=1
fi
mismatch=$(cd "$tmp" && node -e '
  const engines = (dir) => JSON.stringify(require(`./${dir}/package.json`).engines);
  for (const w of process.argv.slice(1)) if (engines(w) !== engines(".")) console.log(`${w}: ${engines(w)}, root: ${engines(".")}`);' "${workspaces[@]}")
if [[ -n "$mismatch" ]]; then
  printf 'check-install: the workspaces engines differ from the root:\n%s\n' "$mismatch" >&2
  fail=1
fi
((fail == 0)) && echo "check-install: npm ci clean (no warnings, no install-script downloads, esbuild $got)"
exit "$fail"
