import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { kube, scenarioNamespace, waitFor } from "./harness.js";
import { recordResult } from "./results.js";

/**
 * The chart's lifecycle in a real cluster, beside the operator setup.ts installed: a second
 * release watching one namespace (Roles, not ClusterRoles) is installed, upgraded and
 * uninstalled; each step waits for the operator's pods, the upgrade rolls them, and the
 * uninstall leaves nothing of the release behind (the CRD stays: Helm never deletes CRDs).
 */

const root = resolve(import.meta.dirname, "../../..");
const RELEASE = "chart-lifecycle";

describe("the Helm chart in kind", () => {
  it("installs, upgrades and uninstalls cleanly", async () => {
    const k = kube();
    const namespace = await scenarioNamespace(k, "e2e-chart");
    const watched = await scenarioNamespace(k, "e2e-chart-watched");
    const helm = (...args: string[]) =>
      execFileSync(inject("helm"), args, { encoding: "utf8", env: { ...process.env, KUBECONFIG: inject("kubeconfig") } });
    const [repository, tag] = inject("operatorImage").split(":") as [string, string];
    const values = [
      // The cluster-wide aggregated roles belong to the first release (README).
      "--set", `image.repository=${repository},image.tag=${tag},replicaCount=1,aggregateRoles=false`,
      "--set-json", `watchNamespaces=["${watched}"]`,
    ];
    const started = Date.now();
    const notes = helm("install", RELEASE, `${root}/charts/wavelet-operator`, "-n", namespace, ...values, "--wait", "--timeout", "3m");
    const installedIn = (Date.now() - started) / 1000;
    // The first release serves custom.metrics.k8s.io: the second leaves its APIService alone and says so.
    expect(notes).toContain("WARNING: the cluster already has the APIService v1beta2.custom.metrics.k8s.io, served by\nwavelet-system/wavelet-operator-metrics-api");
    const apiService = () =>
      execFileSync(inject("kubectl"), ["get", "apiservice", "v1beta2.custom.metrics.k8s.io", "-o", "jsonpath={.spec.service.namespace}/{.spec.service.name}"], {
        encoding: "utf8",
        env: { ...process.env, KUBECONFIG: inject("kubeconfig") },
      });
    expect(apiService()).toBe("wavelet-system/wavelet-operator-metrics-api");
    const pods = async () =>
      (await k.core.listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${RELEASE}` })).items.map((p) => p.metadata!.name!);
    const [firstPod] = await pods();
    const roles = await k.rbac.listNamespacedRole({ namespace: watched });
    expect(roles.items.map((r) => r.metadata?.name)).toContain(`${RELEASE}-wavelet-operator`);
    await waitFor("the release's operator to lead", async () => {
      const leases = await k.coordination.listNamespacedLease({ namespace });
      return leases.items.some((l) => l.spec?.holderIdentity === firstPod);
    }, 60_000);

    helm("upgrade", RELEASE, `${root}/charts/wavelet-operator`, "-n", namespace, ...values, "--set", "logLevel=debug", "--wait", "--timeout", "3m");
    const afterUpgrade = await waitFor("the upgraded pod alone", async () => {
      const names = await pods();
      return names.length === 1 && names[0] !== firstPod && names;
    }, 120_000);
    expect(afterUpgrade).not.toContain(firstPod);

    helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "3m");
    await waitFor("the release's pods gone", async () => (await pods()).length === 0, 120_000);
    const left = execFileSync(inject("kubectl"), ["get", "all,sa,roles,rolebindings,pdb", "-n", namespace, "-l", `app.kubernetes.io/instance=${RELEASE}`, "-o", "name"], {
      encoding: "utf8",
      env: { ...process.env, KUBECONFIG: inject("kubeconfig") },
    });
    expect(left.trim()).toBe("");
    expect((await k.rbac.listNamespacedRole({ namespace: watched })).items).toEqual([]);
    await k.apiext.readCustomResourceDefinition({ name: "waveletmodels.wavelet.dev" });
    // The uninstall took nothing of the first release's: its APIService still serves.
    expect(apiService()).toBe("wavelet-system/wavelet-operator-metrics-api");
    recordResult({ scenario: "Helm chart: install, upgrade, uninstall", requests: 0, failed: 0, readySeconds: Math.round(installedIn * 10) / 10 });
  });
});
