import { describe, expect, inject, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  colorPods,
  condition,
  eventReasons,
  expectNoFailures,
  kubectl,
  seconds,
  servedModel,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 3: a bundle whose digest does not match. The WaveletModel asks for the volatility
 * bundle's image but pins the return bundle's digest: the new colour's pods refuse to become
 * ready (EXPECTED_BUNDLE_DIGEST), traffic never leaves the old colour, the model turns
 * Degraded with a reason and a Warning Event, and `wavelet.dev/rollback=true` restores the
 * last good spec.
 */

const DEADLINE = 30;

describe("3. a bundle whose digest does not match", () => {
  it("never takes traffic, reports Degraded with an Event, and rolls back on request", async () => {
    const bundles = inject("bundles");
    const spec = builtinSpec({ replicas: 1, rollout: { scaleDownDelaySeconds: 5, progressDeadlineSeconds: DEADLINE } });
    const { k, namespace, wm, oldColor, newColor, url } = await servedModel("e2e-mismatch", "mismatch", spec);
    const watch = await new SwitchWatch(k, namespace, "mismatch").start();
    const load = new Load(url, 50).start();

    const changed = Date.now();
    await wm.patch("mismatch", toBundleImage(bundles["spx-return-1d"].digest));
    const degraded = await waitFor(
      "Degraded",
      async () => {
        const m = await wm.get("mismatch");
        const c = condition(m, "Degraded");
        return c?.status === "True" && c.observedGeneration === m.metadata.generation && m;
      },
      (DEADLINE + 60) * 1000,
    );
    const degradedAt = Date.now();
    expect(condition(degraded, "Ready")?.status).toBe("False");
    expect(condition(degraded, "Degraded")?.message).toMatch(/available|deadline/i);
    // A pass writes status before its Events (CI, 2026-11-27: read at once, the Event was not there yet).
    await waitFor("the ProgressDeadlineExceeded Event", async () => (await eventReasons(k, namespace, "mismatch")).includes("ProgressDeadlineExceeded"), 30_000);
    // The new colour's pods run but are never ready: /health names the digest mismatch.
    for (const pod of await colorPods(k, namespace, "mismatch", newColor)) {
      expect(pod.status?.containerStatuses?.[0]?.ready ?? false).toBe(false);
    }

    const rollback = Date.now();
    kubectl(["annotate", "-n", namespace, "wm/mismatch", "wavelet.dev/rollback=true"]);
    const restored = await waitReady(k, namespace, "mismatch");
    const restoredAt = Date.now();
    expect(restored.spec.bundle).toMatchObject({ builtin: "spx-return-1d", digest: bundles["spx-return-1d"].digest });
    expect(restored.metadata.annotations?.["wavelet.dev/rollback"]).toBeUndefined();
    expect(restored.status?.activeColor).toBe(oldColor);
    const summary = await load.stop();
    watch.stop();
    recordResult({
      scenario: "3. bundle digest mismatch, then rollback",
      requests: summary.sent,
      failed: summary.failed,
      readySeconds: seconds(restoredAt - rollback),
      notes: `Degraded ${seconds(degradedAt - changed)} s after the change (deadline ${DEADLINE} s); traffic never left the old colour; Ready = rollback to Ready`,
    });

    expectNoFailures(summary, { "the change": changed, "the rollback": rollback });
    expect(watch.changes.map((c) => c.color)).toEqual([oldColor]);
    expect(Object.keys(summary.byDigest)).toEqual([bundles["spx-return-1d"].digest]);
  });
});
