import { describe, expect, inject, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  expectNoFailures,
  kubectl,
  seconds,
  servedModel,
  sleep,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 4: manual promotion (`autoPromote: false`). The new colour comes up and waits;
 * traffic stays on the old one until `wavelet.dev/promote=true`; afterwards the Service keeps
 * selecting the new colour (watched for 30 s: a promotion must stick).
 */

describe("4. manual promotion", () => {
  it("keeps traffic until the promote annotation, then stays on the new colour", async () => {
    const bundles = inject("bundles");
    const spec = builtinSpec({ replicas: 1, rollout: { autoPromote: false, scaleDownDelaySeconds: 5, progressDeadlineSeconds: 300 } });
    const { k, namespace, wm, oldColor, url } = await servedModel("e2e-promote", "manual", spec);
    const watch = await new SwitchWatch(k, namespace, "manual").start();
    const load = new Load(url, 50).start();

    const changed = Date.now();
    await wm.patch("manual", toBundleImage());
    await waitFor("AwaitingPromotion", async () => (await wm.get("manual")).status?.rollout?.phase === "AwaitingPromotion", 300_000);
    const waitingAt = Date.now();
    // Ready now would tell kubectl wait and GitOps tools the rollout is done: it is not.
    expect((await wm.get("manual")).status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("False");
    await sleep(10_000);
    expect(watch.changes.map((c) => c.color)).toEqual([oldColor]);

    const promoted = Date.now();
    kubectl(["annotate", "-n", namespace, "wm/manual", "wavelet.dev/promote=true"]);
    const switchedAt = await watch.switched(60_000);
    const after = await waitReady(k, namespace, "manual");
    const newColor = after.status!.activeColor!;
    expect(newColor).not.toBe(oldColor);
    expect(after.metadata.annotations?.["wavelet.dev/promote"]).toBeUndefined();
    await sleep(30_000);
    const summary = await load.stop();
    watch.stop();
    const final = await wm.get("manual");
    recordResult({
      scenario: "4. manual promotion",
      requests: summary.sent,
      failed: summary.failed,
      switchSeconds: seconds(switchedAt - promoted),
      notes: `waited for promotion ${seconds(promoted - waitingAt)} s (new colour ready ${seconds(waitingAt - changed)} s after the change); selector stayed on the new colour 30 s`,
    });

    expect(watch.changes.map((c) => c.color)).toEqual([oldColor, newColor]);
    expect(final.status?.activeColor).toBe(newColor);
    expect(final.status?.activeBundle?.digest).toBe(bundles["spx-vol-5d"].digest);
    expectNoFailures(summary, { "the change": changed, "the promotion": promoted, "the switch": switchedAt });
    // Before the promotion every answer came from the old bundle.
    expect(summary.byDigest[bundles["spx-vol-5d"].digest]!.first).toBeGreaterThanOrEqual(switchedAt - 200);
  });
});
