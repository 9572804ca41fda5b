import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { channelSeries, featureParams, featureRows } from "../src/features/channels.js";
import { featureSpecSchema } from "../src/schemas/manifest.js";
import { caseCloses, caseRequest, parityBundles } from "./bundles.js";
import { GUIDE_FEATURES, RETURN_BUNDLE, copyBundle, json, replaceBundle, testApp } from "./helpers.js";
import { linearBundle, multiChannelFeatures } from "./linear-bundle.js";

/** A seeded random walk of daily closes with a crash in it (every channel then moves). */
function walk(n: number, seed = 3): number[] {
  const prices = [100];
  for (let t = 1; t < n; t++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const shock = (seed / 2 ** 31 - 0.5) * 3 + (t > n / 2 && t < n / 2 + 5 ? -6 : 0);
    prices.push(prices[t - 1]! * Math.exp(shock / 100));
  }
  return prices;
}

const params = featureParams(featureSpecSchema.parse(multiChannelFeatures()));
const W = params.window;
const C = params.channels.length;
const prices = walk(400);
const rows = featureRows(prices, params).map((r) => Array.from(r));
/** The per-day rows a client streams: every channel's value on each day from the first day all are defined. */
function dayRows(series: Record<string, ArrayLike<number | null>>, names: readonly string[], from: number, to: number): number[][] {
  return Array.from({ length: to - from }, (_, d) => names.map((name) => series[name]![from + d] as number));
}
const firstDay = params.minPrices - W; // the first day every channel is defined
const days = dayRows(channelSeries(prices, params), params.names, firstDay, prices.length);

const lines = (body: string) => body.trim().split("\n").map((l) => JSON.parse(l));
const post = (app: FastifyInstance, url: string, body: unknown) => app.inject({ method: "POST", url, ...json(body) });

describe("a multi-channel bundle (6 channels × 10 days) served end to end", () => {
  let app: FastifyInstance;
  let chunked: FastifyInstance;
  let batch: number[];
  const dir = linearBundle({
    min: rows[0]!.map((_, j) => Math.min(...rows.map((r) => r[j]!))),
    max: rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!))),
  });
  beforeAll(async () => {
    app = await testApp({ MODEL_DIR: dir, CACHE_TTL: "0" });
    // Streams computed 7 rows at a time: the channels are filled range by range.
    chunked = await testApp({ MODEL_DIR: dir, CACHE_TTL: "0", MICRO_BATCH_MAX: "7" });
    const res = await post(app, "/predict/batch", { samples: rows, model_type: "lstm", return_confidence: true });
    expect(res.statusCode).toBe(200);
    batch = res.json().predictions;
    expect(batch.length).toBe(prices.length - params.minPrices + 1);
  });
  afterAll(async () => {
    await app.close();
    await chunked.close();
  });

  it("the test's inputs are what they claim: 60-value rows, one per day from min_prices, and per-day rows of 6", () => {
    expect(rows[0]!.length).toBe(W * C);
    expect(days.length).toBe(rows.length + W - 1);
    expect(days.every((d) => d.length === C && d.every(Number.isFinite))).toBe(true);
    expect(new Set(batch).size).toBeGreaterThan(batch.length / 2); // predictions vary with the inputs
  });

  for (const [name, server] of [
    ["in one chunk", () => app],
    ["7 rows at a time", () => chunked],
  ] as const) {
    it(`/predict/stream with prices and with per-day feature rows equals /predict/batch on the same vectors (${name})`, async () => {
      for (const body of [{ prices }, { features: days }]) {
        const res = await post(server(), "/predict/stream", { ...body, model_type: "lstm", return_confidence: true });
        expect(res.statusCode).toBe(200);
        const out = lines(res.body);
        expect(out.at(-1)).toEqual({ done: true, count: rows.length });
        expect(out.slice(0, -1).map((l) => l.prediction)).toEqual(batch);
        expect(out.slice(0, -1).map((l) => l.index)).toEqual(batch.map((_, i) => i));
      }
    });
  }

  it("window_size counts days: with 3 more, predictions start 3 days later, with rows and with prices", async () => {
    for (const body of [{ prices }, { features: days }]) {
      const res = await post(chunked, "/predict/stream", { ...body, window_size: W + 3, model_type: "lstm" });
      const out = lines(res.body);
      expect(out.at(-1)).toEqual({ done: true, count: rows.length - 3 });
      expect(out.slice(0, -1).map((l) => l.prediction)).toEqual(batch.slice(3));
    }
  });

  it("/predict with prices answers the last day's vector", async () => {
    const res = await post(app, "/predict", { prices, model_type: "lstm" });
    expect(res.statusCode).toBe(200);
    expect(res.json().prediction).toBe(batch.at(-1));
    expect((await post(app, "/predict", { prices: prices.slice(0, params.minPrices - 1) })).statusCode).toBe(400);
  });

  it("validates the shapes: 60-value vectors, rows of 6 per day, no plain number series", async () => {
    const field = async (url: string, body: unknown) => {
      const res = await post(app, url, body);
      expect(res.statusCode).toBe(400);
      return res.json().fields[0].field as string;
    };
    expect(await field("/predict", { features: GUIDE_FEATURES })).toBe("features");
    expect(await field("/predict/batch", { samples: [rows[0], GUIDE_FEATURES] })).toBe("samples[1]");
    expect(await field("/predict/stream", { features: [...days.slice(0, 3), [1, 2, 3], ...days.slice(3)] })).toBe("features[3]");
    expect(await field("/predict/stream", { features: [...days.slice(0, 3), [1, 2, 3, 4, 5, null], ...days.slice(3)] })).toBe("features[3][5]");
    expect(await field("/predict/stream", { features: days.slice(0, W - 1) })).toBe("features");
    expect(await field("/predict/stream", { features: days.map((d) => d[0]) })).toBe("features[0]");
    expect(await field("/predict/stream", { features: days, window_size: W - 1 })).toBe("window_size");
  });

  it("the OpenAPI describes the served shape: 60-value vectors, a stream of 6-value rows, examples that fit", async () => {
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const schemas = spec.components.schemas;
    const predict = schemas.PredictFeaturesRequest;
    expect(predict.properties.features).toMatchObject({ type: "array", minItems: 60, maxItems: 60 });
    expect(predict.example.features.length).toBe(60);
    const stream = schemas.StreamFeaturesRequest;
    expect(stream.properties.features).toMatchObject({ type: "array", minItems: W, items: { type: "array", minItems: C, maxItems: C, items: { type: "number" } } });
    expect(stream.example.features.length).toBe(W);
    expect(stream.example.features.every((d: number[]) => d.length === C)).toBe(true);
    expect(stream.properties.window_size.minimum).toBe(W);
    const batchSchema = schemas.BatchRequest;
    expect(batchSchema.example.samples.every((s: number[]) => s.length === 60)).toBe(true);
    // The examples are valid requests, those with prices too (74 of them for this bundle).
    expect(schemas.PredictPricesRequest.example.prices.length).toBe(74);
    for (const [url, schema] of [
      ["/predict", predict],
      ["/predict", schemas.PredictPricesRequest],
      ["/predict/stream", stream],
      ["/predict/stream", schemas.StreamPricesRequest],
      ["/predict/batch", batchSchema],
    ]) {
      expect((await post(app, url, schema.example)).statusCode, url).toBe(200);
    }
  });

  it("GET /models shows the channels and the energy and GARCH parameters", async () => {
    const body = (await app.inject({ method: "GET", url: "/models" })).json();
    expect(body.features).toMatchObject({
      window: 10,
      channels: ["dn_ret", "ret", "wav_e1", "wav_e2", "wav_es", "gjr_vol"],
      min_prices: 74,
      energy: { levels: 2, span: 5 },
      garch: { kind: "gjr", omega: 0.02, alpha: 0.01, gamma: 0.2, beta: 0.85, trailing: 64, horizon: 5 },
    });
    expect(body.features.names.length).toBe(60);
  });

  it("input drift: a row counts as beyond training when any feature leaves its feature_range", async () => {
    const drift = async () =>
      (await app.wavelet.metrics.inputsOutOfRange.get()).values.find((v) => v.labels.model === "xgboost" && v.labels.reason === "beyond_training")?.value ?? 0;
    const before = await drift();
    // Every training row is inside by construction (the range is theirs), the extremes included.
    expect((await post(app, "/predict/batch", { samples: rows, model_type: "xgboost" })).statusCode).toBe(200);
    expect(await drift()).toBe(before);
    // gjr_vol (the last channel) just above its maximum; ret just below its minimum (negative).
    const gjr = 5 * W + W - 1;
    const high = rows.map((r) => r[gjr]!).reduce((a, b) => Math.max(a, b));
    const ret = W;
    const low = rows.map((r) => r[ret]!).reduce((a, b) => Math.min(a, b));
    const above = rows[0]!.map((v, j) => (j === gjr ? high * 1.01 : v));
    const below = rows[0]!.map((v, j) => (j === ret ? low - 0.01 : v));
    expect((await post(app, "/predict/batch", { samples: [above, rows[1], below], model_type: "xgboost" })).statusCode).toBe(200);
    expect((await drift()) - before).toBe(2);
  });
});

describe("reloads between bundles of different feature shapes are refused", () => {
  it("1 channel → 6 channels, and 6 → 1: 422, the old bundle keeps serving", async () => {
    for (const [from, to] of [
      [RETURN_BUNDLE, linearBundle()],
      [linearBundle(), RETURN_BUNDLE],
    ] as const) {
      const dir = copyBundle(from);
      const app = await testApp({ MODEL_DIR: dir });
      const before = (await app.inject({ method: "GET", url: "/health" })).json().bundle.name;
      replaceBundle(dir, to);
      const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
      expect(reload.statusCode).toBe(422);
      expect(reload.json().message).toMatch(/takes features of 10 days × \d channels? from \d+ prices, the API this process publishes takes .*restart the server/);
      expect((await app.inject({ method: "GET", url: "/health" })).json().bundle.name).toBe(before);
      await app.close();
    }
  });
});

// Bundles trained by the pipeline with several channels: the committed ones once retrained,
// and any named in EXTRA_BUNDLES (server/test/bundles.ts).
const trained = parityBundles().filter((b) => b.manifest.features.channels.length > 1);
describe.each(trained)("$manifest.name ($dir): streams of a trained multi-channel bundle", (bundle) => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp({ MODEL_DIR: bundle.dir, CACHE_TTL: "0", MICRO_BATCH_MAX: "16" });
  });
  afterAll(() => app.close());

  it("per-day rows from the vectors' channels stream the predictions of /predict/batch on the vectors' features; prices agree to 1e-6", async () => {
    const p = featureParams(bundle.manifest.features);
    for (const c of bundle.cases) {
      const batch = (await post(app, "/predict/batch", { samples: c.features, model_type: "ensemble" })).json().predictions as number[];
      const features = dayRows(c.channels!, bundle.manifest.features.channels, p.minPrices - p.window, caseCloses(c).length);
      const streamed = lines((await post(app, "/predict/stream", { features, model_type: "ensemble" })).body);
      expect(streamed.slice(0, -1).map((l) => l.prediction), c.name).toEqual(batch);
      const fromPrices = lines((await post(app, "/predict/stream", { ...caseRequest(c), model_type: "ensemble" })).body);
      expect(fromPrices.at(-1)).toEqual({ done: true, count: c.features.length });
      fromPrices.slice(0, -1).forEach((l, i) => expect(Math.abs(l.prediction - c.predictions.ensemble![i]!), `${c.name}[${i}]`).toBeLessThanOrEqual(1e-6));
    }
  });
});
