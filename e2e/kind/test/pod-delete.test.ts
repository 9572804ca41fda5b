import { describe, expect, it } from "vitest";
import { Load, builtinSpec, colorPods, expectNoFailures, models, servedModel, sleep, waitFor, waitReady } from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 7: a server pod deleted under load, gracefully (as a node drain or a rolling
 * update does). Its endpoint is withdrawn while the preStop delay holds the pod, then on
 * SIGTERM readiness turns 503, keep-alive clients get `Connection: close`, in-flight
 * requests finish and the process exits: no request fails.
 */

const RATE = 200;

describe("7. a server pod deleted under load", () => {
  it(`loses no request at ${RATE} requests/s`, async () => {
    const { k, namespace, oldColor: color, url } = await servedModel("e2e-pod-delete", "podkill", builtinSpec());
    const load = new Load(url, RATE).start();
    await sleep(5_000);
    const [victim] = await colorPods(k, namespace, "podkill", color);
    const deletedAt = Date.now();
    await k.core.deleteNamespacedPod({ name: victim!.metadata!.name!, namespace });
    await waitFor(`${victim!.metadata!.name} gone`, async () => !(await colorPods(k, namespace, "podkill", color)).some((p) => p.metadata?.name === victim!.metadata!.name), 120_000);
    // Its replacement serves too.
    await waitReady(k, namespace, "podkill");
    await waitFor("two ready pods", async () => (await models(k, namespace).get("podkill")).status?.readyReplicas === 2, 120_000);
    await sleep(5_000);
    const summary = await load.stop();
    recordResult({ scenario: `7. server pod deleted under load (${RATE}/s)`, requests: summary.sent, failed: summary.failed, notes: `p99 ${summary.p99} ms` });
    expectNoFailures(summary, { "the deletion": deletedAt });
  });
});
