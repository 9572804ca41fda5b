import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { waveletModelCrd } from "../src/api/crd.js";
import { OPERATOR_ENV } from "../src/api/waveletmodel.js";
import { desiredReplicaSet, stalePods, templateHash } from "../src/reconcile/replicaset.js";
import { activeReplicas, desiredHpa } from "../src/reconcile/hpa.js";
import { desiredPdb } from "../src/reconcile/pdb.js";
import { desiredHttpRoutes, desiredIngress } from "../src/reconcile/routes.js";
import { desiredServices, endpoint } from "../src/reconcile/service.js";
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
      tls: { secretName: "cert" },
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

describe("HTTPS from spec.tls (issue 26)", () => {
  const tls = model({ tls: { secretName: "spx-tls" } });
  const podOf = (wm: ReturnType<typeof model>) => desiredReplicaSet(wm, wm.spec, "blue", 1, settings).spec!.template!.spec!;

  it("mounts the Secret read-only as a whole volume (no subPath: kubelet updates it), points TLS_CERT_FILE and TLS_KEY_FILE into it, probes over HTTPS", () => {
    const pod = podOf(tls);
    const server = pod.containers[0]!;
    expect(pod.volumes).toContainEqual({ name: "tls", secret: { secretName: "spx-tls" } });
    const mount = server.volumeMounts!.find((m) => m.name === "tls");
    expect(mount).toEqual({ name: "tls", mountPath: "/etc/wavelet/tls", readOnly: true });
    expect(server.env).toEqual(expect.arrayContaining([{ name: "TLS_CERT_FILE", value: "/etc/wavelet/tls/tls.crt" }, { name: "TLS_KEY_FILE", value: "/etc/wavelet/tls/tls.key" }]));
    for (const probe of [server.startupProbe, server.readinessProbe, server.livenessProbe]) expect(probe!.httpGet).toMatchObject({ port: "http", scheme: "HTTPS" });

    const plain = podOf(model()).containers[0]!;
    expect(plain.volumeMounts!.map((m) => m.name)).not.toContain("tls");
    expect(plain.env!.map((e) => e.name)).not.toContain("TLS_CERT_FILE");
    for (const probe of [plain.startupProbe, plain.readinessProbe, plain.livenessProbe]) expect(probe!.httpGet!.scheme).toBeUndefined();
  });

  it("the Secret's name is in the template: another Secret is another template", () => {
    const other = model({ tls: { secretName: "spx-tls-2" } });
    expect(templateHash(tls, tls.spec, settings)).not.toBe(templateHash(tls, model().spec, settings));
    expect(templateHash(tls, tls.spec, settings)).not.toBe(templateHash(other, other.spec, settings));
  });

  it("each Service says appProtocol https when the colour it selects serves HTTPS, and the endpoints say https://", () => {
    const [active, preview] = desiredServices(tls, "blue", "green");
    expect(active!.spec!.ports).toEqual([{ name: "http", port: 80, targetPort: "http", protocol: "TCP", appProtocol: "https" }]);
    expect(preview!.spec!.ports![0]!.appProtocol).toBe("https");
    expect(endpoint(tls)).toBe("https://spx.ns.svc:80");
    // A rollout that turns TLS on: blue still serves the old spec over HTTP until the switch.
    const [onBlue, onGreen] = desiredServices(tls, "blue", "green", (color) => (color === "blue" ? model().spec : tls.spec));
    expect(onBlue!.spec!.ports![0]!.appProtocol).toBeUndefined();
    expect(onGreen!.spec!.ports![0]!.appProtocol).toBe("https");
    expect(endpoint(tls, "spx", model().spec)).toBe("http://spx.ns.svc:80");
    expect(desiredServices(model(), "blue", "blue")[0]!.spec!.ports![0]!.appProtocol).toBeUndefined();
  });
});

describe("routes from outside the cluster (issue 26)", () => {
  const route = { parentRefs: [{ name: "public", namespace: "gateways", sectionName: "https" }], hostnames: ["spx.example.com"], previewHostnames: ["preview.spx.example.com"] };
  const ingress = { className: "nginx", hosts: ["spx.example.com", "*.spx.example.org"], previewHosts: ["preview.spx.example.com"] };

  it("spec.route: an HTTPRoute named like the active Service to it, another like the preview Service to that, owned by the model", () => {
    const wm = model({ route, service: { port: 8080 } });
    const [active, preview] = desiredHttpRoutes(wm) as { apiVersion: string; metadata: { name: string; ownerReferences: unknown[] }; spec: Record<string, unknown> }[];
    expect(active).toMatchObject({ apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", metadata: { name: "spx", namespace: "ns", labels: { "wavelet.dev/service-role": "active" } } });
    expect(active!.metadata.ownerReferences[0]).toMatchObject({ kind: "WaveletModel", uid: "uid-1", controller: true });
    expect(active!.spec).toEqual({
      parentRefs: [{ name: "public", namespace: "gateways", sectionName: "https", group: "gateway.networking.k8s.io", kind: "Gateway" }],
      hostnames: ["spx.example.com"],
      rules: [{ backendRefs: [{ name: "spx", port: 8080 }] }],
    });
    expect(preview).toMatchObject({ metadata: { name: "spx-preview" }, spec: { hostnames: ["preview.spx.example.com"], rules: [{ backendRefs: [{ name: "spx-preview", port: 8080 }] }] } });
    expect(desiredHttpRoutes(model({ route: { ...route, previewHostnames: undefined } }))).toHaveLength(1);
  });

  it("spec.ingress: one Ingress, hosts to the active Service and previewHosts to the preview one; with spec.tls, TLS with its Secret", () => {
    const plain = desiredIngress(model({ ingress }))!;
    const backend = (name: string) => ({ service: { name, port: { number: 80 } } });
    expect(plain.metadata).toMatchObject({ name: "spx", namespace: "ns", ownerReferences: [{ kind: "WaveletModel", controller: true }] });
    expect(plain.spec).toEqual({
      ingressClassName: "nginx",
      rules: [
        { host: "spx.example.com", http: { paths: [{ path: "/", pathType: "Prefix", backend: backend("spx") }] } },
        { host: "*.spx.example.org", http: { paths: [{ path: "/", pathType: "Prefix", backend: backend("spx") }] } },
        { host: "preview.spx.example.com", http: { paths: [{ path: "/", pathType: "Prefix", backend: backend("spx-preview") }] } },
      ],
    });
    const tls = desiredIngress(model({ ingress, tls: { secretName: "spx-tls" } }))!;
    expect(tls.spec!.tls).toEqual([{ hosts: ["spx.example.com", "*.spx.example.org", "preview.spx.example.com"], secretName: "spx-tls" }]);
  });

  it("neither without its spec", () => {
    expect(desiredHttpRoutes(model())).toEqual([]);
    expect(desiredIngress(model())).toBeUndefined();
  });
});

describe("the PodDisruptionBudget (issue 8)", () => {
  it("follows the active colour and lets a drain take one pod at a time", () => {
    const pdb = desiredPdb(model(), "green");
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { "app.kubernetes.io/instance": "spx", "wavelet.dev/model": "spx", "wavelet.dev/color": "green" } } });
    expect(pdb.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "WaveletModel", controller: true });
  });
});
