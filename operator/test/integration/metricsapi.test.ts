import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { networkInterfaces } from "node:os";
import { dirname, join } from "node:path";
import { PatchStrategy } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freePort } from "../../../test-support/wait.js";
import { makeCA, makeCert, pkiDir } from "../../../test-support/pki.js";
import { admin, models, modelSpec, type OperatorProcess, operatorNamespace, serviceAccountKubeconfig, startOperator, uniqueNamespace, waitFor } from "./harness.js";

/**
 * The operator's custom metrics API behind the real kube-aggregator of e2e/cluster (a front
 * proxy as kubeadm sets one up: its own CA, --requestheader-* flags, aggregator routing). The
 * operator runs as its own process on this machine with its ServiceAccount's token and the
 * chart's RBAC; the APIService reaches it through a selector-less Service whose EndpointSlice
 * holds this machine's address. kwok's pods have no server to scrape: real rates are the kind
 * scenario's (e2e/kind/test/rps-autoscale.test.ts).
 */

const APISERVICE = "v1beta2.custom.metrics.k8s.io";
const BASE = "/apis/custom.metrics.k8s.io/v1beta2";

/** This machine's first non-loopback IPv4 address: EndpointSlices refuse loopback ones. */
function hostAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === "IPv4" && !i.internal && !i.address.startsWith("169.254."));
  if (!found) throw new Error("this machine has no non-loopback IPv4 address for the APIService's endpoint");
  return found.address;
}

const kubectl = (args: string[]) =>
  new Promise<{ code: number; out: string; err: string }>((resolve) =>
    execFile(inject("kubectl"), args, { env: { ...process.env, KUBECONFIG: inject("kubeconfig") } }, (error, out, err) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out, err }),
    ),
  );

const raw = async (path: string, as?: string) => {
  const got = await kubectl(["get", "--raw", path, ...(as ? ["--as", as] : [])]);
  return { ...got, body: got.code === 0 ? JSON.parse(got.out) : undefined };
};

const a = admin();
let ns: string;
let operator: OperatorProcess;
let port: number;
let servingCA: string;

beforeAll(async () => {
  ns = await operatorNamespace(a, uniqueNamespace("metrics-api"), { templates: ["metrics-api-rbac"] });
  const service = `wavelet-operator-${ns}-metrics-api`;
  const dir = pkiDir();
  const ca = makeCA(dir, "serving-ca");
  servingCA = ca.cert;
  const serving = makeCert(dir, ca, "serving", { cn: service, dns: [`${service}.${ns}.svc`, "localhost", "127.0.0.1"] });
  const certDir = join(dir, "cert");
  mkdirSync(certDir);
  copyFileSync(serving.certFile, join(certDir, "tls.crt"));
  copyFileSync(serving.keyFile, join(certDir, "tls.key"));
  port = await freePort();
  operator = await startOperator(await serviceAccountKubeconfig(a, ns), ns, {
    METRICS_API: "true",
    METRICS_API_PORT: String(port),
    METRICS_API_CERT_DIR: certDir,
    METRICS_SCRAPE_INTERVAL_SECONDS: "1",
    METRICS_WINDOW_SECONDS: "4",
    METRICS_SCRAPE_TIMEOUT_SECONDS: "0.5",
  });
  // As the chart registers it, but with this machine's address behind the Service.
  const apply = (o: object) => a.objects.patch(o as never, undefined, undefined, "wavelet-tests", true, PatchStrategy.ServerSideApply);
  await apply({ apiVersion: "v1", kind: "Service", metadata: { name: service, namespace: ns }, spec: { ports: [{ name: "https", port: 443, targetPort: port }] } });
  await apply({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: service, namespace: ns, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    endpoints: [{ addresses: [hostAddress()], conditions: { ready: true } }],
    ports: [{ name: "https", port, protocol: "TCP" }],
  });
  await apply({
    apiVersion: "apiregistration.k8s.io/v1",
    kind: "APIService",
    metadata: { name: APISERVICE },
    spec: {
      group: "custom.metrics.k8s.io",
      version: "v1beta2",
      service: { name: service, namespace: ns, port: 443 },
      caBundle: Buffer.from(ca.cert).toString("base64"),
      groupPriorityMinimum: 100,
      versionPriority: 200,
    },
  });
}, 120_000);

afterAll(async () => {
  await kubectl(["delete", "apiservice", APISERVICE, "--ignore-not-found"]);
  await operator?.stop();
});

describe("the custom metrics API behind the kube-aggregator", () => {
  it("is registered and Available, and answers discovery through the API server", async () => {
    await waitFor(
      "the APIService Available",
      async () => {
        const got = await kubectl(["get", "apiservice", APISERVICE, "-o", "jsonpath={.status.conditions[?(@.type=='Available')].status}"]);
        return got.out === "True";
      },
      60_000,
    );
    const discovery = await raw(BASE);
    expect(discovery.body).toMatchObject({ kind: "APIResourceList", groupVersion: "custom.metrics.k8s.io/v1beta2" });
    expect(discovery.body.resources.map((r: { name: string }) => r.name).sort()).toEqual([
      "pods/queued_rows",
      "pods/requests_per_second",
      "waveletmodels.wavelet.dev/queued_rows",
      "waveletmodels.wavelet.dev/requests_per_second",
    ]);
  });

  it("answers pods/*/requests_per_second with a MetricValueList; pods it cannot scrape are absent, never 0", async () => {
    await models(a, ns).create("rps", modelSpec({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 4, targetRequestsPerSecond: 5 } }));
    await waitFor("the model's pods", async () => (await a.core.listNamespacedPod({ namespace: ns, labelSelector: "wavelet.dev/model=rps" })).items.length >= 2);
    // kwok's pods have addresses but no server: every scrape of them fails, and is counted.
    await waitFor("failed scrapes of the model's pods", async () => {
      const text = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
      const failed = [...text.matchAll(/^wavelet_operator_metrics_scrapes_total\{outcome="(error|timeout)"\} (\d+)/gm)].reduce((s, m) => s + Number(m[2]), 0);
      return failed >= 2;
    }, 30_000);
    const got = await raw(`${BASE}/namespaces/${ns}/pods/*/requests_per_second?labelSelector=${encodeURIComponent("wavelet.dev/model=rps")}`);
    expect(got.body).toEqual({ kind: "MetricValueList", apiVersion: "custom.metrics.k8s.io/v1beta2", metadata: {}, items: [] });
    const model = await raw(`${BASE}/namespaces/${ns}/waveletmodels.wavelet.dev/rps/requests_per_second`);
    expect(model.code).not.toBe(0);
    expect(model.err).toMatch(/NotFound.*none of its pods scraped recently/);
    expect((await raw(`${BASE}/namespaces/${ns}/waveletmodels.wavelet.dev/gone/requests_per_second`)).err).toMatch(/NotFound.*"gone" not found/);
  });

  it("is what the HPA controller asks: it holds the count rather than scaling on missing data", async () => {
    await waitFor(
      "the HPA controller to ask for requests_per_second",
      async () => {
        const hpa = await a.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: "rps", namespace: ns });
        const active = hpa.status?.conditions?.find((c) => c.type === "ScalingActive");
        return active?.status === "False" && active.reason === "FailedGetPodsMetric" && /requests_per_second/.test(active.message ?? "") && active;
      },
      60_000,
    );
    const text = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
    expect(Number(/^wavelet_operator_metrics_api_requests_total\{code="200"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);
    const rs = await a.apps.readNamespacedReplicaSet({ name: `rps-${(await models(a, ns).get("rps")).status!.activeColor}`, namespace: ns });
    expect(rs.spec?.replicas).toBe(2);
  });

  it("refuses a user the API server does not allow to read the metrics (SubjectAccessReview)", async () => {
    const denied = await raw(`${BASE}/namespaces/${ns}/pods/*/requests_per_second`, `system:serviceaccount:${ns}:nobody`);
    expect(denied.code).not.toBe(0);
    // The API server's own RBAC check, before it proxies.
    expect(denied.err).toMatch(/Forbidden.*system:serviceaccount:.*:nobody.*cannot get/);
  });

  /** A request straight to the operator's listener, as `user`, with the client certificate given. */
  const direct = (cert: { cert: string; key: string } | undefined, headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const path = `${BASE}/namespaces/${ns}/pods/*/requests_per_second`;
      const req = request({ host: "127.0.0.1", port, path, ca: servingCA, servername: "localhost", headers, ...cert, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on("error", reject);
      req.end();
    });
  const admin = { "X-Remote-User": "kwok-admin", "X-Remote-Group": "system:masters" };

  it("refuses a request that does not come through the aggregator: no client certificate, or the cluster's own admin certificate", async () => {
    expect(await direct(undefined, admin)).toBe(401);
    const user = a.kc.getCurrentUser()!;
    const pem = (data?: string, file?: string) => (data ? Buffer.from(data, "base64").toString() : readFileSync(file!, "utf8"));
    expect(await direct({ cert: pem(user.certData, user.certFile), key: pem(user.keyData, user.keyFile) }, admin)).toBe(401);
  });

  it("asks the API server whether the user the front proxy names may read (SubjectAccessReview)", async () => {
    // The front proxy's own client certificate (e2e/cluster/up.sh made it beside the kubeconfig).
    const dir = join(dirname(inject("kubeconfig")), "front-proxy");
    const proxy = { cert: readFileSync(join(dir, "front-proxy-client.crt"), "utf8"), key: readFileSync(join(dir, "front-proxy-client.key"), "utf8") };
    expect(await direct(proxy, admin)).toBe(200);
    expect(await direct(proxy, { "X-Remote-User": `system:serviceaccount:${ns}:nobody` })).toBe(403);
  });
});
