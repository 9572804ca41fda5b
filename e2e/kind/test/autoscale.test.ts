import { describe, expect, inject, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  expectNoFailures,
  samplesUntilSwitch,
  seconds,
  servedModel,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 5: autoscaling on real CPU metrics (metrics-server). Load scales the active
 * colour up through the HPA; a rollout started while scaled up brings the idle colour up to
 * the active colour's current replica count (not the HPA minimum) before traffic switches,
 * and the HPA moves with the traffic.
 */

const RATE = 150;

describe("5. autoscaling", () => {
  it("scales the active colour on CPU and rolls out at the scaled-up count", async () => {
    const bundles = inject("bundles");
    const { replicas: _, ...spec } = builtinSpec({
      autoscaling: { minReplicas: 1, maxReplicas: 3, targetCPUUtilizationPercentage: 20 },
      // A small request makes modest load a high utilization.
      server: { resources: { requests: { cpu: "50m", memory: "256Mi" } } },
    });
    const { k, namespace, wm, oldColor, newColor, url } = await servedModel("e2e-autoscale", "scaled", spec);
    const load = new Load(url, RATE).start();

    const loaded = Date.now();
    const scaled = await waitFor(
      "the HPA to scale the active colour up",
      async () => {
        const d = await k.apps.readNamespacedReplicaSet({ name: `scaled-${oldColor}`, namespace });
        return (d.status?.availableReplicas ?? 0) >= 2 && (d.spec?.replicas ?? 0) >= 2 && d.spec!.replicas!;
      },
      300_000,
    );
    const scaledAt = Date.now();

    const watch = await new SwitchWatch(k, namespace, "scaled").start();
    const changed = Date.now();
    await wm.patch("scaled", toBundleImage());
    // Until the switch, record how many replicas each colour asks for and has available.
    const samples = await samplesUntilSwitch(k, namespace, "scaled", { oldColor, newColor }, watch);
    const switchedAt = watch.changes[1]!.at;
    const after = await waitReady(k, namespace, "scaled");
    const hpa = await k.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: "scaled", namespace });
    const summary = await load.stop();
    watch.stop();
    const last = samples.at(-1)!;
    recordResult({
      scenario: `5. autoscaling (${RATE}/s, HPA on CPU) and a rollout while scaled up`,
      requests: summary.sent,
      failed: summary.failed,
      switchSeconds: seconds(switchedAt - changed),
      notes: `HPA scaled 1 → ${scaled} in ${seconds(scaledAt - loaded)} s; the new colour had ${last.idleAvailable} of ${last.active} replicas available before the switch`,
    });

    expect(after.status?.activeBundle?.digest).toBe(bundles["spx-vol-5d"].digest);
    // The idle colour was asked for the active colour's current count, never the minimum,
    // and had them all available when traffic moved.
    const started = samples.filter((s) => s.idle > 0);
    expect(started.length).toBeGreaterThan(0);
    for (const s of started) expect(s.idle).toBe(s.active);
    expect(last.idle).toBeGreaterThanOrEqual(scaled);
    expect(last.idleAvailable).toBeGreaterThanOrEqual(last.active);
    expect(hpa.spec?.scaleTargetRef.name).toBe(`scaled-${newColor}`);
    expectNoFailures(summary, { "the change": changed, "the switch": switchedAt });
  });
});
