import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { featureParams, featureRows } from "../src/features/channels.js";
import { SESSION_OPTIONS } from "../src/inference/bundle.js";
import type { Bar } from "../src/schemas/bars.js";
import { featureSpecSchema } from "../src/schemas/manifest.js";
import { copyBundle, json, RETURN_BUNDLE, replaceBundle, testApp } from "./helpers.js";
import { linearBundle, rangeFeatures } from "./linear-bundle.js";
import { namedBundle } from "./named-bundle.js";
import { columns, randomBars } from "./ohlc.js";

/**
 * A bundle whose features read daily bars (test/linear-bundle.ts: rangeFeatures, 7 channels of
 * 10 days from 54 bars, linear graphs), served end to end: bars as objects or columns on every
 * prediction route, the refusals that name the bar at fault, bars_required, the document, golden
 * cases; and bars sent to a bundle of closes (their closes are read) or of named features.
 */

const post = (app: FastifyInstance, url: string, body: unknown) => app.inject({ method: "POST", url, ...json(body) });
const lines = (body: string) => body.trim().split("\n").map((l) => JSON.parse(l));
const without = ({ open: _, ...bar }: Bar): Bar => bar;

const spec = featureSpecSchema.parse(rangeFeatures());
const params = featureParams(spec);
const bars = randomBars(160, 11);
const cols = columns(bars);
const rows = featureRows(cols, params).map((r) => Array.from(r));

/** The linear graph's answers to feature rows, as onnxruntime gives them (the pipeline's role: writing the golden predictions). */
async function graphAnswers(dir: string, features: number[][]): Promise<number[]> {
  const session = await ort.InferenceSession.create(join(dir, "linear.onnx"), SESSION_OPTIONS);
  const width = features[0]!.length;
  const out = await session.run({ features: new ort.Tensor("float32", Float32Array.from(features.flat()), [features.length, width]) });
  await session.release();
  return Array.from(out.prediction!.data as Float32Array);
}

describe("a bundle that reads bars {open, high, low, close} (Garman–Klass)", () => {
  let app: FastifyInstance;
  let chunked: FastifyInstance;
  let batch: number[];
  let golden: number[];
  beforeAll(async () => {
    // The golden case (vectors/parity.json) as the pipeline writes one: the bars as columns, their closes as prices.
    golden = await graphAnswers(linearBundle(undefined, rangeFeatures(), "range-linear"), rows);
    const parity = { cases: [{ name: "walk", prices: cols.close, bars: cols, predictions: Object.fromEntries(["xgboost", "lstm", "transformer", "ensemble"].map((m) => [m, golden])) }] };
    const dir = linearBundle(undefined, rangeFeatures(), "range-linear", { "vectors/parity.json": JSON.stringify(parity) });
    app = await testApp({ MODEL_DIR: dir, CACHE_TTL: "0" });
    chunked = await testApp({ MODEL_DIR: dir, CACHE_TTL: "0", MICRO_BATCH_MAX: "7" });
    const res = await post(app, "/predict/batch", { samples: rows, model_type: "lstm" });
    expect(res.statusCode).toBe(200);
    batch = res.json().predictions;
  });
  afterAll(async () => {
    await app.close();
    await chunked.close();
  });

  it("the test's inputs are what they claim: one 70-value row a day from day 53, predictions that vary", () => {
    expect(params.minPrices).toBe(54);
    expect(rows.length).toBe(bars.length - 53);
    expect(rows[0]!.length).toBe(70);
    expect(new Set(batch).size).toBeGreaterThan(batch.length / 2);
  });

  it("/predict with bars, as objects or as columns, answers the last day's vector (input: bars)", async () => {
    for (const sent of [bars, cols, bars.slice(-54)]) {
      const res = await post(app, "/predict", { bars: sent, model_type: "lstm" });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ prediction: batch.at(-1), input: "bars" });
    }
  });

  for (const [name, server] of [
    ["in one chunk", () => app],
    ["7 rows at a time", () => chunked],
  ] as const) {
    it(`/predict/stream with bars gives one prediction per day with history, the batch's (${name})`, async () => {
      for (const sent of [bars, cols]) {
        const out = lines((await post(server(), "/predict/stream", { bars: sent, model_type: "lstm" })).body);
        expect(out.at(-1)).toEqual({ done: true, count: rows.length });
        expect(out.slice(0, -1).map((l) => l.prediction)).toEqual(batch);
      }
      const later = lines((await post(server(), "/predict/stream", { bars, window_size: 13, model_type: "lstm" })).body);
      expect(later.slice(0, -1).map((l) => l.prediction)).toEqual(batch.slice(3));
    });
  }

  it("/predict/batch takes samples of bars beside vectors: each is its last day's vector", async () => {
    const samples = [rows[0], { bars: bars.slice(0, 60) }, { bars: cols }, rows.at(-1)];
    const res = await post(app, "/predict/batch", { samples, model_type: "lstm", return_confidence: true });
    expect(res.statusCode).toBe(200);
    expect(res.json().predictions).toEqual([batch[0], batch[60 - 54], batch.at(-1), batch.at(-1)]);
  });

  it("a bar that breaks low ≤ open, close ≤ high: 400 naming it, on every route and in either form", async () => {
    const broken = bars.map((b, i) => (i === 17 ? { ...b, high: b.close * 0.999 } : b));
    const message = `high ${broken[17]!.high} is below close ${bars[17]!.close}`;
    const cases: [string, unknown, string][] = [
      ["/predict", { bars: broken }, "bars[17]"],
      ["/predict", { bars: columns(broken) }, "bars[17]"],
      ["/predict/stream", { bars: broken }, "bars[17]"],
      ["/predict/batch", { samples: [rows[0], { bars: broken }] }, "samples[1].bars[17]"],
    ];
    for (const [url, body, field] of cases) {
      const res = await post(app, url, body);
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toMatchObject({ error: "validation_error", message: `${field}: ${message}`, fields: [{ field, message }] });
    }
    const short = await post(app, "/predict", { bars: bars.slice(0, 53) });
    expect(short.json().message).toBe("bars: expected 54 to 100000 bars, got 53");
    const both = await post(app, "/predict", { bars, prices: cols.close });
    expect(both.json().message).toMatch(/give exactly one of features, prices or bars/);
  });

  it("prices, or bars without the open it reads: 400 bars_required saying what each bar needs", async () => {
    for (const url of ["/predict", "/predict/stream"]) {
      const res = await post(app, url, { prices: cols.close });
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toMatchObject({
        error: "bars_required",
        message:
          "prices: bundle range-linear 1.1.0 computes its features from daily bars {open, high, low, close} (GET /models features.inputs): send bars, each open, high, low, close, instead of prices",
      });
    }
    const noOpen = await post(app, "/predict", { bars: bars.map(without) });
    expect(noOpen.json()).toMatchObject({ error: "bars_required", message: expect.stringMatching(/^bars: .*: these bars have no open$/) });
    const inBatch = await post(app, "/predict/batch", { samples: [rows[0], { bars: bars.map(without) }] });
    expect(inBatch.json()).toMatchObject({ error: "bars_required", fields: [{ field: "samples[1].bars" }] });
  });

  it("the document shows bars, not prices, with examples the server answers", async () => {
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const schemas = spec.components.schemas;
    const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
    expect(schemas.PredictRequest.oneOf).toEqual([ref("PredictFeaturesRequest"), ref("PredictBarsRequest")]);
    expect(schemas.StreamRequest.oneOf).toEqual([ref("StreamFeaturesRequest"), ref("StreamBarsRequest")]);
    expect(schemas.PredictPricesRequest).toBeUndefined();
    const [objects, asColumns] = schemas.PredictBarsRequest.properties.bars.oneOf;
    expect(objects).toMatchObject({ type: "array", minItems: 54, items: { type: "object", required: ["open", "high", "low", "close"], additionalProperties: false } });
    expect(objects.description).toMatch(/unfinished session is the caller's/);
    expect(asColumns).toMatchObject({ type: "object", required: ["open", "high", "low", "close"], properties: { close: { type: "array", minItems: 54 } } });
    expect(schemas.PredictBarsRequest.example.bars).toHaveLength(54);
    expect(schemas.StreamBarsRequest.example.bars).toHaveLength(58);
    expect(schemas.BatchRequest.example.samples[1].bars).toHaveLength(54);
    for (const [url, name] of [
      ["/predict", "PredictFeaturesRequest"],
      ["/predict", "PredictBarsRequest"],
      ["/predict/batch", "BatchRequest"],
      ["/predict/stream", "StreamFeaturesRequest"],
      ["/predict/stream", "StreamBarsRequest"],
    ]) {
      expect((await post(app, url!, schemas[name!].example)).statusCode, name).toBe(200);
    }
  });

  it("GET /models shows the inputs and the range and GARCH-X parameters", async () => {
    const features = (await app.inject({ method: "GET", url: "/models" })).json().features;
    expect(features).toMatchObject({
      inputs: ["open", "high", "low", "close"],
      min_prices: 54,
      range: { estimator: "garman_klass", log_floor: 1e-4, stale_open_rtol: 1e-9, levels: 1 },
      garchx: { kind: "gjr-x", omega: 0.01, alpha: 0.02, gamma: 0.1, beta: 0.7, delta: 0.15, kappa: 0.9, span: 5, trailing: 40, horizon: 5 },
    });
  });

  it("GET /models/golden gives a bars case as columns, which /predict answers as recorded", async () => {
    const cases = (await app.inject({ method: "GET", url: "/models/golden" })).json().cases;
    expect(cases).toEqual([{ name: "walk", bars: cols, expected: Object.fromEntries(["xgboost", "lstm", "transformer", "ensemble"].map((m) => [m, golden.at(-1)])) }]);
    const answer = (await post(app, "/predict", { bars: cases[0].bars, model_type: "ensemble" })).json();
    expect(Math.abs(answer.prediction - cases[0].expected.ensemble)).toBeLessThanOrEqual(1e-6);
  });
});

describe("the inputs are part of the published API", () => {
  it("a Parkinson bundle reads bars without opens, and ignores opens sent", async () => {
    const app = await testApp({ MODEL_DIR: linearBundle(undefined, rangeFeatures("parkinson"), "parkinson-linear"), CACHE_TTL: "0" });
    const a = await post(app, "/predict", { bars: bars.map(without) });
    const b = await post(app, "/predict", { bars });
    expect(a.statusCode).toBe(200);
    expect(b.json().prediction).toBe(a.json().prediction);
    const schemas = (await app.inject({ method: "GET", url: "/openapi.json" })).json().components.schemas;
    expect(schemas.PredictBarsRequest.properties.bars.oneOf[0].items.required).toEqual(["high", "low", "close"]);
    expect(schemas.PredictBarsRequest.example.bars[0]).not.toHaveProperty("open");
    expect((await post(app, "/predict", schemas.PredictBarsRequest.example)).statusCode).toBe(200);
    await app.close();
  });

  it("a reload to a bundle of the same shape that reads other inputs is refused until a restart", async () => {
    const dir = copyBundle(linearBundle(undefined, rangeFeatures("parkinson"), "parkinson-linear"));
    const app = await testApp({ MODEL_DIR: dir });
    replaceBundle(dir, linearBundle(undefined, rangeFeatures(), "range-linear"));
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(422);
    expect(reload.json().message).toMatch(/takes features of 10 days × 7 channels from 54 bars \(open, high, low, close\), the API this process publishes takes .* from 54 bars \(high, low, close\)/);
    await app.close();
  });
});

describe("bars sent to a bundle of closes, or of named features", () => {
  let app: FastifyInstance;
  const returnBars = randomBars(60, 3);
  beforeAll(async () => {
    app = await testApp({ MODEL_DIR: RETURN_BUNDLE, CACHE_TTL: "0" });
  });
  afterAll(() => app.close());

  it("a bundle of closes reads their closes: the answers of the same closes as prices, on every route", async () => {
    const closes = returnBars.map((b) => b.close);
    const fromPrices = await post(app, "/predict", { prices: closes });
    for (const sent of [returnBars, columns(returnBars), returnBars.map(without)]) {
      const res = await post(app, "/predict", { bars: sent });
      expect(res.json()).toMatchObject({ prediction: fromPrices.json().prediction, input: "bars" });
    }
    const streamed = lines((await post(app, "/predict/stream", { bars: returnBars })).body);
    expect(streamed).toEqual(lines((await post(app, "/predict/stream", { prices: closes })).body));
    const batch = (await post(app, "/predict/batch", { samples: [{ bars: returnBars }] })).json();
    expect(batch.predictions).toEqual([fromPrices.json().prediction]);
  });

  it("a stream of bars is charged the rows it predicts, as objects or as columns (60 bars from 42: 19)", async () => {
    const limited = await testApp({ RATE_LIMIT_MAX: "100", MAX_BATCH_SAMPLES: "100", MAX_STREAM_LENGTH: "100" });
    const remaining = async (sent: unknown) => (await post(limited, "/predict/stream", { bars: sent })).headers["x-ratelimit-remaining"];
    expect([await remaining(returnBars), await remaining(columns(returnBars))]).toEqual(["81", "62"]);
    await limited.close();
  });

  it("still refuses a bar out of order (the same request means the same thing to every bundle)", async () => {
    const res = await post(app, "/predict", { bars: returnBars.map((b, i) => (i === 3 ? { ...b, low: b.high * 1.01 } : b)) });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe("bars[3]");
  });

  it("the document says so in words, and keeps prices as the request it shows", async () => {
    const schemas = (await app.inject({ method: "GET", url: "/openapi.json" })).json().components.schemas;
    expect(schemas.PredictBarsRequest).toBeUndefined();
    expect(schemas.PredictPricesRequest.properties.prices.description).toMatch(/Bars \{open\?, high, low, close\} may be sent instead of prices/);
  });

  it("a bundle of named features: bars get 400 features_required", async () => {
    const named = await testApp({ MODEL_DIR: await namedBundle() });
    for (const [url, body] of [
      ["/predict", { bars: returnBars }],
      ["/predict/batch", { samples: [{ bars: returnBars }] }],
    ] as const) {
      const res = await post(named, url, body);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error).toBe("features_required");
    }
    await named.close();
  });
});
