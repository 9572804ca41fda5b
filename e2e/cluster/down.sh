#!/usr/bin/env bash
# down.sh [name] — delete the local cluster started by up.sh (default name
# "wavelet"): stops every component process and removes its work dir
# (etcd data, pki, logs, kubeconfig). Safe to run when the cluster is absent.
# Does not need a build: if the binaries are gone it cleans up by hand.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

name="${1:-wavelet}"
validate_cluster_name "$name"
start=$SECONDS

mkdir -p "$KWOK_WORKDIR"
exec 9>"$KWOK_WORKDIR/.$name.lock"
flock -w 300 9 || die "timed out waiting for another up/down of cluster '$name'"

delete_cluster "$name"
log "cluster '$name' deleted in $((SECONDS - start))s"
