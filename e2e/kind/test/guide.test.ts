import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../../test-support/wait.js";
import { kube, kubectl, onNode, scenarioNamespace, seconds, waitFor, waitReady } from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 1: the operator installed by Helm (setup.ts), the example applied as a user would
 * (`kubectl apply -f crds/examples/spx-return-1d.yaml`), and the original guide's curl
 * commands sent through the model's Service — by curl on the node, to the Service's cluster
 * address — answer exactly what `make run` answers on this machine (/metrics from a pod's
 * metrics port: the Services carry the API only).
 */

const root = resolve(import.meta.dirname, "../../..");
const EXAMPLE = `${root}/crds/examples/spx-return-1d.yaml`;
const FEATURES = "[0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]";
// The README's (and the guide's) curl examples: method, path, body.
const GUIDE: [string, string, string?][] = [
  ["GET", "/health"],
  ["POST", "/predict", `{"features": ${FEATURES}, "model_type": "ensemble"}`],
  [
    "POST",
    "/predict/batch",
    `{"samples": [${FEATURES}, [0.2, 0.3, -0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]], "model_type": "ensemble", "return_confidence": true}`,
  ],
  ["POST", "/predict/stream", `{"features": ${FEATURES}, "window_size": 10, "model_type": "ensemble"}`],
  ["GET", "/metrics"],
];

const curlArgs = (base: string, [method, path, body]: [string, string, string?]) => [
  "-sS", "--max-time", "10", "-X", method, `${base}${path}`,
  ...(body ? ["-H", "Content-Type: application/json", "-d", body] : []),
];

/** What may differ between two servers answering the same request: uptime, reload times, metric values. */
function comparable(path: string, body: string): unknown {
  if (path === "/metrics") return [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
  if (path === "/predict/stream") return body.trim().split("\n").map((l) => JSON.parse(l));
  const json = JSON.parse(body);
  if (path === "/health") {
    delete json.uptime_seconds;
    delete json.last_reload?.at;
  }
  return json;
}

describe("1. helm install, then kubectl apply the example", () => {
  let local: ChildProcess | undefined;
  afterAll(() => void local?.kill("SIGTERM"));

  it("becomes Ready and answers the guide's curl examples through its Service as make run does", async () => {
    const k = kube();
    const namespace = await scenarioNamespace(k, "e2e-guide");
    const started = Date.now();
    kubectl(["apply", "-n", namespace, "-f", EXAMPLE]);
    const wm = await waitReady(k, namespace, "spx-return-1d");
    const readySeconds = seconds(Date.now() - started);
    expect(wm.status?.replicas).toBe(3);
    expect(wm.status?.readyReplicas).toBe(3);

    // The Service as clients in the cluster reach it (kube-proxy balancing over the pods).
    const svc = await k.core.readNamespacedService({ name: "spx-return-1d", namespace });
    const inCluster = `http://${svc.spec!.clusterIP}:${svc.spec!.ports![0]!.port}`;

    // `make run`: the server from this checkout with its defaults.
    const port = await freePort();
    local = spawn(process.execPath, [`${root}/server/dist/server.js`], {
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn" },
      stdio: "ignore",
    });
    const here = `http://127.0.0.1:${port}`;
    await waitFor("local server", async () => (await fetch(`${here}/health`)).ok);

    // /metrics: from a pod's metrics port (METRICS_PORT 9090), where Prometheus scrapes it; the
    // Services carry the API only (issue 22).
    const pods = await k.core.listNamespacedPod({ namespace, labelSelector: "wavelet.dev/model=spx-return-1d" });
    const podMetrics = `http://${pods.items.find((p) => p.status?.podIP)!.status!.podIP}:9090`;
    expect(onNode(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `${inCluster}/metrics`])).toBe("404");
    for (const command of GUIDE) {
      const remote = onNode(["curl", ...curlArgs(command[1] === "/metrics" ? podMetrics : inCluster, command)]);
      const mine = execFileSync("curl", curlArgs(here, command), { encoding: "utf8" });
      expect(comparable(command[1], remote), `${command[0]} ${command[1]}`).toEqual(comparable(command[1], mine));
    }
    recordResult({ scenario: "1. install + example, guide's curl examples", requests: GUIDE.length, failed: 0, readySeconds });
  });
});
