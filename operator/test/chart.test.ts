import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import type { KubernetesObject, V1ClusterRoleBinding, V1Deployment, V1EnvVar, V1Role, V1Secret } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseConfig } from "../src/config.js";
import { APP, LABELS, MANAGED_BY } from "../src/api/labels.js";
import { CHART, buildHelm, fakeApiServer, helmAsync, parseObjects, renderChart } from "./helm.js";

/** charts/wavelet-operator with helm alone (no cluster): lint, what it renders, what its schema refuses. */

const CI_VALUES = `${CHART}/ci/namespaced-values.yaml`;
const { appVersion } = parse(readFileSync(`${CHART}/Chart.yaml`, "utf8")) as { appVersion: string };
let helm: string;

beforeAll(() => {
  helm = buildHelm();
}, 900_000);

const ids = (objects: KubernetesObject[]) => objects.map((o) => [o.kind, o.metadata?.namespace, o.metadata?.name].filter(Boolean).join("/")).sort();
const deploymentOf = (objects: KubernetesObject[]) => objects.find((o) => o.kind === "Deployment") as V1Deployment;
const envOf = (objects: KubernetesObject[]) => {
  const container = deploymentOf(objects).spec!.template.spec!.containers[0]!;
  return Object.fromEntries(container.env!.map((e: V1EnvVar) => [e.name, e.value ?? e.valueFrom]));
};

describe("the Helm chart", () => {
  it.each([
    ["default values", []],
    ["ci/namespaced-values.yaml", ["-f", CI_VALUES]],
  ])("passes helm lint --strict with %s", (_name, args) => {
    expect(execFileSync(helm, ["lint", "--strict", CHART, ...args], { encoding: "utf8" })).toContain("0 chart(s) failed");
  });

  it("by default: cluster-wide RBAC, the Lease Role in the release namespace, two replicas with a PDB, no monitoring objects", () => {
    const objects = renderChart(helm, ["--namespace", "wavelet-system"]);
    expect(ids(objects)).toEqual([
      "APIService/v1beta2.custom.metrics.k8s.io",
      "ClusterRole/wavelet-model-editor",
      "ClusterRole/wavelet-model-viewer",
      "ClusterRole/wavelet-operator",
      "ClusterRole/wavelet-operator-custom-metrics-reader",
      "ClusterRoleBinding/wavelet-operator",
      "ClusterRoleBinding/wavelet-operator-auth-delegator",
      "ClusterRoleBinding/wavelet-operator-custom-metrics-reader",
      "Deployment/wavelet-system/wavelet-operator",
      "PodDisruptionBudget/wavelet-system/wavelet-operator",
      "Role/wavelet-system/wavelet-operator-leader-election",
      "RoleBinding/kube-system/wavelet-operator-auth-reader",
      "RoleBinding/wavelet-system/wavelet-operator-leader-election",
      "Secret/wavelet-system/wavelet-operator-metrics-api-tls",
      "Service/wavelet-system/wavelet-operator-metrics",
      "Service/wavelet-system/wavelet-operator-metrics-api",
      "ServiceAccount/wavelet-system/wavelet-operator",
    ]);
    const binding = objects.find((o) => o.kind === "ClusterRoleBinding" && o.metadata?.name === "wavelet-operator") as unknown as { subjects: unknown[] };
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "wavelet-operator", namespace: "wavelet-system" }]);

    const deployment = deploymentOf(objects);
    expect(deployment.spec?.replicas).toBe(2);
    const pod = deployment.spec!.template.spec!;
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.containers[0]).toMatchObject({
      image: `wavelet-operator:${appVersion}`,
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
      readinessProbe: { httpGet: { path: "/readyz", port: "http" } },
      livenessProbe: { httpGet: { path: "/healthz", port: "http" } },
      ports: [
        { name: "http", containerPort: 8080 },
        { name: "metrics-api", containerPort: 6443 },
      ],
    });
    const env = envOf(objects);
    expect(env).toMatchObject({
      NODE_OPTIONS: expect.stringContaining("--max-old-space-size="),
      SERVER_IMAGE: `wavelet-server:${appVersion}`,
      OPERATOR_NAMESPACE: { fieldRef: { fieldPath: "metadata.namespace" } },
      LEADER_ELECTION: "true",
      LEASE_NAME: "wavelet-operator",
      LEASE_DURATION_SECONDS: "15",
    });
    // The chart's throughput settings are the operator's own defaults.
    const defaults = parseConfig({});
    expect(env).toMatchObject({ WORKERS: String(defaults.WORKERS), KUBE_API_QPS: String(defaults.KUBE_API_QPS), KUBE_API_BURST: String(defaults.KUBE_API_BURST) });
    expect(env).not.toHaveProperty("WATCH_NAMESPACE");
    // The operator starts with what the chart sets (the metrics API's settings included).
    const strings = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === "string"));
    expect(parseConfig(strings, "wavelet-system")).toMatchObject({ METRICS_API: true, METRICS_API_PORT: 6443, METRICS_API_CERT_DIR: "/var/run/wavelet/metrics-api" });
    expect(env).toMatchObject({
      METRICS_SCRAPE_INTERVAL_SECONDS: String(defaults.METRICS_SCRAPE_INTERVAL_SECONDS),
      METRICS_WINDOW_SECONDS: String(defaults.METRICS_WINDOW_SECONDS),
      METRICS_API_PORT: String(defaults.METRICS_API_PORT),
      METRICS_API_CERT_DIR: defaults.METRICS_API_CERT_DIR,
    });
  });

  it("with watchNamespaces: a Role with the same rules in each, the operator told which; image by digest; a ServiceMonitor", () => {
    const objects = renderChart(helm, ["--namespace", "wavelet-system", "-f", CI_VALUES]);
    const kinds = objects.map((o) => o.kind);
    // Cluster-wide only what Kubernetes' roles aggregate and what an aggregated API server needs.
    expect(ids(objects.filter((o) => o.kind?.startsWith("ClusterRole")))).toEqual([
      "ClusterRole/wavelet-model-editor",
      "ClusterRole/wavelet-model-viewer",
      "ClusterRole/wavelet-operator-custom-metrics-reader",
      "ClusterRoleBinding/wavelet-operator-auth-delegator",
      "ClusterRoleBinding/wavelet-operator-custom-metrics-reader",
    ]);
    expect(ids(objects.filter((o) => o.kind === "Role" || o.kind === "RoleBinding"))).toEqual([
      "Role/team-a/wavelet-operator",
      "Role/team-b/wavelet-operator",
      "Role/wavelet-system/wavelet-operator-leader-election",
      "RoleBinding/kube-system/wavelet-operator-auth-reader",
      "RoleBinding/team-a/wavelet-operator",
      "RoleBinding/team-b/wavelet-operator",
      "RoleBinding/wavelet-system/wavelet-operator-leader-election",
    ]);
    const clusterRules = (renderChart(helm).find((o) => o.kind === "ClusterRole" && o.metadata?.name === "wavelet-operator") as V1Role).rules;
    expect((objects.find((o) => o.metadata?.namespace === "team-a" && o.kind === "Role") as V1Role).rules).toEqual(clusterRules);

    expect(deploymentOf(objects).spec!.template.spec!.containers[0]!.image).toBe(
      "registry.example.com/wavelet-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    expect(envOf(objects)).toMatchObject({ WATCH_NAMESPACE: "team-a,team-b", SERVER_IMAGE: "registry.example.com/wavelet-server:0.2.0" });
    // Scrape jobs named as monitoring/alerts.yml and the dashboard select them.
    const monitor = objects.find((o) => o.kind === "ServiceMonitor");
    expect(monitor).toMatchObject({
      metadata: { labels: { release: "prometheus" } },
      spec: { endpoints: [{ port: "http", path: "/metrics", interval: "15s", relabelings: [{ targetLabel: "job", replacement: "wavelet-operator" }] }] },
    });
    const pods = objects.find((o) => o.kind === "PodMonitor");
    expect(pods).toMatchObject({
      metadata: { name: "wavelet-operator-servers", namespace: "wavelet-system", labels: { release: "prometheus" } },
      spec: {
        namespaceSelector: { matchNames: ["team-a", "team-b"] },
        selector: { matchLabels: { [LABELS.app]: APP, [LABELS.managedBy]: MANAGED_BY } },
        podTargetLabels: [LABELS.model, LABELS.color],
        // The servers' metrics port (reconcile/replicaset.ts), never behind the Services.
        podMetricsEndpoints: [{ port: "metrics", path: "/metrics", interval: "15s", relabelings: [{ targetLabel: "job", replacement: "financial-api" }] }],
      },
    });
    // The PrometheusRule is monitoring/alerts.yml itself, not a copy that could drift.
    const rule = objects.find((o) => o.kind === "PrometheusRule") as unknown as { spec: unknown };
    expect(rule.spec).toEqual(parse(readFileSync(`${CHART}/../../monitoring/alerts.yml`, "utf8")));
  });

  it("retires older Deployments by default; with migrateDeployments=false, no Deployment rights and the operator told so (issue 21)", () => {
    const rulesOf = (objects: KubernetesObject[]) => (objects.find((o) => o.kind === "ClusterRole" && o.metadata?.name === "wavelet-operator") as V1Role).rules!;
    const deploymentRules = (objects: KubernetesObject[]) => rulesOf(objects).filter((r) => r.resources?.includes("deployments"));
    const migrating = renderChart(helm);
    expect(deploymentRules(migrating)).toEqual([{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["list", "watch", "delete"] }]);
    expect(envOf(migrating).MIGRATE_DEPLOYMENTS).toBe("true");
    const moved = renderChart(helm, ["--set", "migrateDeployments=false"]);
    expect(deploymentRules(moved)).toEqual([]);
    expect(envOf(moved).MIGRATE_DEPLOYMENTS).toBe("false");
    expect(parseConfig({ MIGRATE_DEPLOYMENTS: "false" }).MIGRATE_DEPLOYMENTS).toBe(false);
  });

  it("may manage the Ingress and HTTPRoutes of spec.ingress and spec.route, and delete them when the spec drops them (issue 26)", () => {
    const rules = (renderChart(helm).find((o) => o.kind === "ClusterRole" && o.metadata?.name === "wavelet-operator") as V1Role).rules!;
    const verbs = ["get", "list", "watch", "create", "patch", "delete"];
    expect(rules).toEqual(
      expect.arrayContaining([
        { apiGroups: ["networking.k8s.io"], resources: ["ingresses"], verbs },
        { apiGroups: ["gateway.networking.k8s.io"], resources: ["httproutes"], verbs },
      ]),
    );
  });

  it("aggregates WaveletModel rights into Kubernetes' admin/edit and view roles (issue 21)", () => {
    const roles = renderChart(helm).filter((o) => o.kind === "ClusterRole" && o.metadata?.name !== "wavelet-operator") as V1Role[];
    const editor = roles.find((r) => r.metadata?.name === "wavelet-model-editor")!;
    expect(editor.metadata?.labels).toMatchObject({ "rbac.authorization.k8s.io/aggregate-to-admin": "true", "rbac.authorization.k8s.io/aggregate-to-edit": "true" });
    expect(editor.rules![0]).toEqual({ apiGroups: ["wavelet.dev"], resources: ["waveletmodels"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"] });
    const viewer = roles.find((r) => r.metadata?.name === "wavelet-model-viewer")!;
    expect(viewer.metadata?.labels).toMatchObject({ "rbac.authorization.k8s.io/aggregate-to-view": "true" });
    expect(viewer.rules!.flatMap((r) => r.verbs)).toEqual(["get", "list", "watch"]);
    expect(renderChart(helm, ["--set", "aggregateRoles=false"]).filter((o) => o.kind === "ClusterRole").map((o) => o.metadata?.name)).toEqual([
      "wavelet-operator-custom-metrics-reader",
      "wavelet-operator",
    ]);
  });

  it("renders no PodDisruptionBudget for one replica", () => {
    expect(renderChart(helm, ["--set", "replicaCount=1"]).map((o) => o.kind)).not.toContain("PodDisruptionBudget");
  });

  it.each([
    ["a negative replica count", "replicaCount=-1", "at '/replicaCount': minimum"],
    ["a digest that is not sha256", "image.digest=md5:1234", "at '/image/digest'"],
    ["a namespace name that is not a DNS label", "watchNamespaces={Team_A}", "at '/watchNamespaces/0'"],
    ["an unknown log level", "logLevel=verbose", "at '/logLevel'"],
    ["an API rate of zero", "kubeApi.qps=0", "at '/kubeApi/qps'"],
    ["a misspelt value", "replicas=3", "additional properties 'replicas' not allowed"],
    ["an unknown APIService registration", "metricsApi.registerAPIService=sometimes", "at '/metricsApi/registerAPIService'"],
    ["the metrics API on the operator's own port", "metricsApi.port=8080", "at '/metricsApi/port'"],
    ["a version priority the API server refuses", "metricsApi.versionPriority=0", "at '/metricsApi/versionPriority'"],
    ["a window of a fraction of a second", "metricsApi.windowSeconds=2.5", "at '/metricsApi/windowSeconds'"],
  ])("values.schema.json refuses %s", (_name, value, message) => {
    expect(() => renderChart(helm, ["--set", value])).toThrow(message);
  });

  it("refuses several replicas without leader election", () => {
    expect(() => renderChart(helm, ["--set", "leaderElection.enabled=false"])).toThrow(/replicaCount > 1 needs leaderElection.enabled/);
    expect(renderChart(helm, ["--set", "leaderElection.enabled=false,replicaCount=1"]).map((o) => o.kind)).not.toContain("Role");
  });
});

const API_SERVICE = "v1beta2.custom.metrics.k8s.io";
const RELEASE = ["--namespace", "wavelet-system"];
const SERVICE = "wavelet-operator-metrics-api";
const DNS_NAMES = [SERVICE, `${SERVICE}.wavelet-system`, `${SERVICE}.wavelet-system.svc`, `${SERVICE}.wavelet-system.svc.cluster.local`];

interface APIService extends KubernetesObject {
  spec: {
    group: string;
    version: string;
    service: { name: string; namespace: string; port: number };
    caBundle?: string;
    insecureSkipTLSVerify?: boolean;
    groupPriorityMinimum: number;
    versionPriority: number;
  };
}
const apiServiceOf = (objects: KubernetesObject[]) => objects.find((o) => o.kind === "APIService") as APIService | undefined;
const tlsSecretOf = (objects: KubernetesObject[]) => objects.find((o) => o.kind === "Secret" && o.metadata?.name === `${SERVICE}-tls`) as V1Secret | undefined;
const pem = (base64: string) => Buffer.from(base64, "base64").toString("utf8");
/** An APIService as another provider (prometheus-adapter) or a Helm release registered it. */
const existingAPIService = (annotations?: Record<string, string>): KubernetesObject =>
  ({
    apiVersion: "apiregistration.k8s.io/v1",
    kind: "APIService",
    metadata: { name: API_SERVICE, ...(annotations ? { annotations } : {}) },
    spec: { group: "custom.metrics.k8s.io", version: "v1beta2", service: { name: "prometheus-adapter", namespace: "monitoring", port: 443 }, groupPriorityMinimum: 100, versionPriority: 100 },
  }) as KubernetesObject;
const helmOwned = (name: string, namespace: string) => ({ "meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": namespace });

describe("the Helm chart's custom metrics API (metricsApi)", () => {
  it("by default: a Service to every replica, a generated certificate for its DNS names, and an APIService whose caBundle verifies it", () => {
    const objects = renderChart(helm, RELEASE);
    expect(objects.find((o) => o.kind === "Service" && o.metadata?.name === SERVICE)).toMatchObject({
      metadata: { namespace: "wavelet-system" },
      // Not only the leader: the selector is the Deployment's own.
      spec: { type: "ClusterIP", selector: deploymentOf(objects).spec!.selector.matchLabels, ports: [{ name: "https", port: 443, targetPort: "metrics-api" }] },
    });

    const secret = tlsSecretOf(objects)!;
    expect(secret.type).toBe("kubernetes.io/tls");
    expect(Object.keys(secret.data!).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    const ca = new X509Certificate(pem(secret.data!["ca.crt"]!));
    const cert = new X509Certificate(pem(secret.data!["tls.crt"]!));
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(pem(secret.data!["tls.key"]!)))).toBe(true);
    for (const name of DNS_NAMES) expect(cert.checkHost(name, { wildcards: false })).toBe(name);
    expect(cert.checkHost(`${SERVICE}.other-namespace.svc`)).toBeUndefined();
    expect(cert.subjectAltName!.split(", ").sort()).toEqual(DNS_NAMES.map((n) => `DNS:${n}`).sort());
    const days = (c: X509Certificate) => (Date.parse(c.validTo) - Date.parse(c.validFrom)) / 86_400_000;
    expect(days(cert)).toBeCloseTo(3650, 0);
    expect(days(ca)).toBeCloseTo(3650, 0);

    const apiService = apiServiceOf(objects)!;
    expect(apiService).toMatchObject({
      apiVersion: "apiregistration.k8s.io/v1",
      metadata: { name: API_SERVICE },
      spec: { group: "custom.metrics.k8s.io", version: "v1beta2", service: { name: SERVICE, namespace: "wavelet-system", port: 443 }, groupPriorityMinimum: 100, versionPriority: 200 },
    });
    expect(apiService.metadata).not.toHaveProperty("namespace");
    expect(apiService.spec).not.toHaveProperty("insecureSkipTLSVerify");
    expect(apiService.metadata?.annotations ?? {}).not.toHaveProperty("cert-manager.io/inject-ca-from");
    // The API server trusts the operator's certificate through caBundle alone.
    expect(apiService.spec.caBundle).toBe(secret.data!["ca.crt"]);
    expect(cert.verify(new X509Certificate(pem(apiService.spec.caBundle!)).publicKey)).toBe(true);
  });

  it("the operator serves it: port, env, and the Secret mounted as a directory (the kubelet updates it), read-only", () => {
    const objects = renderChart(helm, [...RELEASE, "--set", "metricsApi.port=7443,metricsApi.windowSeconds=60", "--set-json", "metricsApi.scrapeIntervalSeconds=2.5"]);
    const pod = deploymentOf(objects).spec!.template.spec!;
    const container = pod.containers[0]!;
    expect(container.ports).toContainEqual({ name: "metrics-api", containerPort: 7443 });
    expect(envOf(objects)).toMatchObject({
      METRICS_API: "true",
      METRICS_API_PORT: "7443",
      METRICS_API_CERT_DIR: "/var/run/wavelet/metrics-api",
      METRICS_SCRAPE_INTERVAL_SECONDS: "2.5",
      METRICS_WINDOW_SECONDS: "60",
    });
    expect(container.volumeMounts).toEqual([{ name: "metrics-api-tls", mountPath: "/var/run/wavelet/metrics-api", readOnly: true }]);
    expect(container.volumeMounts![0]).not.toHaveProperty("subPath");
    expect(pod.volumes).toEqual([{ name: "metrics-api-tls", secret: { secretName: `${SERVICE}-tls` } }]);
    // Readiness stays the operator's /readyz (not ready until its metrics API has data).
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: "/readyz", port: "http" } });
    expect(objects.find((o) => o.kind === "Service" && o.metadata?.name === SERVICE)).toMatchObject({ spec: { ports: [{ port: 443, targetPort: "metrics-api" }] } });
  });

  it("binds the operator to system:auth-delegator and the requestheader CA's reader in kube-system, and the HPA controller to a metrics reader", () => {
    const objects = renderChart(helm, RELEASE);
    const operator = [{ kind: "ServiceAccount", name: "wavelet-operator", namespace: "wavelet-system" }];
    const binding = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name) as V1ClusterRoleBinding;
    expect(binding("ClusterRoleBinding", "wavelet-operator-auth-delegator")).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:auth-delegator" },
      subjects: operator,
    });
    expect(binding("RoleBinding", "wavelet-operator-auth-reader")).toMatchObject({
      metadata: { namespace: "kube-system" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "extension-apiserver-authentication-reader" },
      subjects: operator,
    });
    const reader = objects.find((o) => o.kind === "ClusterRole" && o.metadata?.name === "wavelet-operator-custom-metrics-reader") as V1Role;
    expect(reader.rules).toEqual([{ apiGroups: ["custom.metrics.k8s.io"], resources: ["*"], verbs: ["get", "list"] }]);
    expect(binding("ClusterRoleBinding", "wavelet-operator-custom-metrics-reader")).toMatchObject({
      roleRef: { kind: "ClusterRole", name: "wavelet-operator-custom-metrics-reader" },
      subjects: [{ kind: "ServiceAccount", name: "horizontal-pod-autoscaler", namespace: "kube-system" }],
    });
    for (const o of objects.filter((o) => o.metadata?.name?.includes("auth-") || o.metadata?.name?.includes("custom-metrics"))) {
      expect(o.metadata?.labels).toMatchObject({ "app.kubernetes.io/instance": "wavelet-operator", "app.kubernetes.io/managed-by": "Helm" });
    }

    const custom = renderChart(helm, [...RELEASE, "--set", "metricsApi.hpaServiceAccount.namespace=kube-ctrl,metricsApi.hpaServiceAccount.name=hpa,serviceAccount.name=op"]);
    const customBinding = (name: string) => custom.find((o) => o.kind === "ClusterRoleBinding" && o.metadata?.name === name) as V1ClusterRoleBinding;
    expect(customBinding("wavelet-operator-custom-metrics-reader").subjects).toEqual([{ kind: "ServiceAccount", name: "hpa", namespace: "kube-ctrl" }]);
    expect(customBinding("wavelet-operator-auth-delegator").subjects).toEqual([{ kind: "ServiceAccount", name: "op", namespace: "wavelet-system" }]);
  });

  it("with metricsApi.enabled=false: none of it, and the operator told so", () => {
    const objects = renderChart(helm, [...RELEASE, "--set", "metricsApi.enabled=false"]);
    expect(ids(objects).filter((id) => /metrics-api|auth-|custom-metrics|APIService/.test(id))).toEqual([]);
    const container = deploymentOf(objects).spec!.template.spec!.containers[0]!;
    expect(container.ports).toEqual([{ name: "http", containerPort: 8080 }]);
    expect(container.volumeMounts).toBeUndefined();
    expect(deploymentOf(objects).spec!.template.spec!.volumes).toBeUndefined();
    const env = envOf(objects);
    expect(env.METRICS_API).toBe("false");
    expect(Object.keys(env).filter((k) => k.startsWith("METRICS_") && k !== "METRICS_API")).toEqual([]);
    expect(ids(objects)).toHaveLength(10);
  });

  it("with metricsApi.certManager: a Certificate for the same DNS names into the same Secret, and the cainjector fills caBundle", () => {
    const objects = renderChart(helm, [...RELEASE, "--set", "metricsApi.certManager.enabled=true,metricsApi.certManager.issuerRef.name=cluster-ca,metricsApi.certManager.issuerRef.kind=ClusterIssuer"]);
    expect(tlsSecretOf(objects)).toBeUndefined();
    expect(objects.find((o) => o.kind === "Certificate")).toMatchObject({
      apiVersion: "cert-manager.io/v1",
      metadata: { name: SERVICE, namespace: "wavelet-system" },
      spec: { secretName: `${SERVICE}-tls`, dnsNames: DNS_NAMES, issuerRef: { name: "cluster-ca", kind: "ClusterIssuer", group: "cert-manager.io" } },
    });
    const apiService = apiServiceOf(objects)!;
    expect(apiService.metadata?.annotations).toEqual({ "cert-manager.io/inject-ca-from": `wavelet-system/${SERVICE}` });
    expect(apiService.spec).not.toHaveProperty("caBundle");
    expect(apiService.spec).not.toHaveProperty("insecureSkipTLSVerify");
    // The operator mounts the Secret cert-manager writes.
    expect(deploymentOf(objects).spec!.template.spec!.volumes).toEqual([{ name: "metrics-api-tls", secret: { secretName: `${SERVICE}-tls` } }]);

    expect(() => renderChart(helm, ["--set", "metricsApi.certManager.enabled=true"])).toThrow(/metricsApi.certManager.issuerRef.name/);
  });

  it("takes the certificate's validity, and the APIService's priorities, from values", () => {
    const objects = renderChart(helm, [...RELEASE, "--set", "metricsApi.certValidityDays=30,metricsApi.groupPriorityMinimum=1000,metricsApi.versionPriority=15"]);
    const cert = new X509Certificate(pem(tlsSecretOf(objects)!.data!["tls.crt"]!));
    expect((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000).toBeCloseTo(30, 0);
    expect(apiServiceOf(objects)!.spec).toMatchObject({ groupPriorityMinimum: 1000, versionPriority: 15 });
  });

  it("refuses a rate window shorter than two scrapes", () => {
    expect(() => renderChart(helm, ["--set", "metricsApi.scrapeIntervalSeconds=20,metricsApi.windowSeconds=30"])).toThrow(/metricsApi.windowSeconds must hold at least two scrapes/);
    expect(apiServiceOf(renderChart(helm, ["--set", "metricsApi.scrapeIntervalSeconds=15,metricsApi.windowSeconds=30"]))).toBeDefined();
  });

  describe("against a cluster (helm's lookup, on a fake API server)", () => {
    const rendered = async (objects: KubernetesObject[], args: string[] = []) => {
      const api = await fakeApiServer(objects);
      try {
        const out = await helmAsync(helm, ["template", "wavelet-operator", CHART, ...RELEASE, "--dry-run=server", "--kubeconfig", api.kubeconfig, ...args]);
        return { objects: parseObjects(out), requests: api.requests };
      } finally {
        await api.close();
      }
    };
    /** helm install --dry-run=server's NOTES (with the manifest). */
    const installed = async (objects: KubernetesObject[], args: string[] = []) => {
      const api = await fakeApiServer(objects);
      try {
        return await helmAsync(helm, ["install", "wavelet-operator", CHART, ...RELEASE, "--dry-run=server", "--disable-openapi-validation", "--kubeconfig", api.kubeconfig, ...args]);
      } finally {
        await api.close();
      }
    };
    /** The NOTES, with each run of whitespace as one space. */
    const notesOf = (out: string) => out.slice(out.indexOf("NOTES:")).replace(/\s+/g, " ");

    it("registers the APIService where there is none, and tells how to scale on request rate", async () => {
      const { objects, requests } = await rendered([]);
      expect(requests).toContain(`GET /apis/apiregistration.k8s.io/v1/apiservices/${API_SERVICE}`);
      expect(apiServiceOf(objects)?.spec.service).toEqual({ name: SERVICE, namespace: "wavelet-system", port: 443 });
      const notes = notesOf(await installed([]));
      expect(notes).toContain("targetRequestsPerSecond");
      expect(notes).toContain("kubectl get --raw /apis/custom.metrics.k8s.io/v1beta2");
      expect(notes).not.toContain("WARNING");
    });

    it.each([
      ["without Helm's annotations (prometheus-adapter applied by hand)", undefined],
      ["of another release", helmOwned("prometheus-adapter", "monitoring")],
      ["of a release of the same name in another namespace", helmOwned("wavelet-operator", "elsewhere")],
    ])("leaves another provider's APIService alone: one %s", async (_name, annotations) => {
      const { objects } = await rendered([existingAPIService(annotations)]);
      expect(apiServiceOf(objects)).toBeUndefined();
      // The operator still serves the API; only the registration is left to the user's choice.
      expect(ids(objects)).toEqual(expect.arrayContaining(["Service/wavelet-system/wavelet-operator-metrics-api", "Secret/wavelet-system/wavelet-operator-metrics-api-tls"]));
      const notes = notesOf(await installed([existingAPIService(annotations)]));
      expect(notes).toContain("served by monitoring/prometheus-adapter and not this release's");
      expect(notes).toContain("--set metricsApi.enabled=false");
      expect(notes).toContain("requests_per_second and queued_rows");
      expect(notes).toContain("kubectl delete apiservice v1beta2.custom.metrics.k8s.io");
      expect(notes).not.toContain("kubectl get --raw");
    });

    it("keeps its own APIService on upgrade (Helm's annotations name this release)", async () => {
      const { objects } = await rendered([existingAPIService(helmOwned("wavelet-operator", "wavelet-system"))], ["--is-upgrade"]);
      expect(apiServiceOf(objects)?.spec.service.name).toBe(SERVICE);
    });

    it("registerAPIService: always renders it over another's, never renders it at all", async () => {
      expect(apiServiceOf((await rendered([existingAPIService()], ["--set", "metricsApi.registerAPIService=always"])).objects)?.spec.service.name).toBe(SERVICE);
      const never = await rendered([], ["--set", "metricsApi.registerAPIService=never"]);
      expect(apiServiceOf(never.objects)).toBeUndefined();
      expect(tlsSecretOf(never.objects)).toBeDefined();
      expect(apiServiceOf(renderChart(helm, ["--set", "metricsApi.registerAPIService=never"]))).toBeUndefined();
      expect(notesOf(await installed([], ["--set", "metricsApi.registerAPIService=never"]))).toContain("It is not registered (metricsApi.registerAPIService=never)");
    });

    it("keeps the certificate across upgrades: the Secret it finds, and caBundle its CA (rendering without one generates anew)", async () => {
      const first = tlsSecretOf(renderChart(helm, RELEASE))!;
      expect(tlsSecretOf(renderChart(helm, RELEASE))!.data!["ca.crt"]).not.toBe(first.data!["ca.crt"]);
      const stored = { ...first, metadata: { ...first.metadata, annotations: helmOwned("wavelet-operator", "wavelet-system") } };
      const { objects, requests } = await rendered([stored, existingAPIService(helmOwned("wavelet-operator", "wavelet-system"))], ["--is-upgrade"]);
      expect(requests).toContain("GET /api/v1/namespaces/wavelet-system/secrets/wavelet-operator-metrics-api-tls");
      expect(tlsSecretOf(objects)!.data).toEqual(first.data);
      expect(apiServiceOf(objects)!.spec.caBundle).toBe(first.data!["ca.crt"]);
    });

    it("with cert-manager, looks up no Secret", async () => {
      const { objects, requests } = await rendered([], ["--set", "metricsApi.certManager.enabled=true,metricsApi.certManager.issuerRef.name=ca"]);
      expect(requests.filter((r) => r.includes("/secrets/"))).toEqual([]);
      expect(objects.map((o) => o.kind)).toContain("Certificate");
    });
  });
});
