#!/usr/bin/env bash
# smoke.sh [name] — end-to-end check of the local cluster, and a worked example
# of everything the integration tests rely on. Default cluster name
# "wavelet-smoke" so it never clobbers a developer's "wavelet" cluster.
#
#   up → Deployment with 3 replicas rolls out (3 pods Ready on the kwok node)
#      → image change rolls out, scale to 5
#      → "never-ready" pods (image substring / label) stay Running + NotReady,
#        and a rollout to such an image stalls, then `rollout undo` recovers
#      → RBAC: a ServiceAccount token without permissions gets HTTP 403,
#        with a Role/RoleBinding 200; legacy SA token Secrets get populated
#      → aggregated API: an APIService backed by a Node https server on this
#        host's IP is Available and reached through the front proxy (client
#        cert CN front-proxy-client, X-Remote-User = the kubectl user)
#      → garbage collector: deleting an owner deletes its dependents
#      → apiserver restart (SIGKILL + start), cluster keeps working
#      → down, no processes left
#
# Env: WAVELET_SMOKE_KEEP=1 leaves the cluster running at the end.
# Exit code 0 = everything passed. Progress and timings go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

name="${1:-wavelet-smoke}"
validate_cluster_name "$name"
ns=smoke
t_all=$SECONDS

step() { log "== $*"; }
ok() { log "   ok: $*"; }

# wait_for <seconds> <what> <command...>: poll until the command succeeds.
wait_for() {
  local timeout="$1" what="$2"
  shift 2
  retry_until "$timeout" "$@" || die "timed out after ${timeout}s waiting for: $what"
}

agg_pid="" agg_tmp=""
cleanup() {
  local rc=$?
  # The throwaway extension server of the aggregation check (started by us).
  if [[ -n "$agg_pid" ]]; then kill "$agg_pid" 2>/dev/null || true; fi
  if [[ -n "$agg_tmp" ]]; then rm -rf "$agg_tmp"; fi
  if [[ "${WAVELET_SMOKE_KEEP:-0}" == 1 ]]; then
    log "WAVELET_SMOKE_KEEP=1: leaving cluster '$name' running (kubeconfig: $(cluster_kubeconfig "$name"))"
  elif ((rc != 0)); then
    # Keep the component logs, then don't leave a broken cluster running.
    local saved
    saved="$(mktemp -d "${TMPDIR:-/tmp}/wavelet-smoke-logs.XXXXXX")"
    cp -r "$(cluster_dir "$name")/logs/." "$saved/" 2>/dev/null || true
    log "FAILED (exit $rc); component logs saved in $saved; deleting cluster '$name'"
    "$here/down.sh" "$name" || true
  fi
}
trap cleanup EXIT

# --- up ---------------------------------------------------------------------
step "build (cached) + up"
"$here/build.sh" >/dev/null
t=$SECONDS
kubeconfig="$("$here/up.sh" "$name" | tail -n1)"
up_secs=$((SECONDS - t))
ok "up in ${up_secs}s, kubeconfig $kubeconfig"

kubectl="$K8S_BIN_DIR/kubectl"
k() { "$kubectl" --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }

k get nodes >&2
k create namespace "$ns" >/dev/null

# Pods matching selector $1 that are not being deleted, as "phase ready image"
# lines. (kubectl's jsonpath has no "not" filter: print the deletionTimestamp
# first and keep the lines where it is empty.)
pod_states() {
  k -n "$ns" get pods -l "$1" \
    -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}|{.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.spec.containers[0].image}{"\n"}{end}' |
    sed -n 's/^|//p'
}
# Number of pods matching selector $1 that are Ready=True and not being deleted.
ready_pods() { pod_states "$1" | grep -c '^[A-Za-z]* True ' || true; }
count_eq() { [[ "$("${@:2}")" == "$1" ]]; }

# --- Deployments roll out ---------------------------------------------------
step "Deployment with 3 replicas rolls out"
t=$SECONDS
k -n "$ns" create deployment web --image=example.invalid/web:v1 --replicas=3 >/dev/null
k -n "$ns" rollout status deployment/web --timeout=120s >&2
wait_for 60 "3 Ready web pods" count_eq 3 ready_pods app=web
ok "3/3 pods Ready after $((SECONDS - t))s"
pod_states app=web >&2

step "image change rolls out, then scale to 5"
t=$SECONDS
k -n "$ns" set image deployment/web web=example.invalid/web:v2 >/dev/null
k -n "$ns" rollout status deployment/web --timeout=120s >&2
v2_ready() { [[ "$(pod_states app=web | grep -c '^Running True example.invalid/web:v2$')" == 3 ]]; }
wait_for 60 "3 Ready v2 pods" v2_ready
k -n "$ns" scale deployment/web --replicas=5 >/dev/null
k -n "$ns" rollout status deployment/web --timeout=120s >&2
wait_for 60 "5 Ready web pods" count_eq 5 ready_pods app=web
ok "rolled out v2 and scaled to 5 in $((SECONDS - t))s"

# --- never-ready pods ---------------------------------------------------------
step "never-ready pods: image containing 'never-ready' / label wavelet.dev/kwok-never-ready"
k -n "$ns" create deployment stuck-image --image=example.invalid/never-ready:v1 --replicas=2 >/dev/null
k -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck-label
spec:
  replicas: 2
  selector:
    matchLabels: {app: stuck-label}
  template:
    metadata:
      labels:
        app: stuck-label
        wavelet.dev/kwok-never-ready: "true"
    spec:
      containers:
      - name: main
        image: example.invalid/model-server:v1
EOF
running_unready() { pod_states "$1" | grep -c '^Running False ' || true; }
wait_for 60 "2 Running+NotReady stuck-image pods" count_eq 2 running_unready app=stuck-image
wait_for 60 "2 Running+NotReady stuck-label pods" count_eq 2 running_unready app=stuck-label
sleep 5 # and they stay that way
count_eq 0 ready_pods app=stuck-image || die "a stuck-image pod became Ready"
count_eq 0 ready_pods app=stuck-label || die "a stuck-label pod became Ready"
if k -n "$ns" rollout status deployment/stuck-label --timeout=5s >/dev/null 2>&1; then
  die "rollout of stuck-label unexpectedly succeeded"
fi
ok "pods Running but never Ready; rollout status times out"
pod_states app=stuck-label >&2

step "rollout to a never-ready image stalls; rollout undo recovers"
k -n "$ns" set image deployment/web web=example.invalid/never-ready:v3 >/dev/null
if k -n "$ns" rollout status deployment/web --timeout=15s >/dev/null 2>&1; then
  die "rollout to never-ready image unexpectedly succeeded"
fi
avail="$(k -n "$ns" get deployment web -o jsonpath='{.status.availableReplicas}')"
((avail >= 4)) || die "expected the old ReplicaSet to stay available (availableReplicas=$avail)"
k -n "$ns" rollout undo deployment/web >/dev/null
k -n "$ns" rollout status deployment/web --timeout=120s >&2
ok "stalled with $avail/5 available, undo rolled back"

# --- RBAC + ServiceAccount tokens -------------------------------------------
step "RBAC: ServiceAccount token without permissions is forbidden (403)"
k -n "$ns" create serviceaccount operator >/dev/null
token="$(k -n "$ns" create token operator --duration=10m)"
server="$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(k config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
# A kubeconfig-less kubectl that authenticates ONLY with the token.
as_sa() { "$kubectl" --kubeconfig=/dev/null --server="$server" --certificate-authority="$ca" --token="$1" "${@:2}"; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $1" "$server$2"; }

whoami="$(as_sa "$token" auth whoami -o jsonpath='{.status.userInfo.username}')"
[[ "$whoami" == "system:serviceaccount:$ns:operator" ]] || die "token authenticates as '$whoami'"
if out="$(as_sa "$token" -n "$ns" get deployments 2>&1)"; then die "SA could list deployments without RBAC"; fi
[[ "$out" == *Forbidden* ]] || die "expected Forbidden, got: $out"
code="$(http_code "$token" "/apis/apps/v1/namespaces/$ns/deployments")"
[[ "$code" == 403 ]] || die "expected HTTP 403, got $code"
ok "authenticated as $whoami; list deployments -> HTTP $code Forbidden"

step "RBAC: after Role + RoleBinding the same token is allowed"
k -n "$ns" create role deploy-reader --verb=get,list,watch --resource=deployments.apps >/dev/null
k -n "$ns" create rolebinding operator-deploy-reader --role=deploy-reader --serviceaccount="$ns:operator" >/dev/null
wait_for 30 "RBAC grant to take effect" as_sa "$token" -n "$ns" get deployments
code="$(http_code "$token" "/apis/apps/v1/namespaces/$ns/deployments")"
[[ "$code" == 200 ]] || die "expected HTTP 200 after RoleBinding, got $code"
code="$(http_code "$token" "/api/v1/namespaces/$ns/secrets")"
[[ "$code" == 403 ]] || die "expected HTTP 403 for secrets (not granted), got $code"
[[ "$(k auth can-i delete deployments -n "$ns" --as="system:serviceaccount:$ns:operator")" == no ]] ||
  die "SA should not be allowed to delete deployments"
# The helper tests can use to run a client (e.g. the operator) as the SA.
sa_kubeconfig="$("$here/sa-kubeconfig.sh" "$ns" operator "$name" 10m | tail -n1)"
"$kubectl" --kubeconfig "$sa_kubeconfig" get deployments >/dev/null || die "sa-kubeconfig.sh: list deployments failed"
if "$kubectl" --kubeconfig "$sa_kubeconfig" get secrets >/dev/null 2>&1; then die "sa-kubeconfig.sh: secrets not forbidden"; fi
ok "list deployments -> 200, list secrets -> 403, delete deployments -> no (raw token and sa-kubeconfig.sh)"

step "token controller populates a legacy ServiceAccount token Secret"
k -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Secret
metadata:
  name: operator-token
  annotations:
    kubernetes.io/service-account.name: operator
type: kubernetes.io/service-account-token
EOF
legacy_token() { k -n "$ns" get secret operator-token -o jsonpath='{.data.token}' | base64 -d; }
has_legacy_token() { [[ -n "$(legacy_token 2>/dev/null)" ]]; }
wait_for 30 "token controller to fill Secret operator-token" has_legacy_token
code="$(http_code "$(legacy_token)" "/apis/apps/v1/namespaces/$ns/deployments")"
[[ "$code" == 200 ]] || die "legacy token: expected HTTP 200, got $code"
ok "legacy token works (HTTP $code)"

# --- aggregated API through the front proxy ------------------------------------
step "aggregated API: APIService -> selector-less Service + EndpointSlice -> https server on the host"
# See README "Aggregated APIs". Needs node (the extension server) and a
# non-loopback IPv4 address (EndpointSlices reject 127.0.0.0/8).
if ! command -v node >/dev/null 2>&1; then
  log "   SKIPPED: node not found"
elif ! host_ip="$(host_ipv4)"; then
  log "   SKIPPED: this machine has no non-loopback IPv4 address"
else
  t=$SECONDS
  agg_tmp="$(mktemp -d "${TMPDIR:-/tmp}/wavelet-smoke-agg.XXXXXX")"
  # Serving cert for agg.<ns>.svc (the name the aggregator verifies) from a throwaway CA.
  (
    cd "$agg_tmp"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
      -days 1 -subj /CN=smoke-agg-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr -subj "/CN=agg.$ns.svc"
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" -days 1 -out tls.crt \
      -extfile <(printf '%s\n' "subjectAltName=DNS:agg.$ns.svc" extendedKeyUsage=serverAuth)
  ) >/dev/null 2>&1 || die "openssl failed (throwaway serving cert)"
  # Only clients with a cert from the front-proxy CA get in; one JSON line per request.
  cat >"$agg_tmp/server.mjs" <<'EOF'
import fs from 'node:fs';
import https from 'node:https';
const [host, dir, frontProxyCa] = process.argv.slice(2);
const server = https.createServer({
  key: fs.readFileSync(`${dir}/tls.key`), cert: fs.readFileSync(`${dir}/tls.crt`),
  ca: fs.readFileSync(frontProxyCa), requestCert: true, rejectUnauthorized: true,
}, (req, res) => {
  console.log(JSON.stringify({
    url: req.url, authorized: req.socket.authorized, cn: req.socket.getPeerCertificate().subject?.CN,
    user: req.headers['x-remote-user'], groups: req.headersDistinct['x-remote-group'] ?? [],
  }));
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'smoke.wavelet.dev/v1alpha1', resources: [] }));
});
server.listen(0, host, () => console.log(`LISTEN ${server.address().port}`));
EOF
  node "$agg_tmp/server.mjs" "$host_ip" "$agg_tmp" "$(front_proxy_dir "$name")/front-proxy-ca.crt" \
    >"$agg_tmp/server.log" 2>&1 </dev/null &
  agg_pid=$!
  wait_for 10 "the extension server to listen" grep -q '^LISTEN ' "$agg_tmp/server.log"
  port="$(sed -n 's/^LISTEN //p' "$agg_tmp/server.log")"
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: agg, namespace: $ns}
spec:
  ports: [{name: https, port: 443, targetPort: $port}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: agg-1
  namespace: $ns
  labels: {kubernetes.io/service-name: agg}
addressType: IPv4
endpoints: [{addresses: ["$host_ip"], conditions: {ready: true}}]
ports: [{name: https, port: $port, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.smoke.wavelet.dev}
spec:
  group: smoke.wavelet.dev
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 10
  service: {name: agg, namespace: $ns, port: 443}
  caBundle: $(base64 -w0 "$agg_tmp/ca.crt")
EOF
  available() {
    [[ "$(k get apiservice v1alpha1.smoke.wavelet.dev -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" == True ]]
  }
  wait_for 30 "APIService v1alpha1.smoke.wavelet.dev Available=True" available
  out="$(k get --raw /apis/smoke.wavelet.dev/v1alpha1)"
  [[ "$out" == *'"groupVersion":"smoke.wavelet.dev/v1alpha1"'* ]] || die "unexpected aggregated response: $out"
  me="$(k auth whoami -o jsonpath='{.status.userInfo.username}')"
  # (the request line carries kubectl's ?timeout=20s)
  grep -F '{"url":"/apis/smoke.wavelet.dev/v1alpha1' "$agg_tmp/server.log" |
    grep -qF "\"authorized\":true,\"cn\":\"front-proxy-client\",\"user\":\"$me\"," ||
    die "the extension server saw no request from front-proxy-client for user $me: $(cat "$agg_tmp/server.log")"
  # An APIService that is not Available blocks namespace deletion (discovery
  # fails) and garbage collection: always delete it when done.
  k delete apiservice v1alpha1.smoke.wavelet.dev >/dev/null
  k -n "$ns" delete service agg >/dev/null
  k -n "$ns" delete endpointslice agg-1 >/dev/null
  kill "$agg_pid" 2>/dev/null || true
  agg_pid=""
  rm -rf "$agg_tmp" && agg_tmp=""
  ok "Available; GET /apis/smoke.wavelet.dev/v1alpha1 proxied to $host_ip:$port as $me (cert CN front-proxy-client) in $((SECONDS - t))s"
fi

# --- garbage collection -------------------------------------------------------
step "garbage collector: deleting an owner deletes its dependents"
k -n "$ns" create configmap owner >/dev/null
owner_uid="$(k -n "$ns" get configmap owner -o jsonpath='{.metadata.uid}')"
k -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: $owner_uid
EOF
k -n "$ns" delete configmap owner >/dev/null
gone() { ! k -n "$ns" get "$@" >/dev/null 2>&1; }
wait_for 60 "dependent ConfigMap to be garbage-collected" gone configmap dependent
ok "dependent ConfigMap deleted by GC"
k -n "$ns" delete deployment stuck-label >/dev/null # background cascade via GC
no_pods() { [[ -z "$(k -n "$ns" get replicasets,pods -l "$1" -o name)" ]]; }
wait_for 60 "stuck-label ReplicaSet + pods to be garbage-collected" no_pods app=stuck-label
ok "deleting a Deployment removed its ReplicaSet and pods"

# --- apiserver restart ------------------------------------------------------
step "apiserver restart (SIGKILL + kwokctl start); cluster keeps working"
t=$SECONDS
"$here/apiserver.sh" restart "$name"
k -n "$ns" create deployment after-restart --image=example.invalid/web:v1 --replicas=2 >/dev/null
k -n "$ns" rollout status deployment/after-restart --timeout=180s >&2
ok "new Deployment rolled out $((SECONDS - t))s after the restart began"
k -n "$ns" scale deployment/web --replicas=3 >/dev/null
k -n "$ns" rollout status deployment/web --timeout=180s >&2
wait_for 60 "3 Ready web pods" count_eq 3 ready_pods app=web
ok "scaled web back to 3"

# --- down -------------------------------------------------------------------
if [[ "${WAVELET_SMOKE_KEEP:-0}" != 1 ]]; then
  step "down"
  dir="$(cluster_dir "$name")"
  t=$SECONDS
  "$here/down.sh" "$name"
  [[ ! -e "$dir" ]] || die "cluster dir $dir still exists"
  [[ -z "$(cluster_processes "$dir")" ]] || die "processes left behind"
  ok "down in $((SECONDS - t))s, no processes left"
fi

log "ALL SMOKE CHECKS PASSED in $((SECONDS - t_all))s (up ${up_secs}s)"
