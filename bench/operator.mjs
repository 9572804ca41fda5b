// Blue-green controller benchmark (not a test; issue 13): our operator against Argo Rollouts
// on the local control plane of e2e/cluster (real apiserver, etcd, controller-manager and
// scheduler; 3 kwok nodes fake the kubelets, so pods turn Ready about 1 s after scheduling).
//
//   node bench/operator.mjs [N]        (default 200; bench/operator.sh builds and runs it)
//
// One cluster per kube-controller-manager client limit (its default 20/30, and 1000/2000):
// its ReplicaSet controller creates every pod of both subjects, and each of its
// controllers has its own client with that limit. On each, every subject (bench/subjects.mjs) in a fresh namespace, one
// after the other, with its default client-side limit (ours 100/200, Argo 40/80) and, on the
// raised cluster, both again at 1000/2000. A run: N models created in batches of 25, then
//   - seconds until all N report Ready (ours: phase Ready; Argo: phase Healthy), both for the
//     current generation;
//   - status lag: from the moment the last pod turned Ready to the moment all N were;
//   - template change → active Service selector switched, on SWITCHES models one at a time,
//     once every ReplicaSet's status is current (the controller-manager's backlog from the
//     creation burst would otherwise delay the pods of whichever subject reported Ready first);
//   - API writes until all Ready, and in a steady state: every model's labels touched once
//     (a pass each that should change, and so write, nothing);
//   - the controller's peak RSS (VmHWM), and its CPU time until all were Ready.
// Prints one table (ours, Argo and ours/Argo per setting), then all results as JSON.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, Watch, setHeaderOptions } from "@kubernetes/client-node";
import { PooledKubeConfig } from "../operator/dist/kube/pooled.js";
import { argo, ours } from "./subjects.mjs";

const N = Number(process.argv[2] ?? 200);
if (!Number.isInteger(N) || N < 1) throw new Error(`N must be a positive integer (got ${process.argv[2]})`);
const BATCH = 25;
const SWITCHES = Math.min(7, N);
const RAISED = { qps: 1000, burst: 2000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms) => Number((ms / 1000).toFixed(3));
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** Runs one of the repo's scripts; its result is its last stdout line. */
const script = (path, args = [], env = {}) =>
  execFileSync(path, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } }).trim().split("\n").at(-1);

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// utime + stime, in clock ticks (USER_HZ, 100 on Linux), after the command name's parentheses.
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const peakRssMiB = (pid) => Number((Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024).toFixed(1));

const podReady = (p) => !!p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");

/**
 * Watches the objects at `path` and when each turned `isReady` (the wall time its event came
 * in, performance.now() ms). `all(n)` resolves with the time n were ready at once;
 * `lastReady()` is when the last of the current objects first turned ready; `readyAt(key)` when
 * that one did. Objects are told apart by `keyOf` (their name by default). Resolves once the
 * watch is open; restarts it if it ends.
 */
async function readiness(kc, path, isReady, keyOf = (o) => o.metadata?.name) {
  const objects = new Map(); // name → { ready, readyAt }
  const waiters = new Set();
  let stopped = false;
  let abort;
  const count = () => [...objects.values()].filter((o) => o.ready).length;
  const onEvent = (type, obj) => {
    const now = performance.now();
    const name = keyOf(obj);
    if (type === "DELETED") objects.delete(name);
    else if (type === "ADDED" || type === "MODIFIED") {
      const ready = isReady(obj);
      objects.set(name, { ready, readyAt: objects.get(name)?.readyAt ?? (ready ? now : undefined) });
    } else return; // ERROR: the watch ends and restarts
    for (const w of waiters) if (count() >= w.n) waiters.delete(w), w.resolve(now);
  };
  const watch = async () => {
    abort = await new Watch(kc).watch(path, {}, onEvent, () => stopped || setTimeout(watch, 200));
  };
  await watch();
  return {
    all(n, timeoutSeconds = 600) {
      if (count() >= n) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const w = { n, resolve };
        waiters.add(w);
        setTimeout(() => {
          if (waiters.delete(w)) reject(new Error(`only ${count()}/${n} ready at ${path} after ${timeoutSeconds} s`));
        }, timeoutSeconds * 1000).unref();
      });
    },
    lastReady: () => Math.max(...[...objects.values()].map((o) => o.readyAt ?? Infinity)),
    readyAt: (key) => objects.get(key)?.readyAt,
    stop() {
      stopped = true;
      abort?.abort();
    },
  };
}

/** `each` for every name, BATCH at a time (as the models are created). */
async function inBatches(names, each) {
  for (let i = 0; i < names.length; i += BATCH) await Promise.all(names.slice(i, i + BATCH).map(each));
}

/** Counters of the subject's own metrics, and the difference of two readings. */
const counters = async (subject, controller) => subject.counters(await controller.metrics());
const delta = (after, before) => Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k]]));

/** Resolves once the subject's counters stayed the same for `stableMs` (at most `timeoutMs`). */
async function quiet(subject, controller, stableMs = 3000, timeoutMs = 60_000) {
  const deadline = performance.now() + timeoutMs;
  let last = JSON.stringify(await counters(subject, controller));
  let since = performance.now();
  while (performance.now() < deadline) {
    await sleep(500);
    const now = JSON.stringify(await counters(subject, controller));
    if (now !== last) [last, since] = [now, performance.now()];
    else if (performance.now() - since >= stableMs) return;
  }
  throw new Error(`${subject.name} kept writing for ${timeoutMs / 1000} s`);
}

/**
 * Until every ReplicaSet's status is current (the controller-manager has caught up with the
 * creation burst): a subject that reports Ready sooner than its ReplicaSets' status must not
 * have its switches measured behind that backlog, which at 20 QPS is seconds long.
 */
async function settled(ctx) {
  const t0 = performance.now();
  for (;;) {
    const { items } = await ctx.apps.listNamespacedReplicaSet({ namespace: ctx.ns });
    const current = (rs) => {
      const want = rs.spec.replicas ?? 1;
      const s = rs.status ?? {};
      return (s.observedGeneration ?? 0) >= (rs.metadata.generation ?? 0) && (s.replicas ?? 0) === want && (s.readyReplicas ?? 0) === want;
    };
    if (items.every(current)) return seconds(performance.now() - t0);
    if (performance.now() - t0 > 300_000) throw new Error("ReplicaSet status not current after 300 s");
    await sleep(250);
  }
}

/** Template change → the active Service's selector changes, for each model in turn. */
async function switchTimes(subject, ctx, names) {
  const times = [];
  for (const [i, name] of names.entries()) {
    const selector = async () => JSON.stringify((await ctx.core.readNamespacedService({ name, namespace: ctx.ns })).spec.selector);
    const from = await selector();
    const t0 = performance.now();
    await subject.change(ctx, name, `v${i + 2}`);
    while ((await selector()) === from) {
      if (performance.now() - t0 > 120_000) throw new Error(`${subject.name}: the active Service of ${name} did not switch in 120 s`);
      await sleep(20);
    }
    times.push({ model: name, seconds: seconds(performance.now() - t0) });
  }
  const sorted = times.map((t) => t.seconds).sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)],
    min: sorted[0],
    max: sorted.at(-1),
    above_1s: times.filter((t) => t.seconds > 1),
  };
}

/** Writes while nothing changes: every model's labels touched once, then quiet again. */
async function steadyState(subject, controller, ctx, names) {
  await quiet(subject, controller);
  const before = await counters(subject, controller);
  const body = { metadata: { labels: { "bench.wavelet.dev/touched": String(Date.now()) } } };
  await inBatches(names, (name) => ctx.custom.patchNamespacedCustomObject({ ...subject.resource, namespace: ctx.ns, name, body }, merge));
  await sleep(2000);
  await quiet(subject, controller);
  return { touched: names.length, ...delta(await counters(subject, controller), before) };
}

/** One subject on one cluster, in a namespace of its own that is gone when this returns. */
async function run(subject, cluster) {
  const { kc, core, custom } = cluster;
  const ns = `bench-${subject.name}-${Date.now().toString(36)}`;
  const ctx = { core, custom, apps: cluster.kc.makeApiClient(AppsV1Api), ns };
  const names = Array.from({ length: N }, (_, i) => `m${String(i).padStart(4, "0")}`);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  console.error(`[bench] ${cluster.name}: ${subject.name} (client ${subject.clientLimits.qps}/${subject.clientLimits.burst}) in ${ns}`);
  let controller;
  const watches = [];
  try {
    controller = await subject.start({ ns, ports: [await freePort(), await freePort()] });
    const { group, version, plural } = subject.resource;
    const models = await readiness(kc, `/apis/${group}/${version}/namespaces/${ns}/${plural}`, subject.isReady);
    // Both subjects' pods carry the model's label (bench/subjects.mjs): one pod per model here.
    const pods = await readiness(kc, `/api/v1/namespaces/${ns}/pods`, podReady, (p) => p.metadata?.labels?.["wavelet.dev/model"]);
    watches.push(models, pods);
    const before = await counters(subject, controller);
    const started = performance.now();
    await inBatches(names, (name) => subject.create(ctx, name, "v1"));
    const created = performance.now();
    const allReady = await models.all(N);
    const cpu = cpuSeconds(controller.pid);
    const lastPodReady = pods.lastReady();
    const lags = names.map((name) => models.readyAt(name) - pods.readyAt(name)).sort((x, y) => x - y);
    const untilReady = delta(await counters(subject, controller), before);
    const settle = await settled(ctx);
    const switches = await switchTimes(subject, ctx, names.slice(0, SWITCHES));
    await models.all(N);
    const steady = await steadyState(subject, controller, ctx, names);
    return {
      controller: subject.name,
      client_limits: subject.clientLimits,
      settings: controller.settings,
      namespace: ns,
      seconds_to_create: seconds(created - started),
      seconds_until_all_ready: seconds(allReady - started),
      seconds_until_last_pod_ready: seconds(lastPodReady - started),
      status_lag_seconds: seconds(allReady - lastPodReady),
      // Per model: its pod Ready → it reported Ready.
      model_status_lag_seconds: { median: seconds(lags[Math.floor(N / 2)]), p90: seconds(lags[Math.floor(N * 0.9)]), max: seconds(lags.at(-1)) },
      seconds_until_replicaset_status_current: settle,
      peak_rss_mib: peakRssMiB(controller.pid),
      cpu_seconds_until_all_ready: cpu,
      template_change_to_active_switch_seconds: switches,
      until_all_ready: untilReady,
      steady_state: steady,
    };
  } catch (error) {
    if (controller) error.message += `\n--- ${subject.name} log (tail) ---\n${controller.logTail()}`;
    throw error;
  } finally {
    for (const w of watches) w.stop();
    await controller?.stop();
    await core.deleteNamespace({ name: ns });
    // The next subject needs the nodes' pod slots and a controller-manager with nothing to do.
    for (const deadline = performance.now() + 600_000; ; await sleep(500)) {
      try {
        await core.readNamespace({ name: ns });
      } catch (e) {
        if (e.code === 404) break;
        throw e;
      }
      if (performance.now() > deadline) throw new Error(`namespace ${ns} still there after 600 s`);
    }
  }
}

const settings = [
  // kube-controller-manager's own default (pkg/controller/apis/config/v1alpha1/defaults.go)
  { cluster: "wavelet-bench", kcm: { qps: 20, burst: 30 }, env: {} },
  { cluster: "wavelet-bench-kcm", kcm: RAISED, env: { WAVELET_KCM_QPS: String(RAISED.qps), WAVELET_KCM_BURST: String(RAISED.burst) } },
];
const bin = script("e2e/cluster/build.sh");
const argoBin = script("bench/argo/build.sh");
const results = [];
// ONLY=1,3 runs just those column groups (while working on one setting).
const only = process.env.ONLY ? process.env.ONLY.split(",").map(Number) : undefined;
let group = 0;
for (const setting of settings) {
  const groups = setting.kcm === RAISED ? [++group, ++group] : [++group];
  if (only && !groups.some((g) => only.includes(g))) continue;
  const kubeconfig = script("e2e/cluster/up.sh", [setting.cluster], { WAVELET_KWOK_NODES: "3", ...setting.env });
  try {
    const kubectl = (...args) => execFileSync(`${bin}/kubectl`, ["--kubeconfig", kubeconfig, ...args], { stdio: ["ignore", "ignore", "inherit"] });
    kubectl("apply", "--server-side", "-f", "crds/waveletmodel.yaml", "-f", `${argoBin}/../crds`);
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s");
    // Keep-alive connections for the harness too: client-node's own agent-per-request made each
    // of its creates a new TLS handshake, which slowed whichever subject it created more for
    // (Argo: two Services besides each Rollout).
    const kc = new PooledKubeConfig();
    kc.loadFromFile(kubeconfig);
    const cluster = { name: setting.cluster, kc, core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
    // Each controller at its default client limit; where the controller-manager's is raised,
    // both again with theirs raised the same.
    const pairs = [[ours({ kubeconfig }), argo({ bin: argoBin, kubeconfig })]];
    if (setting.kcm === RAISED) pairs.push([ours({ kubeconfig, clientLimits: RAISED }), argo({ bin: argoBin, kubeconfig, clientLimits: RAISED })]);
    for (const [i, [o, a]] of pairs.entries()) {
      if (!only || only.includes(groups[i])) results.push({ group: groups[i], kcm: setting.kcm, ours: await run(o, cluster), argo: await run(a, cluster) });
    }
  } finally {
    script("e2e/cluster/down.sh", [setting.cluster]);
  }
}

// The table: a column group per (controller-manager limit, controllers' client limits).
const rows = [
  ["s to create all (harness)", (r) => r.seconds_to_create],
  ["s until all Ready/Healthy", (r) => r.seconds_until_all_ready],
  ["s until last pod Ready", (r) => r.seconds_until_last_pod_ready],
  ["status lag (last pod → all), s", (r) => r.status_lag_seconds],
  ["per model: pod → model Ready, median s", (r) => r.model_status_lag_seconds.median],
  ["per model: pod → model Ready, p90 s", (r) => r.model_status_lag_seconds.p90],
  ["per model: pod → model Ready, max s", (r) => r.model_status_lag_seconds.max],
  ["then ReplicaSet status current, s", (r) => r.seconds_until_replicaset_status_current],
  ["switch median, s", (r) => r.template_change_to_active_switch_seconds.median],
  ["switch min, s", (r) => r.template_change_to_active_switch_seconds.min],
  ["switch max, s", (r) => r.template_change_to_active_switch_seconds.max],
  ["switches > 1 s", (r) => r.template_change_to_active_switch_seconds.above_1s.length],
  ["peak RSS, MiB", (r) => r.peak_rss_mib],
  ["CPU s until all Ready", (r) => r.cpu_seconds_until_all_ready],
  ["API writes until all Ready", (r) => r.until_all_ready.writes],
  ["passes until all Ready", (r) => r.until_all_ready.passes],
  ["steady: passes after touching all", (r) => r.steady_state.passes],
  ["steady: API writes after touching all", (r) => r.steady_state.writes],
];
const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 1));
const ratio = (a, b) => (b ? (a / b).toFixed(2) : a === 0 ? "=" : "—");
const limits = ({ qps, burst }) => `${qps}/${burst}`;
const groups = results.map(
  (r) => `[${r.group}] kube-controller-manager ${limits(r.kcm)}; client limits: ours ${limits(r.ours.client_limits)}, Argo ${limits(r.argo.client_limits)}`,
);
const row = (label, cells) => `${label.padEnd(38)}${cells.map((c) => c.padStart(10)).join("")}`;
const lines = [
  `N=${N} models (1 replica), created in batches of ${BATCH}; ${SWITCHES} template changes; ours = wavelet-operator, argo = Argo Rollouts v1.8.5`,
  ...groups,
  "",
  row("", results.flatMap((r) => [`ours[${r.group}]`, `argo[${r.group}]`, "ours/argo"])),
  ...rows.map(([label, get]) => row(label, results.flatMap((r) => [fmt(get(r.ours)), fmt(get(r.argo)), ratio(get(r.ours), get(r.argo))]))),
  "",
  ...results.flatMap((r) =>
    ["ours", "argo"].flatMap((who) => {
      const slow = r[who].template_change_to_active_switch_seconds.above_1s;
      return slow.length ? [`[${r.group}] ${who}: switches above 1 s: ${slow.map((s) => `${s.model} ${s.seconds} s`).join(", ")}`] : [];
    }),
  ),
  ...results.map((r) => {
    const { touched, applies, applies_skipped } = r.ours.steady_state;
    const throttled = r.ours.until_all_ready.throttled_seconds.toFixed(2);
    return `[${r.group}] ours: its requests waited ${throttled} s in all (summed) for its client limit until all Ready; after touching ${touched} models: applies ${applies}, applies skipped ${applies_skipped}`;
  }),
];
console.log(lines.join("\n"));
console.log(JSON.stringify({ models: N, batch: BATCH, switches: SWITCHES, results }, null, 2));
process.exit(0);
