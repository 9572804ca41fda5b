import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, RETURN_BUNDLE, VOL_BUNDLE, copyBundle, json, nextVersion, replaceBundle, testApp } from "./helpers.js";

describe("hot reload", () => {
  it("swaps in a good bundle atomically while requests keep being answered", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const app = await testApp({ MODEL_DIR: dir, CACHE_TTL: "0" });
    const before = (await app.inject({ method: "GET", url: "/health" })).json().bundle;
    const next = nextVersion();
    replaceBundle(dir, next.dir);
    // Requests in flight during the reload are all answered, by one bundle or the other.
    const during = Array.from({ length: 50 }, () => app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) }));
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(200);
    expect(reload.json()).toMatchObject({ reloaded: true, bundle: { version: next.version }, previous: { name: "spx-return-1d", digest: before.digest } });
    expect(reload.json().bundle.digest).not.toBe(before.digest);
    for (const res of await Promise.all(during)) expect(res.statusCode).toBe(200);
    const after = await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) });
    expect(after.json().bundle.version).toBe(next.version);
    expect((await app.inject({ method: "GET", url: "/metrics" })).body).toContain(`version="${next.version}"`);
    await app.close();
  });

  for (const [name, spoil, reason] of [
    ["a file whose hash does not match", (dir: string) => writeFileSync(join(dir, "lstm_optimized.onnx"), "not a graph"), "lstm_optimized.onnx does not match its sha256"],
    ["a missing file", (dir: string) => rmSync(join(dir, "ensemble_optimized.onnx")), "ensemble_optimized.onnx is missing"],
    [
      "the volatility bundle, whose feature vector differs from the API this process publishes",
      (dir: string) => replaceBundle(dir, VOL_BUNDLE),
      "restart the server to serve it",
    ],
    [
      "a graph whose inputs differ from what the manifest states",
      (dir: string) => {
        const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
        manifest.models.transformer.inputs[0].name = "x";
        writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
      },
      "graph has inputs [features] and outputs [prediction], manifest says x → prediction",
    ],
    ["a manifest that is not JSON", (dir: string) => writeFileSync(join(dir, "manifest.json"), "{"), "manifest.json is not JSON"],
  ] as const) {
    it(`refuses ${name}, keeps serving the old bundle and reports why`, async () => {
      const dir = copyBundle(RETURN_BUNDLE);
      const app = await testApp({ MODEL_DIR: dir });
      const digest = (await app.inject({ method: "GET", url: "/health" })).json().bundle.digest;
      spoil(dir);
      const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
      expect(reload.statusCode).toBe(422);
      expect(reload.json().error).toBe("bundle_rejected");
      expect(reload.json().message).toContain(reason);
      const health = await app.inject({ method: "GET", url: "/health" });
      expect(health.statusCode).toBe(200);
      expect(health.json().bundle.digest).toBe(digest);
      expect(health.json().last_reload).toMatchObject({ ok: false });
      expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) })).statusCode).toBe(200);
      const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
      expect(metrics).toContain('model_reloads_total{result="ok"} 1');
      expect(metrics).toContain('model_reloads_total{result="failed"} 1');
      await app.close();
    });
  }
});
