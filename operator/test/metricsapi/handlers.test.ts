import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { APP, LABELS, MANAGED_BY, TEMPLATE_HASH } from "../../src/api/labels.js";
import { accessAttributes, answer, type MetricsContext, resolve, route } from "../../src/metricsapi/handlers.js";
import { MetricStore } from "../../src/metricsapi/rates.js";
import { model } from "../fixtures.js";

const NOW = Date.parse("2026-01-01T00:10:00Z");
const BASE = "/apis/custom.metrics.k8s.io/v1beta2";

/** A server pod as the pods cache holds it (labels of reconcile/replicaset.ts's template). */
function pod(name: string, modelName: string, color: "blue" | "green", namespace = "ns"): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      uid: `uid-${namespace}-${name}`,
      labels: {
        [LABELS.app]: APP,
        [LABELS.instance]: modelName,
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.model]: modelName,
        [LABELS.color]: color,
      },
      annotations: { [TEMPLATE_HASH]: "0123456789abcdef", "prometheus.io/port": "9090" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: `${modelName}-${color}`, uid: `rs-${modelName}-${color}`, controller: true }],
    },
    spec: { containers: [{ name: "server", image: "wavelet-server:test", ports: [{ name: "metrics", containerPort: 9090 }] }] },
    status: { phase: "Running", podIP: "10.0.0.1", conditions: [{ type: "Ready", status: "True" }] },
  };
}

const PODS = [
  pod("spx-blue-a", "spx", "blue"),
  pod("spx-blue-b", "spx", "blue"),
  pod("spx-green-a", "spx", "green"),
  pod("spx-blue-new", "spx", "blue"), // just started: one scrape so far
  pod("spx-blue-gone", "spx", "blue"), // stopped answering
  pod("ndx-blue-a", "ndx", "blue"),
  pod("spx-blue-a", "spx", "blue", "other"), // same name, another namespace
];

function context(): MetricsContext {
  const store = new MetricStore({ windowMs: 30_000, staleMs: 15_000 });
  // requests_per_second 2, 3, 0.5, and 7 (other model), 100 (other namespace); queued rows alike.
  const feed = (p: V1Pod, perSecond: number, queued: number, last = NOW) => {
    for (let i = 0; i <= 6; i++) store.record(p.metadata!.uid!, { at: last - (6 - i) * 5000, requests: 1000 + perSecond * 5 * i, queuedRows: queued });
  };
  feed(PODS[0]!, 2, 4);
  feed(PODS[1]!, 3, 6);
  feed(PODS[2]!, 0.5, 0);
  store.record(PODS[3]!.metadata!.uid!, { at: NOW - 1000, requests: 10, queuedRows: 1 });
  feed(PODS[4]!, 9, 9, NOW - 20_000);
  feed(PODS[5]!, 7, 1);
  feed(PODS[6]!, 100, 50);
  const models = [model(), model({}, { metadata: { name: "ndx", namespace: "ns", uid: "uid-2" } as never }), model({}, { metadata: { name: "idle", namespace: "ns", uid: "uid-3" } as never })];
  return {
    pods: (namespace) => PODS.filter((p) => p.metadata?.namespace === namespace),
    model: (namespace, name) => models.find((m) => m.metadata.namespace === namespace && m.metadata.name === name) as KubernetesObject | undefined,
    store,
    now: () => NOW,
  };
}

const ask = (path: string, query = "", ctx = context()) => answer(resolve(path), new URLSearchParams(query), ctx);
const items = (body: unknown) => (body as { items: { describedObject: { name: string }; value: string }[] }).items;
const values = (body: unknown) => Object.fromEntries(items(body).map((i) => [i.describedObject.name, i.value]));

describe("resolve", () => {
  it.each([
    ["/apis/custom.metrics.k8s.io", { kind: "group" }],
    [BASE, { kind: "discovery" }],
    [`${BASE}/namespaces/ns/pods/*/requests_per_second`, { kind: "pods", namespace: "ns", name: "*", metric: "requests_per_second" }],
    [`${BASE}/namespaces/ns/pods/spx-blue-a/queued_rows`, { kind: "pods", namespace: "ns", name: "spx-blue-a", metric: "queued_rows" }],
    [`${BASE}/namespaces/ns/pods/%2A/queued_rows`, { kind: "pods", namespace: "ns", name: "*", metric: "queued_rows" }],
    [`${BASE}/namespaces/ns/pods/a/other`, { kind: "pods", namespace: "ns", name: "a", metric: "other" }],
    [
      `${BASE}/namespaces/ns/waveletmodels.wavelet.dev/spx/requests_per_second`,
      { kind: "object", namespace: "ns", resource: "waveletmodels.wavelet.dev", name: "spx", metric: "requests_per_second" },
    ],
  ])("%s", (path, expected) => {
    expect(resolve(path)).toEqual(expected);
  });

  it.each([
    "/",
    "/apis",
    "/apis/custom.metrics.k8s.io/",
    `${BASE}/`,
    "/apis/custom.metrics.k8s.io/v1beta1",
    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/*/requests_per_second",
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/requests_per_second",
    `${BASE}/pods/*/requests_per_second`, // root-scoped
    `${BASE}/namespaces/ns/metrics/requests_per_second`, // the namespace's own metrics
    `${BASE}/namespaces/ns/services/spx/requests_per_second`,
    `${BASE}/namespaces/ns/waveletmodels/spx/requests_per_second`,
    `${BASE}/namespaces/ns/pods/*/requests_per_second/extra`,
    `${BASE}/namespaces/ns/pods/*`,
    `${BASE}/namespaces//pods/*/requests_per_second`,
    `${BASE}/namespaces/ns/pods//requests_per_second`,
    `${BASE}/namespaces/ns/pods/*/`,
    `${BASE}/namespaces/ns/pods/%E0%A4%A/requests_per_second`, // malformed percent-encoding
  ])("%s is not found", (path) => {
    expect(resolve(path)).toEqual({ kind: "notFound" });
  });
});

describe("accessAttributes", () => {
  it("asks for the metric as a subresource of the pods, a list by the name *", () => {
    const path = `${BASE}/namespaces/ns/pods/*/requests_per_second`;
    expect(accessAttributes(resolve(path), path)).toEqual({
      resource: { group: "custom.metrics.k8s.io", version: "v1beta2", resource: "pods", subresource: "requests_per_second", name: "*", namespace: "ns", verb: "get" },
    });
  });

  it("asks for the metric of a WaveletModel on the resource as the path names it", () => {
    const path = `${BASE}/namespaces/ns/waveletmodels.wavelet.dev/spx/queued_rows`;
    expect(accessAttributes(resolve(path), path)).toEqual({
      resource: { group: "custom.metrics.k8s.io", version: "v1beta2", resource: "waveletmodels.wavelet.dev", subresource: "queued_rows", name: "spx", namespace: "ns", verb: "get" },
    });
  });

  it.each(["/apis/custom.metrics.k8s.io", BASE, "/apis/other"])("asks for %s as a non-resource URL", (path) => {
    expect(accessAttributes(resolve(path), path)).toEqual({ nonResource: { path, verb: "get" } });
  });
});

describe("answer: discovery", () => {
  it("describes the group, v1beta2 preferred", () => {
    expect(ask("/apis/custom.metrics.k8s.io")).toEqual({
      status: 200,
      body: {
        kind: "APIGroup",
        apiVersion: "v1",
        name: "custom.metrics.k8s.io",
        versions: [{ groupVersion: "custom.metrics.k8s.io/v1beta2", version: "v1beta2" }],
        preferredVersion: { groupVersion: "custom.metrics.k8s.io/v1beta2", version: "v1beta2" },
      },
    });
  });

  it("lists each metric of pods and of WaveletModels", () => {
    const resource = (name: string) => ({ name, singularName: "", namespaced: true, kind: "MetricValueList", verbs: ["get"] });
    expect(ask(BASE)).toEqual({
      status: 200,
      body: {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: "custom.metrics.k8s.io/v1beta2",
        resources: [
          resource("pods/requests_per_second"),
          resource("pods/queued_rows"),
          resource("waveletmodels.wavelet.dev/requests_per_second"),
          resource("waveletmodels.wavelet.dev/queued_rows"),
        ],
      },
    });
  });
});

describe("answer: errors", () => {
  const failure = (code: number, reason: string) => ({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", reason, code });

  it("answers an unknown path 404", () => {
    const got = ask(`${BASE}/namespaces/ns/services/spx/requests_per_second`);
    expect(got).toMatchObject({ status: 404, body: failure(404, "NotFound") });
  });

  it.each([`${BASE}/namespaces/ns/pods/*/cpu`, `${BASE}/namespaces/ns/waveletmodels.wavelet.dev/spx/cpu`])("answers an unknown metric 404, naming those served: %s", (path) => {
    const got = ask(path);
    expect(got).toMatchObject({ status: 404, body: failure(404, "NotFound") });
    expect((got.body as { message: string }).message).toMatch(/"cpu".*requests_per_second and queued_rows of pods and of waveletmodels\.wavelet\.dev/);
  });

  it.each(["pods/*", "waveletmodels.wavelet.dev/spx"])("refuses a metricLabelSelector (%s): the metrics have no labels", (what) => {
    const got = ask(`${BASE}/namespaces/ns/${what}/requests_per_second`, "metricLabelSelector=route%3D%2Fpredict");
    expect(got).toMatchObject({ status: 400, body: failure(400, "BadRequest") });
    expect((got.body as { message: string }).message).toMatch(/metricLabelSelector/);
  });

  it("takes an empty metricLabelSelector as none", () => {
    expect(ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`, "metricLabelSelector=").status).toBe(200);
  });

  it("refuses a labelSelector that is not one", () => {
    const got = ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`, "labelSelector=a%20in%20b");
    expect(got).toMatchObject({ status: 400, body: failure(400, "BadRequest") });
    expect((got.body as { message: string }).message).toMatch(/^labelSelector: /);
  });
});

describe("answer: pods", () => {
  it("lists the pods with a value, each described as the custom metrics API does", () => {
    const got = ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({
      apiVersion: "custom.metrics.k8s.io/v1beta2",
      kind: "MetricValueList",
      metadata: {},
      items: [
        metric("ndx-blue-a", "7"),
        metric("spx-blue-a", "2"),
        metric("spx-blue-b", "3"),
        metric("spx-green-a", "500m"),
      ],
    });
    function metric(name: string, value: string) {
      return {
        describedObject: { kind: "Pod", namespace: "ns", name, apiVersion: "/v1" },
        metric: { name: "requests_per_second" },
        timestamp: "2026-01-01T00:10:00Z",
        windowSeconds: 30,
        value,
      };
    }
  });

  it("leaves out the pods without a value: one scrape only, stale, never scraped", () => {
    const names = Object.keys(values(ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`).body));
    expect(names).not.toContain("spx-blue-new");
    expect(names).not.toContain("spx-blue-gone");
    const ctx = context();
    const unscraped = { ...ctx, pods: (ns: string) => [...ctx.pods(ns), pod("spx-blue-unscraped", "spx", "blue")] };
    expect(items(ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`, "", unscraped).body)).toHaveLength(4);
  });

  it("selects by the HPA's labelSelector", () => {
    const selector = encodeURIComponent("app.kubernetes.io/instance=spx,wavelet.dev/color=blue,wavelet.dev/model=spx");
    expect(values(ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`, `labelSelector=${selector}`).body)).toEqual({ "spx-blue-a": "2", "spx-blue-b": "3" });
    expect(values(ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`, "labelSelector=wavelet.dev%2Fmodel%20notin%20(spx)").body)).toEqual({ "ndx-blue-a": "7" });
    expect(items(ask(`${BASE}/namespaces/ns/pods/*/requests_per_second`, "labelSelector=nobody%3Dhere").body)).toEqual([]);
  });

  it("serves queued_rows from a single scrape, a gauge with no window", () => {
    const got = ask(`${BASE}/namespaces/ns/pods/*/queued_rows`, "labelSelector=wavelet.dev%2Fmodel%3Dspx");
    expect(values(got.body)).toEqual({ "spx-blue-a": "4", "spx-blue-b": "6", "spx-green-a": "0", "spx-blue-new": "1" });
    expect(items(got.body).find((i) => i.describedObject.name === "spx-blue-new")).toMatchObject({ timestamp: "2026-01-01T00:09:59Z", windowSeconds: 0 });
  });

  it("answers for the namespace asked only", () => {
    expect(values(ask(`${BASE}/namespaces/other/pods/*/requests_per_second`).body)).toEqual({ "spx-blue-a": "100" });
    expect(items(ask(`${BASE}/namespaces/empty/pods/*/requests_per_second`).body)).toEqual([]);
  });

  it("answers a pod by name", () => {
    const got = ask(`${BASE}/namespaces/ns/pods/spx-blue-b/requests_per_second`);
    expect(got.status).toBe(200);
    expect(values(got.body)).toEqual({ "spx-blue-b": "3" });
  });

  it.each(["spx-blue-new", "spx-blue-gone", "no-such-pod"])("answers 404 for the pod %s, which has no value", (name) => {
    const got = ask(`${BASE}/namespaces/ns/pods/${name}/requests_per_second`);
    expect(got).toMatchObject({ status: 404, body: { kind: "Status", reason: "NotFound", code: 404 } });
    expect((got.body as { message: string }).message).toContain(`ns/${name}`);
  });
});

describe("answer: WaveletModels", () => {
  it("sums the model's pods with a value, both colours", () => {
    const got = ask(`${BASE}/namespaces/ns/waveletmodels.wavelet.dev/spx/requests_per_second`);
    expect(got).toEqual({
      status: 200,
      body: {
        apiVersion: "custom.metrics.k8s.io/v1beta2",
        kind: "MetricValueList",
        metadata: {},
        items: [
          {
            describedObject: { kind: "WaveletModel", namespace: "ns", name: "spx", apiVersion: "wavelet.dev/v1alpha1" },
            metric: { name: "requests_per_second" },
            timestamp: "2026-01-01T00:10:00Z",
            windowSeconds: 30,
            value: "5500m",
          },
        ],
      },
    });
  });

  it("sums queued_rows, counting a pod scraped once", () => {
    const got = ask(`${BASE}/namespaces/ns/waveletmodels.wavelet.dev/spx/queued_rows`);
    expect(items(got.body)).toEqual([expect.objectContaining({ value: "11", windowSeconds: 0, timestamp: "2026-01-01T00:10:00Z" })]);
  });

  it("answers 404 for a model that does not exist (deleted while its pods still run)", () => {
    const ctx = context();
    const got = ask(`${BASE}/namespaces/ns/waveletmodels.wavelet.dev/spx/requests_per_second`, "", { ...ctx, model: () => undefined });
    expect(got).toMatchObject({ status: 404, body: { reason: "NotFound", message: 'waveletmodels.wavelet.dev "spx" not found in namespace ns' } });
    expect(ask(`${BASE}/namespaces/other/waveletmodels.wavelet.dev/spx/requests_per_second`).status).toBe(404);
  });

  it("answers 404 for a model none of whose pods has a value", () => {
    const got = ask(`${BASE}/namespaces/ns/waveletmodels.wavelet.dev/idle/requests_per_second`);
    expect(got).toMatchObject({ status: 404, body: { reason: "NotFound" } });
    expect((got.body as { message: string }).message).toContain("ns/idle");
  });
});

describe("route", () => {
  it("pairs the attributes to authorize with the answer, reading the query", () => {
    const routed = route(new URL(`https://localhost${BASE}/namespaces/ns/pods/*/requests_per_second?labelSelector=wavelet.dev%2Fcolor%3Dgreen`), context());
    expect(routed.attributes).toMatchObject({ resource: { resource: "pods", name: "*", subresource: "requests_per_second" } });
    expect(values(routed.answer().body)).toEqual({ "spx-green-a": "500m" });
  });
});
