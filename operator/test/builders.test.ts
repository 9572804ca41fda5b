import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { waveletModelCrd } from "../src/api/crd.js";
import { OPERATOR_ENV } from "../src/api/waveletmodel.js";
import { desiredReplicaSet, stalePods, templateHash } from "../src/reconcile/replicaset.js";
import { activeReplicas, desiredHpa } from "../src/reconcile/hpa.js";
import { desiredPdb } from "../src/reconcile/pdb.js";
import { desiredServices } from "../src/reconcile/service.js";
import { DIGEST_A, DIGEST_B, model } from "./fixtures.js";

const settings = { defaultServerImage: "wavelet-server:test" };

describe("ReplicaSet of a colour", () => {
  it("serves a built-in bundle with the digest pinned and probes on the server's routes", () => {
    const wm = model();
    const d = desiredReplicaSet(wm, wm.spec, "blue", 3, settings);
    expect(d.metadata?.name).toBe("spx-blue");
    expect(d.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "WaveletModel", name: "spx", uid: "uid-1", controller: true });
    expect(d.spec?.replicas).toBe(3);
    expect(d.spec?.selector.matchLabels).toMatchObject({ "wavelet.dev/color": "blue", "wavelet.dev/model": "spx" });
    const server = d.spec!.template!.spec!.containers[0]!;
    expect(server.image).toBe("wavelet-server:test");
    const env = Object.fromEntries(server.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ MODEL_DIR: "/app/models/bundles/spx-return-1d", EXPECTED_BUNDLE_DIGEST: DIGEST_A });
    expect(server.readinessProbe?.httpGet?.path).toBe("/health");
    expect(server.livenessProbe?.httpGet?.path).toBe("/livez");
    expect(d.spec!.template!.spec!.initContainers).toBeUndefined();
  });

  it("serves /metrics on its own port, which the Services do not carry (issue 22)", () => {
    const wm = model();
    const rs = desiredReplicaSet(wm, wm.spec, "blue", 3, settings);
    const server = rs.spec!.template!.spec!.containers[0]!;
    expect(server.ports).toEqual([
      { name: "http", containerPort: 8000, protocol: "TCP" },
      { name: "metrics", containerPort: 9090, protocol: "TCP" },
    ]);
    expect(server.env).toContainEqual({ name: "METRICS_PORT", value: "9090" });
    expect(rs.spec!.template!.metadata!.annotations).toMatchObject({ "prometheus.io/port": "9090", "prometheus.io/path": "/metrics" });
    for (const service of desiredServices(wm, "blue", "blue")) expect(service.spec!.ports!.map((p) => p.targetPort)).toEqual(["http"]);
  });

  it("copies a bundle image into a shared volume with an init container", () => {
    const image = `registry.example/bundle@sha256:${"c".repeat(64)}`;
    const wm = model({ bundle: { image, digest: DIGEST_A } });
    const pod = desiredReplicaSet(wm, wm.spec, "green", 2, settings).spec!.template!.spec!;
    expect(pod.initContainers?.[0]).toMatchObject({ image, command: ["cp", "-R", "/bundle/.", "/models/bundle"] });
    expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: "bundle", mountPath: "/models/bundle", readOnly: true });
    expect(pod.containers[0]!.env!.find((e) => e.name === "MODEL_DIR")?.value).toBe("/models/bundle");
  });

  it("has one template hash for both colours, unchanged by replicas, changed by the bundle", () => {
    const wm = model();
    const blue = desiredReplicaSet(wm, wm.spec, "blue", 3, settings);
    const green = desiredReplicaSet(wm, wm.spec, "green", 7, settings);
    expect(blue.metadata?.annotations?.["wavelet.dev/template-hash"]).toBe(green.metadata?.annotations?.["wavelet.dev/template-hash"]);
    expect(templateHash(wm, model({ replicas: 9 }).spec, settings)).toBe(templateHash(wm, wm.spec, settings));
    expect(templateHash(wm, model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }).spec, settings)).not.toBe(templateHash(wm, wm.spec, settings));
  });

  it("re-templated, its pods of another template are the stale ones, unless already going", () => {
    const wm = model();
    const rs = desiredReplicaSet(wm, wm.spec, "green", 2, settings);
    const hash = rs.metadata!.annotations!["wavelet.dev/template-hash"]!;
    const pod = (name: string, h: string, deleting = false) => ({
      metadata: { name, annotations: { "wavelet.dev/template-hash": h }, ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    });
    const stale = stalePods(rs, [pod("a", hash), pod("b", "old"), pod("c", "old", true), pod("d", "older")]);
    expect(stale.map((p) => p.metadata?.name)).toEqual(["b", "d"]);
  });

  it("passes the API key from a Secret and keeps user env from overriding any setting of its own", () => {
    const wm = model({
      models: ["lstm"],
      defaultModel: "lstm",
      server: {
        apiKeySecretRef: { name: "keys" },
        adminApiKeySecretRef: { name: "admin" },
        metricsApiKeySecretRef: { name: "scrape" },
        env: [{ name: "EXPECTED_BUNDLE_DIGEST", value: "x" }, { name: "MODELS", value: "xgboost" }, { name: "CACHE_TTL", value: "9" }],
      },
    });
    const env = desiredReplicaSet(wm, wm.spec, "blue", 1, settings).spec!.template!.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === "API_KEY")?.valueFrom?.secretKeyRef).toEqual({ name: "keys", key: "api-key" });
    expect(env.filter((e) => e.name === "EXPECTED_BUNDLE_DIGEST").map((e) => e.value)).toEqual([DIGEST_A]);
    expect(env.filter((e) => e.name === "MODELS").map((e) => e.value)).toEqual(["lstm"]);
    // Every name the operator sets is one the CRD forbids in server.env: one value per name.
    expect(new Set(env.map((e) => e.name).filter((n) => n !== "CACHE_TTL"))).toEqual(new Set(OPERATOR_ENV));
    expect(env.find((e) => e.name === "CACHE_TTL")?.value).toBe("9");
  });
});

describe("Services and HPA", () => {
  it("the active Service selects the active colour with the spec's type and port; preview is internal", () => {
    const wm = model({ service: { type: "LoadBalancer", port: 8080 } });
    const [active, preview] = desiredServices(wm, "green", "blue");
    expect(active!.metadata?.name).toBe("spx");
    expect(active!.spec).toMatchObject({ type: "LoadBalancer", selector: { "wavelet.dev/color": "green" } });
    expect(active!.spec!.ports![0]).toMatchObject({ port: 8080, targetPort: "http" });
    expect(preview!.metadata?.name).toBe("spx-preview");
    expect(preview!.spec).toMatchObject({ type: "ClusterIP", selector: { "wavelet.dev/color": "blue" } });
  });

  it("the HPA targets the active colour, only under autoscaling", () => {
    expect(desiredHpa(model(), "blue")).toBeUndefined();
    const wm = model({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 70 } });
    const hpa = desiredHpa(wm, "green")!;
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 6, scaleTargetRef: { kind: "ReplicaSet", name: "spx-green" } });
    expect(hpa.spec!.metrics).toEqual([{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } }]);
    expect(activeReplicas(wm, 9)).toBe(6);
    expect(activeReplicas(wm, 4)).toBe(4);
    expect(activeReplicas(wm, undefined)).toBe(2);
    expect(activeReplicas(model({ replicas: 5 }), 2)).toBe(5);
  });
});

describe("the CRD", () => {
  const crd = (path: string) => readFileSync(resolve(import.meta.dirname, "../..", path), "utf8");

  it("crds/waveletmodel.yaml is what the zod schemas generate (npm run crd -w operator)", () => {
    expect(parse(crd("crds/waveletmodel.yaml"))).toEqual(waveletModelCrd());
  });

  it("the Helm chart carries the same bytes (npm run crd -w operator writes both)", () => {
    expect(crd("charts/wavelet-operator/crds/waveletmodel.yaml")).toBe(crd("crds/waveletmodel.yaml"));
  });
});

describe("the pods (issue 8)", () => {
  it("get resource requests by default, a startup probe, no API token, and the spec's scheduling", () => {
    const wm = model({
      server: { adminApiKeySecretRef: { name: "admin" }, metricsApiKeySecretRef: { name: "scrape" } },
      pod: {
        serviceAccountName: "wavelet",
        imagePullSecrets: [{ name: "registry" }],
        nodeSelector: { pool: "inference" },
        tolerations: [{ key: "dedicated", operator: "Equal", value: "inference", effect: "NoSchedule" }],
        topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "kubernetes.io/hostname", whenUnsatisfiable: "ScheduleAnyway" }],
      },
    });
    const pod = desiredReplicaSet(wm, wm.spec, "blue", 1, settings).spec!.template!.spec!;
    const server = pod.containers[0]!;
    expect(server.resources).toEqual({ requests: { cpu: "250m", memory: "256Mi" } });
    expect(server.startupProbe?.httpGet?.path).toBe("/livez");
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod).toMatchObject({ serviceAccountName: "wavelet", imagePullSecrets: [{ name: "registry" }], nodeSelector: { pool: "inference" } });
    expect(pod.tolerations?.[0]).toMatchObject({ key: "dedicated", effect: "NoSchedule" });
    expect(pod.topologySpreadConstraints?.[0]).toMatchObject({ maxSkew: 1 });
    expect(server.env!.find((e) => e.name === "ADMIN_API_KEY")?.valueFrom?.secretKeyRef).toEqual({ name: "admin", key: "admin-api-key" });
    expect(server.env!.find((e) => e.name === "METRICS_API_KEY")?.valueFrom?.secretKeyRef).toEqual({ name: "scrape", key: "metrics-api-key" });
  });

  it("the secrets hash is part of the template: a rotated key is a new template", () => {
    const wm = model({ server: { apiKeySecretRef: { name: "keys" } } });
    expect(templateHash(wm, wm.spec, settings, { secretsHash: "a" })).not.toBe(templateHash(wm, wm.spec, settings, { secretsHash: "b" }));
  });
});

describe("the PodDisruptionBudget (issue 8)", () => {
  it("follows the active colour and lets a drain take one pod at a time", () => {
    const pdb = desiredPdb(model(), "green");
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { "app.kubernetes.io/instance": "spx", "wavelet.dev/model": "spx", "wavelet.dev/color": "green" } } });
    expect(pdb.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "WaveletModel", controller: true });
  });
});
