import { describe, expect, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  expectNoFailures,
  kubectl,
  samplesUntilSwitch,
  seconds,
  servedModel,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 10: autoscaling on request rate through the operator's own custom metrics API
 * (custom.metrics.k8s.io/v1beta2, registered by the chart; no prometheus-adapter, no KEDA).
 * Load at three times the per-pod target scales the active colour from 1 to 3–4 replicas; a
 * bundle change while scaled up switches at the scaled count; when the load stops the model
 * goes back to 1 (a test-sized scale-down stabilization window).
 */

// Per pod; the load is three times this.
const TARGET = 8;
const RATE = 3 * TARGET;
const BASE = "/apis/custom.metrics.k8s.io/v1beta2";

interface MetricValueList {
  items: { describedObject: { name: string }; value: string; windowSeconds: number }[];
}

/** A Quantity as the API writes it ("12", "12500m") in units. */
const quantity = (q: string) => (q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q));

describe("10. autoscaling on request rate", () => {
  it("scales 1 → 3–4 on requests per second, switches blue-green at that count, and back to 1", async () => {
    // The chart registered the API and an operator replica answers it.
    const discovery = JSON.parse(kubectl(["get", "--raw", BASE])) as { resources: { name: string }[] };
    expect(discovery.resources.map((r) => r.name)).toContain("pods/requests_per_second");

    const { replicas: _, ...spec } = builtinSpec({
      autoscaling: {
        minReplicas: 1,
        maxReplicas: 4,
        targetRequestsPerSecond: TARGET,
        // Kubernetes' default is 300 s; the scenario waits 30.
        behavior: { scaleDown: { stabilizationWindowSeconds: 30 } },
      },
    });
    const { k, namespace, wm, oldColor, newColor, url } = await servedModel("e2e-rps", "rps", spec);
    const replicaSet = (color: string) => k.apps.readNamespacedReplicaSet({ name: `rps-${color}`, namespace });
    const load = new Load(url, RATE).start();
    const loaded = Date.now();

    const scaled = await waitFor(
      "the HPA to scale the active colour to 3 or more on requests per second",
      async () => {
        const rs = await replicaSet(oldColor);
        return (rs.spec?.replicas ?? 0) >= 3 && (rs.status?.availableReplicas ?? 0) >= 3 && rs.spec!.replicas!;
      },
      300_000,
    );
    const scaledAt = Date.now();
    // What the HPA reads: a rate for each pod once it has been scraped twice, adding up to about the load's.
    const rates = await waitFor(
      "a rate for every pod of the scaled colour",
      async () => {
        const list = JSON.parse(kubectl(["get", "--raw", `${BASE}/namespaces/${namespace}/pods/*/requests_per_second?labelSelector=${encodeURIComponent("wavelet.dev/model=rps")}`])) as MetricValueList;
        return list.items.length >= scaled && list;
      },
      60_000,
    );
    const total = rates.items.reduce((s, i) => s + quantity(i.value), 0);
    expect(total).toBeGreaterThan(RATE * 0.7);
    expect(total).toBeLessThan(RATE * 1.3);
    const modelRate = JSON.parse(kubectl(["get", "--raw", `${BASE}/namespaces/${namespace}/waveletmodels.wavelet.dev/rps/requests_per_second`])) as MetricValueList;
    expect(quantity(modelRate.items[0]!.value)).toBeGreaterThan(RATE * 0.7);

    const watch = await new SwitchWatch(k, namespace, "rps").start();
    const changed = Date.now();
    await wm.patch("rps", toBundleImage());
    const samples = await samplesUntilSwitch(k, namespace, "rps", { oldColor, newColor }, watch);
    const switchedAt = watch.changes[1]!.at;
    await waitReady(k, namespace, "rps");
    watch.stop();
    const summary = await load.stop();
    const stoppedAt = Date.now();

    const hpa = await k.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: "rps", namespace });
    expect(hpa.spec?.scaleTargetRef.name).toBe(`rps-${newColor}`);
    const down = await waitFor(
      "the HPA to scale the new colour back to 1 once the load stopped",
      async () => ((await replicaSet(newColor)).spec?.replicas === 1 ? Date.now() : undefined),
      300_000,
    );
    const last = samples.at(-1)!;
    recordResult({
      scenario: `10. autoscaling on request rate (${RATE}/s, target ${TARGET}/s a pod) and a rollout while scaled up`,
      requests: summary.sent,
      failed: summary.failed,
      switchSeconds: seconds(switchedAt - changed),
      notes: `1 → ${scaled} in ${seconds(scaledAt - loaded)} s; rates served ${total.toFixed(1)}/s over ${rates.items.length} pods; the new colour had ${last.idleAvailable} of ${last.active} available at the switch; back to 1 ${seconds(down - stoppedAt)} s after the load stopped`,
    });

    expect(scaled).toBeLessThanOrEqual(4);
    // The idle colour was brought up to the active colour's scaled count before traffic moved.
    expect(last.idle).toBeGreaterThanOrEqual(3);
    expect(last.idleAvailable).toBeGreaterThanOrEqual(last.active);
    expectNoFailures(summary, { "the load": loaded, "the change": changed, "the switch": switchedAt });
  });
});
