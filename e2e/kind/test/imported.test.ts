import { describe, expect, inject, it } from "vitest";
import { Load, SwitchWatch, builtinSpec, colorPods, expectNoFailures, seconds, servedModel, sleep, waitFor, waitReady } from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 9: bring your own models. A guide user's own models (XGBoost, an LSTM and a
 * Transformer as state dicts, a TorchScript GRU, ensemble weights: scripts/imported-bundles.sh)
 * imported into a bundle image, 1.0.0, served by a WaveletModel; then 1.1.0 (the same models
 * retrained) rolls out blue-green under load, every request keyed by feature name, after the
 * operator's analysis sent the new bundle's golden feature vectors to its preview.
 */

const RATE = 100;

describe("9. an imported bundle rolls to its next version", () => {
  it(`1.0.0 → 1.1.0 under ${RATE} requests/s keyed by feature name, with no failed request`, async () => {
    const { "1.0.0": first, "1.1.0": next } = inject("imported");
    const image = (b: typeof first) => ({ builtin: null, image: b.image, path: "/bundle", digest: b.digest, version: b.version });
    const rollout = { scaleDownDelaySeconds: 10, progressDeadlineSeconds: 300, analysis: { enabled: true, requests: 20, maxP99LatencyMs: 5000 } };
    const spec = { ...builtinSpec({ rollout }), bundle: image(first) };
    const { k, namespace, wm, oldColor, url } = await servedModel("e2e-imported", "byom", spec);
    const watch = await new SwitchWatch(k, namespace, "byom").start();

    // The same row, named: the keys in reverse order (a name, not a position, says which is which).
    const row = first.names.map((_, i) => Math.round(100 * Math.sin(i + 1)) / 100);
    const named = Object.fromEntries(first.names.map((name, i) => [name, row[i]]).reverse());
    const load = new Load(url, RATE, JSON.stringify({ features: named, model_type: "ensemble" })).start();
    await sleep(3_000);
    const changed = Date.now();
    await wm.patch("byom", { spec: { bundle: image(next) } });
    const switchedAt = await watch.switched();
    const after = await waitReady(k, namespace, "byom");
    const readyAt = Date.now();
    await waitFor(`old colour ${oldColor} gone`, async () => (await colorPods(k, namespace, "byom", oldColor)).length === 0, 120_000);
    const summary = await load.stop();
    watch.stop();

    // After the rollout, the named object and the vector it names get the same answer.
    const ask = async (features: unknown) => {
      const res = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features, model_type: "ensemble" }) });
      return { status: res.status, body: (await res.json()) as { prediction: number; bundle: { digest: string; version: string } } };
    };
    const [byName, byVector] = [await ask(named), await ask(row)];
    const events = await k.core.listNamespacedEvent({ namespace, fieldSelector: "involvedObject.name=byom,involvedObject.kind=WaveletModel" });
    const analysis = events.items.find((e) => e.reason === "AnalysisPassed")?.message;

    recordResult({
      scenario: `9. imported bundle 1.0.0 → 1.1.0 (${RATE}/s, features by name)`,
      requests: summary.sent,
      failed: summary.failed,
      switchSeconds: seconds(switchedAt - changed),
      readySeconds: seconds(readyAt - changed),
      notes: `${first.names.length} named features; ensemble of xgboost, lstm, transformer; p99 ${summary.p99} ms; analysis: ${analysis ?? "no AnalysisPassed event"}`,
    });
    expectNoFailures(summary, { "the change": changed, "the switch": switchedAt });
    expect(analysis).toMatch(/20 golden requests answered as recorded/);
    expect(after.status?.activeBundle?.digest).toBe(next.digest);
    expect(Object.keys(summary.byDigest).sort()).toEqual([first.digest, next.digest].sort());
    expect(summary.byDigest[next.digest]!.first).toBeGreaterThanOrEqual(switchedAt - 200);
    expect(byName.status).toBe(200);
    expect(byName.body.bundle).toMatchObject({ digest: next.digest, version: "1.1.0" });
    expect(byVector.body.prediction).toBe(byName.body.prediction);
  });
});
