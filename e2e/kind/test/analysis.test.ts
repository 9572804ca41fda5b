import { describe, expect, inject, it } from "vitest";
import { kube, models, scenarioNamespace, seconds, toBundleImage, waitFor, waitReady, builtinSpec } from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 8: analysis before promotion, against real servers. The model needs an API key
 * (a Secret); the operator's analysis reads it, fetches the new colour's golden cases
 * (GET /models/golden: the bundle's parity vectors), sends them to its /predict through the
 * preview Service, compares the answers with the recorded predictions, checks its /metrics,
 * and only then switches traffic.
 */

describe("8. analysis before promotion", () => {
  it("passes on the new bundle's golden cases, with the API key, and then promotes", async () => {
    const bundles = inject("bundles");
    const k = kube();
    const namespace = await scenarioNamespace(k, "e2e-analysis");
    await k.core.createNamespacedSecret({ namespace, body: { metadata: { name: "keys" }, stringData: { "api-key": "analysis-key-0000000001,analysis-key-0000000002" } } });
    const wm = models(k, namespace);
    const spec = builtinSpec({
      replicas: 1,
      server: { apiKeySecretRef: { name: "keys" } },
      // A p99 bound for two busy cores, not for production.
      rollout: { scaleDownDelaySeconds: 5, progressDeadlineSeconds: 300, analysis: { enabled: true, requests: 20, maxP99LatencyMs: 5000 } },
    });
    await wm.create("analyzed", spec);
    await waitReady(k, namespace, "analyzed");

    const changed = Date.now();
    await wm.patch("analyzed", toBundleImage());
    const done = await waitFor(
      "promoted after analysis",
      async () => {
        const x = await wm.get("analyzed");
        if (x.status?.rollout?.phase === "Failed") throw new Error(`rollout failed: ${x.status.rollout.message}`);
        return x.status?.activeBundle?.digest === bundles["spx-vol-5d"].digest && x.status.phase === "Ready" ? x : undefined;
      },
      300_000,
    );
    const events = await k.core.listNamespacedEvent({ namespace, fieldSelector: "involvedObject.name=analyzed,involvedObject.kind=WaveletModel" });
    const passed = events.items.find((e) => e.reason === "AnalysisPassed");
    recordResult({
      scenario: "8. analysis before promotion",
      requests: 0,
      failed: 0,
      readySeconds: seconds(Date.now() - changed),
      notes: passed?.message ?? "no AnalysisPassed event",
    });
    expect(passed?.message).toMatch(/20 golden requests answered as recorded/);
    const reasons = events.items.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["RolloutStarted", "PreviewReady", "AnalysisPassed", "Promoted"]));
    expect(reasons).not.toContain("AnalysisRunFailed");
    expect(done.status?.activeColor).toBeDefined();
  });
});
