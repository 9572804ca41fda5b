import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parityBundles } from "./bundles.js";
import { json, testApp } from "./helpers.js";

// The vectors were computed in Python from the same float32 graphs; intervals add float64
// arithmetic on top, which differs only in the last bits.
const PREDICTION_TOLERANCE = 1e-6;
const INTERVAL_TOLERANCE = 1e-6;

describe.each(parityBundles())("$manifest.name ($dir): the API reproduces the parity vectors", (bundle) => {
  let app: FastifyInstance;
  let quantized: FastifyInstance;
  beforeAll(async () => {
    app = await testApp({ MODEL_DIR: bundle.dir, CACHE_TTL: "0" });
    quantized = await testApp({ MODEL_DIR: bundle.dir, CACHE_TTL: "0", QUANTIZED: "true", MODELS: "lstm,transformer" });
  });
  afterAll(async () => {
    await app.close();
    await quantized.close();
  });

  const served = Object.keys(bundle.manifest.models);
  for (const model of served) {
    const api = () => (model.endsWith("_int8") ? quantized : app);
    const modelType = model.replace("_int8", "");

    it(`${model}: /predict/batch on the feature rows, with intervals`, async () => {
      for (const c of bundle.cases) {
        const res = await api().inject({ method: "POST", url: "/predict/batch", ...json({ samples: c.features, model_type: modelType, return_confidence: true }) });
        expect(res.statusCode).toBe(200);
        const body = res.json();
        body.predictions.forEach((p: number, i: number) => expect(Math.abs(p - c.predictions[model]![i]!), `${c.name}[${i}]`).toBeLessThanOrEqual(PREDICTION_TOLERANCE));
        body.confidence.lower.forEach((v: number, i: number) => expect(Math.abs(v - c.intervals[model]!.lower[i]!)).toBeLessThanOrEqual(INTERVAL_TOLERANCE));
        body.confidence.upper.forEach((v: number, i: number) => expect(Math.abs(v - c.intervals[model]!.upper[i]!)).toBeLessThanOrEqual(INTERVAL_TOLERANCE));
      }
    });

    it(`${model}: /predict from raw prices equals the last feature row's prediction`, async () => {
      for (const c of bundle.cases) {
        const res = await api().inject({ method: "POST", url: "/predict", ...json({ prices: c.prices, model_type: modelType }) });
        expect(res.statusCode).toBe(200);
        expect(Math.abs(res.json().prediction - c.predictions[model]!.at(-1)!)).toBeLessThanOrEqual(PREDICTION_TOLERANCE);
      }
    });
  }

  it("GET /models/golden gives each case's prices and the served models' last-day predictions, int8 where served", async () => {
    for (const [api, key] of [
      [app, (m: string) => m],
      [quantized, (m: string) => `${m}_int8`],
    ] as const) {
      const res = await api.inject({ method: "GET", url: "/models/golden" });
      expect(res.statusCode).toBe(200);
      const golden = res.json() as { bundle: { digest: string }; cases: { name: string; prices: number[]; expected: Record<string, number> }[] };
      expect(golden.cases.map((c) => c.name)).toEqual(bundle.cases.map((c) => c.name));
      for (const [i, c] of golden.cases.entries()) {
        expect(c.prices).toEqual(bundle.cases[i]!.prices);
        for (const [model, value] of Object.entries(c.expected)) {
          const variant = bundle.manifest.models[key(model)] ? key(model) : model;
          expect(value).toBe(bundle.cases[i]!.predictions[variant]!.at(-1));
          const answer = (await api.inject({ method: "POST", url: "/predict", ...json({ prices: c.prices, model_type: model }) })).json();
          expect(Math.abs(answer.prediction - value)).toBeLessThanOrEqual(PREDICTION_TOLERANCE);
        }
      }
    }
  });

  it("/predict/stream over prices gives one prediction per day with history, equal to the vectors", async () => {
    const c = bundle.cases[0]!;
    const res = await app.inject({ method: "POST", url: "/predict/stream", ...json({ prices: c.prices, model_type: "ensemble" }) });
    const lines = res.body.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toEqual({ done: true, count: c.features.length });
    lines.slice(0, -1).forEach((line, i) => expect(Math.abs(line.prediction - c.predictions.ensemble![i]!)).toBeLessThanOrEqual(PREDICTION_TOLERANCE));
  });
});

describe("micro-batching", () => {
  it("coalesces concurrent single predictions into one ONNX run, and batched equals unbatched exactly", async () => {
    const rows = Array.from({ length: 200 }, (_, i) => Array.from({ length: 10 }, (_, j) => Math.sin(i * 1.3 + j) * 0.9));
    const predictAll = async (app: FastifyInstance) =>
      Promise.all(rows.map((features) => app.inject({ method: "POST", url: "/predict", ...json({ features, model_type: "transformer" }) }).then((r) => r.json().prediction as number)));
    const batched = await testApp({ CACHE_TTL: "0", MICRO_BATCH: "true" });
    const single = await testApp({ CACHE_TTL: "0", MICRO_BATCH: "false" });
    const [a, b] = [await predictAll(batched), await predictAll(single)];
    expect(a).toEqual(b);
    const metrics = (await batched.inject({ method: "GET", url: "/metrics" })).body;
    const runs = Number(/model_batch_size_count\{model="transformer"\} (\d+)/.exec(metrics)![1]);
    const rowsRun = Number(/model_batch_size_sum\{model="transformer"\} (\d+)/.exec(metrics)![1]);
    expect(rowsRun).toBe(200);
    expect(runs).toBeLessThan(20);
    await batched.close();
    await single.close();
  });
});
