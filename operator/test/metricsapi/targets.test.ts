import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { MetricsKeys, scrapeTargets } from "../../src/metricsapi/targets.js";
import { model } from "../fixtures.js";

const pod = (name: string, over: { model?: string; ip?: string; phase?: string; deleting?: boolean } = {}): V1Pod => ({
  metadata: {
    name,
    namespace: "ns",
    uid: `uid-${name}`,
    labels: { "wavelet.dev/model": over.model ?? "spx", "wavelet.dev/color": "blue" },
    ...(over.deleting ? { deletionTimestamp: new Date() } : {}),
  },
  status: { phase: over.phase ?? "Running", ...(over.ip === "" ? {} : { podIP: over.ip ?? "10.0.0.1" }) },
});

const scaling = { replicas: undefined, autoscaling: { minReplicas: 1, maxReplicas: 4, targetRequestsPerSecond: 5 } };

describe("which pods the scraper reads", () => {
  it("the running pods with an address of the models that scale on a server metric, both colours, IPv6 in brackets", () => {
    const rps = model(scaling);
    const cpuOnly = model({ replicas: undefined, autoscaling: { minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercentage: 50 } }, { metadata: { ...rps.metadata, name: "cpu" } });
    const pods = [
      pod("a"),
      pod("b", { ip: "fd00::5" }),
      pod("pending", { phase: "Pending" }),
      pod("no-ip", { ip: "" }),
      pod("leaving", { deleting: true }),
      pod("other", { model: "cpu" }),
    ];
    const targets = scrapeTargets({ models: () => [rps, cpuOnly] as unknown as KubernetesObject[], pods: () => pods, metricsKey: () => undefined });
    expect(targets).toEqual([
      { uid: "uid-a", namespace: "ns", name: "a", url: "http://10.0.0.1:9090/metrics" },
      { uid: "uid-b", namespace: "ns", name: "b", url: "http://[fd00::5]:9090/metrics" },
    ]);
  });

  it("skips an object whose spec the operator cannot serve, and sends the metrics key when the model names one", () => {
    const keyed = model({ ...scaling, server: { metricsApiKeySecretRef: { name: "scrape" } } });
    const broken = { apiVersion: "wavelet.dev/v1alpha1", kind: "WaveletModel", metadata: { name: "x", namespace: "ns" }, spec: { bundle: 3 } };
    const asked: unknown[] = [];
    const targets = scrapeTargets({
      models: () => [broken, keyed] as unknown as KubernetesObject[],
      pods: () => [pod("a")],
      metricsKey: (namespace, ref) => (asked.push([namespace, ref]), "k1"),
    });
    expect(asked).toEqual([["ns", { name: "scrape", key: "metrics-api-key" }]]);
    expect(targets).toEqual([{ uid: "uid-a", namespace: "ns", name: "a", url: "http://10.0.0.1:9090/metrics", headers: { "x-api-key": "k1" } }]);
  });
});

describe("the metrics keys", () => {
  it("are read once per Secret version, the first of a comma list, a new version read again", async () => {
    let version = "1";
    let value = " k1 , k2";
    const reads: string[] = [];
    const keys = new MetricsKeys(
      async (namespace, name) => (reads.push(`${namespace}/${name}`), { data: { "metrics-api-key": value } }),
      () => version,
      { warn: () => undefined },
    );
    const ref = { name: "scrape", key: "metrics-api-key" };
    // Not read yet: this round goes without, the next has it.
    expect(keys.get("ns", ref)).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(keys.get("ns", ref)).toBe("k1");
    expect(keys.get("ns", ref)).toBe("k1");
    expect(reads).toEqual(["ns/scrape"]);
    version = "2";
    value = "k3";
    expect(keys.get("ns", ref)).toBe("k1");
    await new Promise((r) => setImmediate(r));
    expect(keys.get("ns", ref)).toBe("k3");
    expect(reads).toHaveLength(2);
  });
});
