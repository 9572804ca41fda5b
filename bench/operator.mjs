// Operator benchmark (not a test): N WaveletModels applied at once on the local control
// plane (e2e/cluster, kwok nodes), then one bundle change.
//
//   node bench/operator.mjs [N]        (default 200; bench/operator.sh brings the cluster up)
//
// Prints: seconds until all N are Ready, reconciles per second over that time, the
// operator's peak memory (VmHWM), and the time from a bundle change to the active
// Service's switch (median of several changes).
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { parse } from "yaml";

const N = Number(process.argv[2] ?? 200);
const kubeconfig = process.env.KUBECONFIG;
if (!kubeconfig) throw new Error("KUBECONFIG must point at the benchmark cluster (bench/operator.sh sets it)");
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const ns = `bench-${Date.now().toString(36)}`;
const base = { group: "wavelet.dev", version: "v1alpha1", namespace: ns, plural: "waveletmodels" };
const digest = (c) => `sha256:${c.repeat(64)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The V8 flags the operator's Deployment runs it with, as the Helm chart renders them.
const chartNodeOptions = () => {
  const helm = `${execFileSync("e2e/kind/build.sh", ["helm"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").at(-1)}/helm`;
  const deployment = parse(execFileSync(helm, ["template", "charts/wavelet-operator", "--show-only", "templates/deployment.yaml"], { encoding: "utf8" }));
  return deployment.spec.template.spec.containers[0].env.find((e) => e.name === "NODE_OPTIONS").value;
};
const nodeOptions = process.env.OPERATOR_NODE_OPTIONS ?? chartNodeOptions();

await core.createNamespace({ body: { metadata: { name: ns } } });
const port = 18000 + Math.floor(Math.random() * 1000);
const operator = spawn(process.execPath, [...nodeOptions.split(" ").filter(Boolean), "operator/dist/main.js"], {
  env: { ...process.env, WATCH_NAMESPACE: ns, LEADER_ELECTION: "false", PORT: String(port), LOG_LEVEL: "warn", SERVER_IMAGE: "wavelet-server:bench" },
  stdio: ["ignore", "ignore", "pipe"],
});
let operatorLog = "";
operator.stderr.on("data", (d) => (operatorLog = (operatorLog + d.toString()).slice(-20_000)));
const fail = (error) => {
  operator.kill("SIGKILL");
  console.error(`benchmark failed: ${error?.stack ?? error}\n--- operator log (tail) ---\n${operatorLog.slice(-4000)}`);
  process.exit(1);
};
process.on("unhandledRejection", fail);
process.on("uncaughtException", fail);
const peakMemoryMiB = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${operator.pid}/status`, "utf8"))[1]) / 1024;
const reconciles = async () => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return [...text.matchAll(/^wavelet_operator_reconciles_total\{result="[^"]+"\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
};
for (;;) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
  } catch {}
  await sleep(100);
}

const spec = (c) => ({ bundle: { builtin: "spx-return-1d", digest: digest(c), version: c }, replicas: 1, rollout: { scaleDownDelaySeconds: 1 } });
const before = await reconciles();
const started = performance.now();
const names = Array.from({ length: N }, (_, i) => `m${String(i).padStart(4, "0")}`);
for (let i = 0; i < names.length; i += 25) {
  await Promise.all(
    names.slice(i, i + 25).map((name) =>
      custom.createNamespacedCustomObject({ ...base, body: { apiVersion: "wavelet.dev/v1alpha1", kind: "WaveletModel", metadata: { name }, spec: spec("a") } }),
    ),
  );
}
const applied = performance.now();
let ready = 0;
while (ready < N) {
  const list = await custom.listNamespacedCustomObject(base);
  ready = list.items.filter((m) => m.status?.phase === "Ready").length;
  if (ready < N) await sleep(250);
  if (performance.now() - started > 600_000) throw new Error(`only ${ready}/${N} Ready after 10 minutes`);
}
const allReady = (performance.now() - started) / 1000;
const reconcileCount = (await reconciles()) - before;

// Bundle change → the active Service's selector switches colour.
const switches = [];
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
for (const [i, c] of ["b", "c", "d", "e", "f"].entries()) {
  const name = names[i];
  const svc = await core.readNamespacedService({ name, namespace: ns });
  const from = svc.spec.selector["wavelet.dev/color"];
  const t0 = performance.now();
  await custom.patchNamespacedCustomObject({ ...base, name, body: { spec: { bundle: { digest: digest(c), version: c } } } }, merge);
  for (;;) {
    const now = await core.readNamespacedService({ name, namespace: ns });
    if (now.spec.selector["wavelet.dev/color"] !== from) break;
    await sleep(20);
  }
  switches.push((performance.now() - t0) / 1000);
}
switches.sort((a, b) => a - b);
const memory = peakMemoryMiB();
const metricsText = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
const gauge = (name) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(metricsText)?.[1] ?? NaN) / 2 ** 20;
const heapUsed = gauge("nodejs_heap_size_used_bytes");
const rssNow = gauge("process_resident_memory_bytes");
operator.kill("SIGTERM");
await core.deleteNamespace({ name: ns });

console.log(
  JSON.stringify(
    {
      models: N,
      seconds_to_apply: Number(((applied - started) / 1000).toFixed(2)),
      seconds_until_all_ready: Number(allReady.toFixed(2)),
      reconciles: reconcileCount,
      reconciles_per_second: Number((reconcileCount / allReady).toFixed(1)),
      operator_peak_rss_mib: Number(memory.toFixed(1)),
      operator_rss_at_end_mib: Number(rssNow.toFixed(1)),
      operator_heap_used_at_end_mib: Number(heapUsed.toFixed(1)),
      node_options: nodeOptions,
      bundle_change_to_service_switch_seconds: { median: Number(switches[2].toFixed(3)), min: Number(switches[0].toFixed(3)), max: Number(switches[4].toFixed(3)) },
    },
    null,
    2,
  ),
);
process.exit(0);
