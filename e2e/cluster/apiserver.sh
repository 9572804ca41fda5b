#!/usr/bin/env bash
# apiserver.sh stop|start|restart [name] [--graceful] [--controllers]
#
# Stop / start the kube-apiserver of a cluster started by up.sh, so tests can
# exercise "the API server went away and came back" (client retries, watch
# re-establishment, operator recovery). etcd keeps running and keeps all state;
# the apiserver comes back on the same port with the same certs, so existing
# kubeconfigs and ServiceAccount tokens stay valid.
#
#   stop      kill the apiserver and wait until it is gone.
#             Default SIGKILL (a crash; it holds no state, etcd does).
#             --graceful: SIGTERM (clients get GOAWAY); the apiserver stops
#             listening at once but may then drain for ~60s, so it gets
#             SIGKILL after WAVELET_APISERVER_GRACE seconds (default 5).
#   start     `kwokctl start cluster`: starts every component whose process is
#             not running (normally just the apiserver), waits for /readyz.
#   restart   stop + start.
#
#   --controllers  also restart kube-controller-manager, kube-scheduler and
#             kwok-controller. Without it they stay up and reconnect by
#             themselves, but client-go's watch back-off means they can need
#             ~0-20s (after a quick SIGKILL restart) up to 1-2 min (after a
#             --graceful one, or several restarts in a row) before they act on
#             new changes again. Fresh processes resume in a few seconds.
#             See README.md "Restarting the apiserver".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

action="${1:-}"
shift || true
name="wavelet"
graceful=false
controllers=false
for arg in "$@"; do
  case "$arg" in
    --graceful) graceful=true ;;
    --controllers) controllers=true ;;
    -*) die "unknown flag $arg" ;;
    *) name="$arg" ;;
  esac
done
validate_cluster_name "$name"
require_binaries
dir="$(cluster_dir "$name")"
[[ -f "$dir/kwok.yaml" ]] || die "cluster '$name' does not exist (run up.sh)"
export KWOK_KUBECTL_BINARY="$K8S_BIN_DIR/kubectl"

targets=(kube-apiserver)
if $controllers; then targets+=(kube-controller-manager kube-scheduler kwok-controller); fi

# stop_component <component> <graceful:true|false>
stop_component() {
  local c="$1" pid
  pid="$(component_pid "$name" "$c" || true)"
  if [[ -n "$pid" ]] && pid_alive "$pid" && pid_belongs_to "$pid" "$dir"; then
    if [[ "$2" == true ]]; then
      log "stopping $c (pid $pid, SIGTERM)"
      kill -TERM "$pid"
      if ! wait_pid_gone "$pid" "${WAVELET_APISERVER_GRACE:-5}"; then
        log "$c still draining after ${WAVELET_APISERVER_GRACE:-5}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    else
      log "stopping $c (pid $pid, SIGKILL)"
      kill -KILL "$pid"
    fi
    wait_pid_gone "$pid" 30 || die "$c (pid $pid) did not exit"
  else
    log "$c is not running"
  fi
  # kwokctl decides "running" by kill -0 on the pid file; a zombie that PID 1
  # has not reaped yet would pass that, so remove the pid file.
  rm -f "$dir/pids/$c.pid"
}

stop_targets() {
  local c
  stop_component kube-apiserver "$graceful"
  for c in "${targets[@]:1}"; do stop_component "$c" false; done
}

start_targets() {
  local t0=$SECONDS
  # 9>&-: don't leak a caller's lock fd (see up.sh) into the started processes.
  "$K8S_BIN_DIR/kwokctl" --name "$name" start cluster >&2 9>&- || die "kwokctl start cluster failed"
  retry_until 120 "$K8S_BIN_DIR/kubectl" --kubeconfig "$(cluster_kubeconfig "$name")" \
    --request-timeout=5s get --raw=/readyz ||
    die "kube-apiserver not ready after start (logs: $dir/logs/kube-apiserver.log)"
  log "kube-apiserver ready again after $((SECONDS - t0))s"
}

case "$action" in
  stop) stop_targets ;;
  start) start_targets ;;
  restart) stop_targets; start_targets ;;
  *) die "usage: apiserver.sh stop|start|restart [name] [--graceful] [--controllers]" ;;
esac
