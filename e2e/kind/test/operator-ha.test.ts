import { describe, expect, inject, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  expectNoFailures,
  seconds,
  servedModel,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";
import { OPERATOR_NAMESPACE } from "./setup.js";

/**
 * Scenario 6: the operator's leader deleted in the middle of a rollout. The chart runs two
 * replicas with Lease leader election; the standby takes the Lease and finishes the rollout
 * from the status the first one wrote. Traffic keeps flowing throughout.
 */

describe("6. the operator leader deleted mid-rollout", () => {
  it("completes the rollout under the next leader with no failed request", async () => {
    const bundles = inject("bundles");
    const { k, namespace, wm, url } = await servedModel("e2e-operator-ha", "ha", builtinSpec());
    const watch = await new SwitchWatch(k, namespace, "ha").start();
    const load = new Load(url, 100).start();

    const leader = async () => {
      const leases = await k.coordination.listNamespacedLease({ namespace: OPERATOR_NAMESPACE });
      return leases.items.map((l) => l.spec?.holderIdentity).find((h) => h?.startsWith("wavelet-operator"));
    };
    const first = await waitFor("a leader", leader);
    const changed = Date.now();
    await wm.patch("ha", toBundleImage());
    await waitFor("the rollout to start", async () => (await wm.get("ha")).status?.rollout?.phase === "Deploying", 60_000);
    await k.core.deleteNamespacedPod({ name: first, namespace: OPERATOR_NAMESPACE });
    const killed = Date.now();
    const next = await waitFor("another leader", async () => {
      const h = await leader();
      return h !== first && h;
    }, 120_000);
    const tookOver = Date.now();
    const after = await waitReady(k, namespace, "ha");
    await watch.switched(10_000); // Ready follows the switch; the 100 ms poll sees it shortly
    const summary = await load.stop();
    watch.stop();
    recordResult({
      scenario: "6. operator leader deleted mid-rollout",
      requests: summary.sent,
      failed: summary.failed,
      readySeconds: seconds(Date.now() - changed),
      notes: `${next} led ${seconds(tookOver - killed)} s after ${first} was deleted`,
    });

    expect(after.status?.activeBundle?.digest).toBe(bundles["spx-vol-5d"].digest);
    expect(watch.changes).toHaveLength(2);
    expectNoFailures(summary, { "the change": changed, "the leader was deleted": killed });
  });
});
