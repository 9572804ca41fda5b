import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { caseRequest, namedParityBundles, parityBundles, readNamedBundle, withinFramework } from "./bundles.js";
import { heldModels } from "../src/inference/bundle.js";
import { json, testApp } from "./helpers.js";
import { namedBundle } from "./named-bundle.js";

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

    it(`${model}: /predict from raw prices (or bars) equals the last feature row's prediction`, async () => {
      for (const c of bundle.cases) {
        const res = await api().inject({ method: "POST", url: "/predict", ...json({ ...caseRequest(c), model_type: modelType }) });
        expect(res.statusCode).toBe(200);
        expect(Math.abs(res.json().prediction - c.predictions[model]!.at(-1)!)).toBeLessThanOrEqual(PREDICTION_TOLERANCE);
      }
    });
  }

  it("GET /models/golden gives each case's prices (or bars) and the served models' last-day predictions, int8 where served", async () => {
    for (const [api, key] of [
      [app, (m: string) => m],
      [quantized, (m: string) => `${m}_int8`],
    ] as const) {
      const res = await api.inject({ method: "GET", url: "/models/golden" });
      expect(res.statusCode).toBe(200);
      const golden = res.json() as { bundle: { digest: string }; cases: ({ name: string; expected: Record<string, number> } & ReturnType<typeof caseRequest>)[] };
      expect(golden.cases.map((c) => c.name)).toEqual(bundle.cases.map((c) => c.name));
      for (const [i, { name: _, expected, ...sent }] of golden.cases.entries()) {
        expect(sent).toEqual(caseRequest(bundle.cases[i]!));
        for (const [model, value] of Object.entries(expected)) {
          const variant = bundle.manifest.models[key(model)] ? key(model) : model;
          expect(value).toBe(bundle.cases[i]!.predictions[variant]!.at(-1));
          const answer = (await api.inject({ method: "POST", url: "/predict", ...json({ ...sent, model_type: model }) })).json();
          expect(Math.abs(answer.prediction - value)).toBeLessThanOrEqual(PREDICTION_TOLERANCE);
        }
      }
    }
  });

  it("/predict/stream over prices (or bars) gives one prediction per day with history, equal to the vectors", async () => {
    const c = bundle.cases[0]!;
    const res = await app.inject({ method: "POST", url: "/predict/stream", ...json({ ...caseRequest(c), model_type: "ensemble" }) });
    const lines = res.body.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toEqual({ done: true, count: c.features.length });
    lines.slice(0, -1).forEach((line, i) => expect(Math.abs(line.prediction - c.predictions.ensemble![i]!)).toBeLessThanOrEqual(PREDICTION_TOLERANCE));
  });
});

// The fixture written here (test/named-bundle.ts) and any imported bundle named in EXTRA_BUNDLES.
const imported = [readNamedBundle(await namedBundle()), ...namedParityBundles()];

describe.each(imported)("$manifest.name ($dir): the API serves an imported bundle's parity vectors", (bundle) => {
  // An import holds the models the user had (e.g. a gru): with MODELS unset, all are served.
  const models = heldModels(bundle.manifest);
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp({ MODEL_DIR: bundle.dir, CACHE_TTL: "0" });
  });
  afterAll(() => app.close());
  const names = bundle.manifest.features.names;
  const keyed = (row: readonly number[]) => Object.fromEntries(names.map((name, k) => [name, row[k]!]));
  const expectFramework = (got: number[], expected: number[], label: string) =>
    got.forEach((v, i) => expect(withinFramework(v, expected[i]!), `${label}[${i}]: ${v} vs ${expected[i]}`).toBe(true));

  for (const model of models) {
    it(`${model}: /predict/batch on the feature rows, as vectors and keyed by name, gives the original framework's predictions`, async () => {
      for (const c of bundle.cases) {
        for (const samples of [c.features, c.features.map(keyed)]) {
          const res = await app.inject({ method: "POST", url: "/predict/batch", ...json({ samples, model_type: model }) });
          expect(res.statusCode).toBe(200);
          expectFramework(res.json().predictions, c.predictions[model]!, c.name);
        }
      }
    });
  }

  it("GET /models/golden gives one case per feature row with the served models' framework predictions, which /predict answers", async () => {
    const golden = (await app.inject({ method: "GET", url: "/models/golden" })).json() as { cases: { name: string; features: number[]; expected: Record<string, number> }[] };
    const rows = bundle.cases.flatMap((c) => c.features.map((features, i) => ({ name: `${c.name}[${i}]`, features, expected: (model: string) => c.predictions[model]![i] })));
    expect(golden.cases.map((c) => c.name)).toEqual(rows.map((r) => r.name));
    for (const [k, c] of golden.cases.entries()) {
      expect(c.features).toEqual(rows[k]!.features);
      expect(Object.keys(c.expected).sort()).toEqual([...models].sort());
      for (const [model, value] of Object.entries(c.expected)) {
        expect(value).toBe(rows[k]!.expected(model));
        const answer = (await app.inject({ method: "POST", url: "/predict", ...json({ features: c.features, model_type: model }) })).json();
        expectFramework([answer.prediction], [value], c.name);
      }
    }
  });

  it("/predict/stream over the feature rows keyed by name gives one prediction per row, the batch's", async () => {
    for (const c of bundle.cases) {
      const model = models[0]!;
      const res = await app.inject({ method: "POST", url: "/predict/stream", ...json({ features: c.features.map(keyed), model_type: model }) });
      const lines = res.body.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines.at(-1)).toEqual({ done: true, count: c.features.length });
      expectFramework(lines.slice(0, -1).map((l) => l.prediction), c.predictions[model]!, c.name);
    }
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
