import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { KubernetesObject, V1Deployment, V1EnvVar, V1Role } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseConfig } from "../src/config.js";
import { APP, LABELS, MANAGED_BY } from "../src/api/labels.js";
import { CHART, buildHelm, renderChart } from "./helm.js";

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
      "ClusterRole/wavelet-model-editor",
      "ClusterRole/wavelet-model-viewer",
      "ClusterRole/wavelet-operator",
      "ClusterRoleBinding/wavelet-operator",
      "Deployment/wavelet-system/wavelet-operator",
      "PodDisruptionBudget/wavelet-system/wavelet-operator",
      "Role/wavelet-system/wavelet-operator-leader-election",
      "RoleBinding/wavelet-system/wavelet-operator-leader-election",
      "Service/wavelet-system/wavelet-operator-metrics",
      "ServiceAccount/wavelet-system/wavelet-operator",
    ]);
    const binding = objects.find((o) => o.kind === "ClusterRoleBinding") as unknown as { subjects: unknown[] };
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
      ports: [{ name: "http", containerPort: 8080 }],
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
  });

  it("with watchNamespaces: a Role with the same rules in each, the operator told which; image by digest; a ServiceMonitor", () => {
    const objects = renderChart(helm, ["--namespace", "wavelet-system", "-f", CI_VALUES]);
    const kinds = objects.map((o) => o.kind);
    expect(ids(objects.filter((o) => o.kind?.startsWith("ClusterRole")))).toEqual(["ClusterRole/wavelet-model-editor", "ClusterRole/wavelet-model-viewer"]);
    expect(ids(objects.filter((o) => o.kind === "Role" || o.kind === "RoleBinding"))).toEqual([
      "Role/team-a/wavelet-operator",
      "Role/team-b/wavelet-operator",
      "Role/wavelet-system/wavelet-operator-leader-election",
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

  it("aggregates WaveletModel rights into Kubernetes' admin/edit and view roles (issue 21)", () => {
    const roles = renderChart(helm).filter((o) => o.kind === "ClusterRole" && o.metadata?.name !== "wavelet-operator") as V1Role[];
    const editor = roles.find((r) => r.metadata?.name === "wavelet-model-editor")!;
    expect(editor.metadata?.labels).toMatchObject({ "rbac.authorization.k8s.io/aggregate-to-admin": "true", "rbac.authorization.k8s.io/aggregate-to-edit": "true" });
    expect(editor.rules![0]).toEqual({ apiGroups: ["wavelet.dev"], resources: ["waveletmodels"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"] });
    const viewer = roles.find((r) => r.metadata?.name === "wavelet-model-viewer")!;
    expect(viewer.metadata?.labels).toMatchObject({ "rbac.authorization.k8s.io/aggregate-to-view": "true" });
    expect(viewer.rules!.flatMap((r) => r.verbs)).toEqual(["get", "list", "watch"]);
    expect(renderChart(helm, ["--set", "aggregateRoles=false"]).filter((o) => o.kind === "ClusterRole").map((o) => o.metadata?.name)).toEqual(["wavelet-operator"]);
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
  ])("values.schema.json refuses %s", (_name, value, message) => {
    expect(() => renderChart(helm, ["--set", value])).toThrow(message);
  });

  it("refuses several replicas without leader election", () => {
    expect(() => renderChart(helm, ["--set", "leaderElection.enabled=false"])).toThrow(/replicaCount > 1 needs leaderElection.enabled/);
    expect(renderChart(helm, ["--set", "leaderElection.enabled=false,replicaCount=1"]).map((o) => o.kind)).not.toContain("Role");
  });
});
