// The two controllers bench/operator.mjs compares, behind one interface, so every measurement
// there is one function for both: our operator (WaveletModel) and Argo Rollouts (Rollout plus
// the two Services it switches). Both get the same model: 1 replica of our pod template
// (server container, readiness probe), blue-green with auto-promotion, the old pods kept 1 s.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { parse } from "yaml";
import { API_VERSION, KIND, waveletModel } from "../operator/dist/api/waveletmodel.js";
import { parseConfig } from "../operator/dist/config.js";
import { desiredReplicaSet } from "../operator/dist/reconcile/replicaset.js";
import { LABELS, TEMPLATE_HASH } from "../operator/dist/reconcile/names.js";
import { samples } from "../server/dist/client/histogram.js";
import { desiredServices } from "../operator/dist/reconcile/service.js";

const SERVER_IMAGE = "wavelet-server:bench";
/** The operator's settings when the environment sets none. */
const DEFAULTS = parseConfig({});
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const digest = (version) => `sha256:${createHash("sha256").update(version).digest("hex")}`;
/** Our spec for bundle `version`: what both controllers roll out. */
const modelSpec = (version) => ({ bundle: { builtin: "spx-return-1d", digest: digest(version), version }, replicas: 1, rollout: { scaleDownDelaySeconds: 1 } });

/** Sum of the samples of `name` in a Prometheus text exposition whose labels include `match`. */
const metricSum = (text, name, match = {}) => [...samples(text, name, match).values()].reduce((sum, v) => sum + v, 0);

/**
 * A controller process: `metrics()` is its Prometheus text, `stop()` ends it, `exited`
 * resolves with its exit code or signal. The log tail goes into a failure report.
 */
function controllerProcess(command, args, env, metricsUrl) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const keep = (d) => (log = (log + d.toString()).slice(-20_000));
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal)));
  // Never outlive the benchmark, however it ends (a no-op once the child has exited).
  const kill = () => child.kill("SIGKILL");
  process.on("exit", kill);
  return {
    pid: child.pid,
    logTail: () => log.slice(-4000),
    metrics: async () => (await fetch(metricsUrl)).text(),
    exited,
    async stop() {
      child.kill("SIGTERM");
      const timeout = new Promise((resolve) => setTimeout(resolve, 10_000, "timeout").unref());
      if ((await Promise.race([exited, timeout])) === "timeout") child.kill("SIGKILL");
      await exited;
      process.off("exit", kill);
    },
  };
}

/** Polls `check` until it is true; fails if the process exits or `seconds` pass. */
async function until(controller, what, check, seconds = 120) {
  let exit;
  controller.exited.then((status) => (exit = status));
  for (const deadline = performance.now() + seconds * 1000; performance.now() < deadline; await sleep(100)) {
    if (exit !== undefined) throw new Error(`${what} exited (${exit}) before it was ready\n${controller.logTail()}`);
    try {
      if (await check()) return;
    } catch {} // not listening yet
  }
  throw new Error(`${what}: not ready after ${seconds} s\n${controller.logTail()}`);
}

// The V8 flags the operator's Deployment runs it with, as the Helm chart renders them.
function chartNodeOptions() {
  const helm = `${execFileSync("e2e/kind/build.sh", ["helm"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").at(-1)}/helm`;
  const deployment = parse(execFileSync(helm, ["template", "charts/wavelet-operator", "--show-only", "templates/deployment.yaml"], { encoding: "utf8" }));
  return deployment.spec.template.spec.containers[0].env.find((e) => e.name === "NODE_OPTIONS").value;
}

/**
 * Our operator, as its image and chart run it (the bundle of scripts/bundle-operator.sh, the
 * chart's V8 flags), watching one namespace. `clientLimits` {qps, burst}
 * replaces its client-side rate limit (KUBE_API_QPS / KUBE_API_BURST; else its defaults).
 */
export function ours({ kubeconfig, clientLimits }) {
  const resource = { group: "wavelet.dev", version: "v1alpha1", plural: "waveletmodels" };
  let nodeOptions;
  return {
    name: "wavelet-operator",
    resource,
    clientLimits: clientLimits ?? { qps: DEFAULTS.KUBE_API_QPS, burst: DEFAULTS.KUBE_API_BURST },
    async start({ ns, ports: [port] }) {
      nodeOptions ??= process.env.OPERATOR_NODE_OPTIONS ?? chartNodeOptions();
      const env = { KUBECONFIG: kubeconfig, WATCH_NAMESPACE: ns, LEADER_ELECTION: "false", PORT: String(port), LOG_LEVEL: "warn", SERVER_IMAGE };
      if (clientLimits) Object.assign(env, { KUBE_API_QPS: String(clientLimits.qps), KUBE_API_BURST: String(clientLimits.burst) });
      const args = [...nodeOptions.split(" ").filter(Boolean), "operator/dist/bundle/main.mjs"];
      const controller = controllerProcess(process.execPath, args, env, `http://127.0.0.1:${port}/metrics`);
      await until(controller, "wavelet-operator", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
      return { ...controller, settings: { NODE_OPTIONS: nodeOptions, ...env } };
    },
    create: ({ custom, ns }, name, version) =>
      custom.createNamespacedCustomObject({ ...resource, namespace: ns, body: { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec: modelSpec(version) } }),
    change: ({ custom, ns }, name, version) =>
      custom.patchNamespacedCustomObject({ ...resource, namespace: ns, name, body: { spec: { bundle: modelSpec(version).bundle } } }, merge),
    isReady: (m) => m.status?.phase === "Ready" && m.status.observedGeneration === m.metadata.generation,
    // Every write a pass sends (applies, status, spec, deletes, Events), and the passes.
    counters: (text) => ({
      passes: metricSum(text, "wavelet_operator_pass_writes_count"),
      reconciles: metricSum(text, "wavelet_operator_reconciles_total"),
      conflicts: metricSum(text, "wavelet_operator_reconciles_total", { result: "conflict" }),
      reconcile_seconds: metricSum(text, "wavelet_operator_reconcile_duration_seconds_sum"),
      writes: metricSum(text, "wavelet_operator_pass_writes_sum"),
      applies: metricSum(text, "wavelet_operator_applies_total"),
      applies_skipped: metricSum(text, "wavelet_operator_applies_skipped_total"),
      // Time its requests waited for its own client-side limit.
      throttled_seconds: metricSum(text, "wavelet_operator_api_throttled_seconds_total"),
    }),
  };
}

/**
 * Argo Rollouts' controller (bench/argo/build.sh) for one namespace, without leader election,
 * logging at warn like ours. `clientLimits` {qps, burst} replaces its --qps / --burst
 * (default 40 / 80).
 */
export function argo({ bin, kubeconfig, clientLimits }) {
  const resource = { group: "argoproj.io", version: "v1alpha1", plural: "rollouts" };
  // The Rollout and Services of model `name` from our operator's own builders: the pod
  // template of its ReplicaSets less the colour label and hash (Argo adds its own), and its
  // two Services selecting the model's pods (Argo adds the pod-template-hash to the selector).
  const model = (ns, name, version) => {
    const wm = waveletModel.parse({ apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns, uid: "" }, spec: modelSpec(version) });
    const { template, selector } = desiredReplicaSet(wm, wm.spec, "blue", wm.spec.replicas, { defaultServerImage: SERVER_IMAGE }).spec;
    delete template.metadata.labels[LABELS.color];
    delete template.metadata.annotations[TEMPLATE_HASH];
    delete selector.matchLabels[LABELS.color];
    const services = desiredServices(wm, "blue", "green").map(({ metadata: { ownerReferences, ...metadata }, ...service }) => {
      delete service.spec.selector[LABELS.color];
      return { ...service, metadata };
    });
    return { wm, template, selector, services };
  };
  return {
    name: "argo-rollouts",
    resource,
    clientLimits: clientLimits ?? { qps: 40, burst: 80 },
    async start({ ns, ports: [port, healthzPort] }) {
      const args = ["--kubeconfig", kubeconfig, "--namespaced", "--namespace", ns, "--leader-elect=false", "--loglevel", "warn"];
      // Both listen on 0.0.0.0 (no flag for the address).
      args.push("--metricsport", String(port), "--healthzPort", String(healthzPort));
      if (clientLimits) args.push("--qps", String(clientLimits.qps), "--burst", String(clientLimits.burst));
      // Its notification settings are read from POD_NAMESPACE (default argo-rollouts).
      const controller = controllerProcess(`${bin}/rollouts-controller`, args, { POD_NAMESPACE: ns }, `http://127.0.0.1:${port}/metrics`);
      // Workers start right after the informers' first lists; at warn it logs nothing then,
      // so wait for those lists in its request metric.
      const listed = (text, kind) => metricSum(text, "controller_clientset_k8s_request_total", { kind, verb: "List", status_code: "200" }) > 0;
      await until(controller, "argo-rollouts", async () => {
        const text = await controller.metrics();
        return ["rollouts", "replicasets", "services"].every((kind) => listed(text, kind));
      });
      return { ...controller, settings: { args: args.join(" "), POD_NAMESPACE: ns } };
    },
    // The Services a Rollout names are the user's to create, first (Argo waits for them): within
    // the clock, as ours creates its own within it. Creating a Service is the slowest write
    // here (a ClusterIP to allocate: ~160 ms each under this load), so leaving them out gave
    // Argo a head start of 400 of them.
    async create({ core, custom, ns }, name, version) {
      const { wm, template, selector, services } = model(ns, name, version);
      await Promise.all(services.map((body) => core.createNamespacedService({ namespace: ns, body })));
      const [active, preview] = services.map((s) => s.metadata.name);
      const spec = {
        replicas: wm.spec.replicas,
        revisionHistoryLimit: 2,
        progressDeadlineSeconds: wm.spec.rollout.progressDeadlineSeconds,
        selector,
        template,
        strategy: {
          blueGreen: {
            activeService: active,
            previewService: preview,
            autoPromotionEnabled: wm.spec.rollout.autoPromote,
            scaleDownDelaySeconds: wm.spec.rollout.scaleDownDelaySeconds,
          },
        },
      };
      return custom.createNamespacedCustomObject({ ...resource, namespace: ns, body: { apiVersion: "argoproj.io/v1alpha1", kind: "Rollout", metadata: { name }, spec } });
    },
    change: ({ custom, ns }, name, version) =>
      custom.patchNamespacedCustomObject({ ...resource, namespace: ns, name, body: { spec: { template: model(ns, name, version).template } } }, merge),
    // v1.8.5 rolloututil.CalculateRolloutPhase: Healthy = every replica updated and available,
    // the active Service on the current pod hash, and that ReplicaSet stable.
    isReady: (r) => r.status?.phase === "Healthy" && r.status.observedGeneration === String(r.metadata.generation),
    // Every request its clients send, by verb (Events included); the passes of its Rollout loop.
    counters: (text) => ({
      passes: metricSum(text, "rollout_reconcile_count"),
      writes: ["Create", "Update", "Patch", "Delete"].reduce((sum, verb) => sum + metricSum(text, "controller_clientset_k8s_request_total", { verb }), 0),
    }),
  };
}
