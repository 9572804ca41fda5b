import { execFileSync } from "node:child_process";
import { describe, expect, inject, it } from "vitest";
import { CHART, helmTemplate } from "../helm.js";
import { admin } from "./harness.js";

/**
 * The API server accepts what the chart renders (`helm template | kubectl apply
 * --dry-run=server`: schemas, RBAC, admission). The ServiceMonitor is left out: its CRD (from
 * the Prometheus operator) is not installed on this control plane. Install, upgrade and
 * uninstall run in kind (e2e/kind).
 */

let seq = 0;

/** Fresh namespaces, since a dry run still needs the namespaces of what it creates. */
async function namespaces(n: number): Promise<string[]> {
  const names = Array.from({ length: n }, () => `chart-${Date.now().toString(36)}-${seq++}`);
  for (const name of names) await admin().core.createNamespace({ body: { metadata: { name } } });
  return names;
}

/** `helm template … | kubectl apply --dry-run=server -f -`: one line per object, each created. */
function dryRun(rendered: string): string[] {
  const out = execFileSync(inject("kubectl"), ["apply", "--dry-run=server", "-f", "-"], {
    input: rendered,
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: inject("kubeconfig") },
  });
  const lines = out.trim().split("\n");
  for (const line of lines) expect(line).toMatch(/ created \(server dry run\)$/);
  return lines;
}

describe("the Helm chart on a real API server", () => {
  it("accepts the default rendering: cluster-wide RBAC", async () => {
    const [release] = await namespaces(1);
    const lines = dryRun(helmTemplate(inject("helm"), ["--namespace", release!]));
    expect(lines).toContain("clusterrole.rbac.authorization.k8s.io/wavelet-operator created (server dry run)");
    expect(lines).toContain("deployment.apps/wavelet-operator created (server dry run)");
    expect(lines).toHaveLength(8);
  });

  it("accepts Roles in watched namespaces and the image by digest (ci/namespaced-values.yaml, no ServiceMonitor)", async () => {
    const [release, ...watched] = await namespaces(3);
    const values = ["-f", `${CHART}/ci/namespaced-values.yaml`, "--set", "metrics.serviceMonitor.enabled=false", "--set-json", `watchNamespaces=${JSON.stringify(watched)}`];
    const lines = dryRun(helmTemplate(inject("helm"), ["--namespace", release!, ...values]));
    expect(lines.filter((l) => l.startsWith("role.rbac.authorization.k8s.io/"))).toHaveLength(3);
    expect(lines.some((l) => l.startsWith("clusterrole"))).toBe(false);
    expect(lines).toHaveLength(10);
  });
});
