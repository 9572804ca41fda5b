import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { waitEstablished } from "../../../test-support/crds.js";
import { CHART, helmTemplate, parseObjects } from "../helm.js";
import { admin } from "./harness.js";

/**
 * The API server accepts what the chart renders (`helm template | kubectl apply
 * --dry-run=server`: schemas, RBAC, admission), the monitoring objects against the Prometheus
 * operator's own CRDs (e2e/cluster/monitoring-crds.sh), and the chart's lookup of an existing
 * custom metrics APIService. Install, upgrade and uninstall run in kind (e2e/kind).
 */

let seq = 0;

/** Fresh namespaces, since a dry run still needs the namespaces of what it creates. */
async function namespaces(n: number): Promise<string[]> {
  const names = Array.from({ length: n }, () => `chart-${Date.now().toString(36)}-${seq++}`);
  for (const name of names) await admin().core.createNamespace({ body: { metadata: { name } } });
  return names;
}

const kubectl = (args: string[], input?: string) =>
  execFileSync(inject("kubectl"), args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, KUBECONFIG: inject("kubeconfig") } });

/** `helm template … | kubectl apply --dry-run=server -f -`: one line per object, each created. */
function dryRun(rendered: string): string[] {
  const out = kubectl(["apply", "--dry-run=server", "-f", "-"], rendered);
  const lines = out.trim().split("\n");
  for (const line of lines) expect(line).toMatch(/ created \(server dry run\)$/);
  return lines;
}

describe("the Helm chart on a real API server", () => {
  beforeAll(() => {
    // As a cluster with the Prometheus operator has them.
    const crds = execFileSync(resolve(import.meta.dirname, "../../../e2e/cluster/monitoring-crds.sh"), { encoding: "utf8" }).trim().split("\n").at(-1)!;
    for (const kind of ["servicemonitors", "podmonitors", "prometheusrules"]) kubectl(["apply", "--server-side", "-f", `${crds}/monitoring.coreos.com_${kind}.yaml`]);
    waitEstablished(inject("kubectl"), inject("kubeconfig"), ["servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"]);
  }, 120_000);

  it("accepts the default rendering: cluster-wide RBAC", async () => {
    const [release] = await namespaces(1);
    const lines = dryRun(helmTemplate(inject("helm"), ["--namespace", release!]));
    expect(lines).toContain("clusterrole.rbac.authorization.k8s.io/wavelet-operator created (server dry run)");
    expect(lines).toContain("deployment.apps/wavelet-operator created (server dry run)");
    expect(lines).toContain("clusterrole.rbac.authorization.k8s.io/wavelet-model-editor created (server dry run)");
    // The custom metrics API: its registration, its certificate, and an aggregated API server's bindings.
    expect(lines).toEqual(
      expect.arrayContaining([
        "apiservice.apiregistration.k8s.io/v1beta2.custom.metrics.k8s.io created (server dry run)",
        "secret/wavelet-operator-metrics-api-tls created (server dry run)",
        "service/wavelet-operator-metrics-api created (server dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/wavelet-operator-auth-delegator created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/wavelet-operator-auth-reader created (server dry run)",
        "clusterrole.rbac.authorization.k8s.io/wavelet-operator-custom-metrics-reader created (server dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/wavelet-operator-custom-metrics-reader created (server dry run)",
      ]),
    );
    expect(lines).toHaveLength(17);
  });

  it("accepts the rendering without the custom metrics API", async () => {
    const [release] = await namespaces(1);
    const lines = dryRun(helmTemplate(inject("helm"), ["--namespace", release!, "--set", "metricsApi.enabled=false"]));
    expect(lines.filter((l) => /metrics-api|auth-|custom-metrics|apiservice/.test(l))).toEqual([]);
    expect(lines).toHaveLength(10);
  });

  it("helm's lookup on the API server: registers the APIService where there is none, leaves another provider's alone", async (ctx) => {
    const [release] = await namespaces(1);
    const rendered = () =>
      parseObjects(helmTemplate(inject("helm"), ["--namespace", release!, "--dry-run=server", "--kubeconfig", inject("kubeconfig")])).filter((o) => o.kind === "APIService");
    const name = "v1beta2.custom.metrics.k8s.io";
    if (kubectl(["get", "apiservice", "--ignore-not-found", "-o", "name", name]).trim()) ctx.skip(); // someone's provider is registered here
    expect(rendered()).toHaveLength(1);
    // As prometheus-adapter registers it (no Service behind it here: it stays unavailable meanwhile).
    const theirs = {
      apiVersion: "apiregistration.k8s.io/v1",
      kind: "APIService",
      metadata: { name },
      spec: { group: "custom.metrics.k8s.io", version: "v1beta2", service: { name: "prometheus-adapter", namespace: "monitoring", port: 443 }, groupPriorityMinimum: 100, versionPriority: 100 },
    };
    kubectl(["create", "-f", "-"], JSON.stringify(theirs));
    try {
      expect(rendered()).toEqual([]);
    } finally {
      kubectl(["delete", "apiservice", name, "--wait"]);
    }
  });

  it("accepts Roles in watched namespaces, the image by digest and the monitoring objects (ci/namespaced-values.yaml)", async () => {
    const [release, ...watched] = await namespaces(3);
    const values = ["-f", `${CHART}/ci/namespaced-values.yaml`, "--set-json", `watchNamespaces=${JSON.stringify(watched)}`];
    const lines = dryRun(helmTemplate(inject("helm"), ["--namespace", release!, ...values]));
    expect(lines.filter((l) => l.startsWith("role.rbac.authorization.k8s.io/"))).toHaveLength(3);
    // Cluster-wide for the operator only what an aggregated API server needs (system:auth-delegator);
    // the other ClusterRoles are those aggregated into edit and view, and the HPA's metrics reader.
    expect(lines.filter((l) => l.startsWith("clusterrole")).sort()).toEqual([
      "clusterrole.rbac.authorization.k8s.io/wavelet-model-editor created (server dry run)",
      "clusterrole.rbac.authorization.k8s.io/wavelet-model-viewer created (server dry run)",
      "clusterrole.rbac.authorization.k8s.io/wavelet-operator-custom-metrics-reader created (server dry run)",
      "clusterrolebinding.rbac.authorization.k8s.io/wavelet-operator-auth-delegator created (server dry run)",
      "clusterrolebinding.rbac.authorization.k8s.io/wavelet-operator-custom-metrics-reader created (server dry run)",
    ]);
    expect(lines).toEqual(
      expect.arrayContaining([
        "servicemonitor.monitoring.coreos.com/wavelet-operator created (server dry run)",
        "podmonitor.monitoring.coreos.com/wavelet-operator-servers created (server dry run)",
        "prometheusrule.monitoring.coreos.com/wavelet-operator created (server dry run)",
      ]),
    );
    expect(lines).toHaveLength(22);
  });

  it("the PrometheusRule's schema is enforced: a rule with a malformed `for` is refused", async () => {
    const [release] = await namespaces(1);
    const rendered = helmTemplate(inject("helm"), ["--namespace", release!, "--set", "metrics.prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"]);
    expect(() => kubectl(["apply", "--dry-run=server", "-f", "-"], rendered.replace("for: 5m", "for: five minutes"))).toThrow(/spec\.groups\[\d+\]\.rules\[\d+\]\.for/);
  });
});
