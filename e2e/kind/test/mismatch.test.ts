import { describe, expect, inject, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  colorPods,
  condition,
  eventReasons,
  expectNoFailures,
  kube,
  kubectl,
  models,
  seconds,
  servedModel,
  scenarioNamespace,
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
 *
 * Scenario 3b, beside it: a first deployment with the wrong digest (no traffic to protect yet),
 * then the spec fixed: the operator replaces the broken pods itself (a ReplicaSet never does)
 * and the model becomes Ready.
 */

const DEADLINE = 30;

// The two scenarios run side by side (their own namespaces, each cleaned up by its own test
// context's hook: the global onTestFinished would fire for whichever test ends first).
describe.concurrent("digests that do not match", () => {
  describe("3. a bundle whose digest does not match", () => {
    it("never takes traffic, reports Degraded with an Event, and rolls back on request", async ({ onTestFinished }) => {
      const bundles = inject("bundles");
      const spec = builtinSpec({ replicas: 1, rollout: { scaleDownDelaySeconds: 5, progressDeadlineSeconds: DEADLINE } });
      const { k, namespace, wm, oldColor, newColor, url } = await servedModel("e2e-mismatch", "mismatch", spec, onTestFinished);
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

  describe("3b. a first deployment with a wrong digest, then fixed (issue 21)", () => {
    it("becomes Ready without anyone touching pods: the pods of the broken template are replaced", async ({ onTestFinished }) => {
      const bundles = inject("bundles");
      const k = kube();
      const namespace = await scenarioNamespace(k, "e2e-fix-first", onTestFinished);
      const wm = models(k, namespace);
      const right = builtinSpec();
      // The digest of the other bundle: the server refuses the bundle, its pods never become ready.
      const wrong = { ...right, bundle: { ...(right.bundle as object), digest: bundles["spx-vol-5d"].digest } };
      const created = Date.now();
      await wm.create("fixfirst", wrong);
      const running = await waitFor(
        "the broken pods running, not ready",
        async () => {
          const pods = await colorPods(k, namespace, "fixfirst", "blue");
          return pods.length === 2 && pods.every((p) => p.status?.containerStatuses?.[0]?.started && !p.status.containerStatuses[0].ready) && pods;
        },
        300_000,
      );
      const broken = new Set(running.map((p) => p.metadata!.uid));

      const fixed = Date.now();
      await wm.patch("fixfirst", { spec: { bundle: right.bundle } });
      const ready = await waitReady(k, namespace, "fixfirst");
      const readyAt = Date.now();
      expect(ready.status).toMatchObject({ activeColor: "blue", readyReplicas: 2 });
      const pods = await colorPods(k, namespace, "fixfirst", "blue");
      expect(pods.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.annotations?.["wavelet.dev/template-hash"])).toEqual([
        ready.status!.activeTemplateHash,
        ready.status!.activeTemplateHash,
      ]);
      // The broken pods are gone or going (their drain takes seconds): deleted by the operator.
      expect(pods.filter((p) => broken.has(p.metadata!.uid) && !p.metadata?.deletionTimestamp)).toEqual([]);
      expect(await eventReasons(k, namespace, "fixfirst")).toContain("Deployed");
      recordResult({
        scenario: "3b. first deployment, wrong digest, then fixed",
        requests: 0,
        failed: 0,
        readySeconds: seconds(readyAt - fixed),
        notes: `broken pods running ${seconds(fixed - created)} s after apply; Ready = fix to Ready, the broken pods replaced by the operator`,
      });
    });
  });
});
