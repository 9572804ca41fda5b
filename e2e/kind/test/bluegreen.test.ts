import { describe, expect, inject, it } from "vitest";
import {
  Load,
  SwitchWatch,
  builtinSpec,
  colorPods,
  expectNoFailures,
  kube,
  seconds,
  servedModel,
  sleep,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 2: blue-green under load. A constant 200 requests/s go through the model's
 * Service while its bundle changes from the built-in return bundle to the volatility
 * bundle's image. No request may fail; every answer names its bundle; new answers start only
 * with the switch, and old answers end when the old colour has drained: keep-alive clients
 * stay on old pods (kube-proxy steers new connections only) until those pods answer with
 * `Connection: close` during their SIGTERM drain, which follows scaleDownDelaySeconds and the
 * pods' preStop delay.
 */

const RATE = 200;
const SCALE_DOWN_DELAY = 10;
// preStop sleep + the server's SHUTDOWN_DELAY_MS + connection turnover, seconds (operator/src/reconcile/replicaset.ts).
const DRAIN_BOUND = 15;

describe("2. blue-green under load", () => {
  it(`moves to a bundle image under ${RATE} requests/s with no failed request`, async () => {
    const bundles = inject("bundles");
    const spec = builtinSpec({ rollout: { scaleDownDelaySeconds: SCALE_DOWN_DELAY, progressDeadlineSeconds: 300 } });
    const { k, namespace, wm, oldColor, url } = await servedModel("e2e-bluegreen", "bg", spec);
    const watch = await new SwitchWatch(k, namespace, "bg").start();

    const load = new Load(url, RATE).start();
    await sleep(5_000);
    const changed = Date.now();
    await wm.patch("bg", toBundleImage());
    const switchedAt = await watch.switched();
    const after = await waitReady(k, namespace, "bg");
    const readyAt = Date.now();
    expect(after.status?.activeBundle?.digest).toBe(bundles["spx-vol-5d"].digest);
    // The old colour scales to zero after the delay; its pods drain, then are gone.
    await waitFor(`old colour ${oldColor} gone`, async () => (await colorPods(k, namespace, "bg", oldColor)).length === 0, 120_000);
    const drainedAt = Date.now();
    await sleep(3_000);
    const summary = await load.stop();
    watch.stop();

    const oldDigest = bundles["spx-return-1d"].digest;
    const newDigest = bundles["spx-vol-5d"].digest;
    const old = summary.byDigest[oldDigest]!;
    const fresh = summary.byDigest[newDigest]!;
    const overlap = seconds(old.last - switchedAt);
    recordResult({
      scenario: `2. blue-green under load (${RATE}/s, builtin → bundle image)`,
      requests: summary.sent,
      failed: summary.failed,
      switchSeconds: seconds(switchedAt - changed),
      readySeconds: seconds(readyAt - changed),
      notes: `old bundle answered until ${overlap} s after the switch (scaleDownDelaySeconds ${SCALE_DOWN_DELAY} + drain); p99 ${summary.p99} ms`,
    });

    expectNoFailures(summary, { "the change": changed, "the switch": switchedAt, "the old colour was gone": drainedAt });
    // Open loop: the client kept its rate whatever the server did.
    expect(summary.sent).toBeGreaterThanOrEqual(RATE * ((drainedAt - changed) / 1000));
    expect(Object.keys(summary.byDigest).sort()).toEqual([oldDigest, newDigest].sort());
    expect(old.count + fresh.count).toBe(summary.sent);
    // Never back and forth: one switch.
    expect(watch.changes.map((c) => c.color)).toEqual([oldColor, after.status!.activeColor]);
    // New answers only once the Service selects the new colour (100 ms polling).
    expect(fresh.first).toBeGreaterThanOrEqual(switchedAt - 200);
    // Old answers end with the old colour's drain, bounded by the delay and the drain.
    expect(old.last).toBeLessThanOrEqual(drainedAt);
    expect(old.last - switchedAt).toBeLessThanOrEqual((SCALE_DOWN_DELAY + DRAIN_BOUND) * 1000);
  });
});
