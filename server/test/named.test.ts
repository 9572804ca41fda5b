import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GUIDE_FEATURES, RETURN_BUNDLE, copyBundle, freePort, json, replaceBundle, startServer, testApp } from "./helpers.js";
import { FEATURE_NAMES, PARITY_ROWS, namedBundle } from "./named-bundle.js";

/**
 * Serving an imported bundle, whose features the caller sends as the vector or keyed by name
 * (issue 23; /work/contract23.md). The bundle is test/named-bundle.ts's: real graphs, ten
 * made-up feature names, parity answers from onnxruntime-node.
 */

const MODELS = ["xgboost", "lstm", "transformer", "ensemble"] as const;
const NO_INTERVALS =
  "bundle guide-import 1.0.0 was imported without calibration data: no conformal intervals (import it with --calibration FILE.csv)";

/** The features of `row` keyed by name, the keys in the given order. */
const keyed = (row: readonly number[], order: readonly string[] = FEATURE_NAMES) =>
  Object.fromEntries(order.map((name) => [name, row[FEATURE_NAMES.indexOf(name)]!]));
const lines = (body: string) => body.trim().split("\n").map((l) => JSON.parse(l) as { prediction?: number; index?: number; done?: boolean; count?: number });

describe("a bundle of named features", () => {
  let dir: string;
  let app: FastifyInstance;
  const post = (url: string, body: unknown) => app.inject({ method: "POST", url, ...json(body) });
  beforeAll(async () => {
    dir = await namedBundle();
    app = await testApp({ MODEL_DIR: dir }); // the cache on, as it is by default
  });
  afterAll(() => app.close());

  it("serves every model: a vector and the same features keyed by name (in any key order) give one answer; a permuted vector another", async () => {
    const row = PARITY_ROWS[1]!;
    for (const model of MODELS) {
      const vector = (await post("/predict", { features: row, model_type: model })).json();
      expect(vector).toMatchObject({ model_type: model, input: "features", bundle: { name: "guide-import", version: "1.0.0" }, target: { name: "target", units: "as trained", horizon: 1 } });
      const byName = (await post("/predict", { features: keyed(row), model_type: model })).json();
      const reversed = (await post("/predict", { features: keyed(row, [...FEATURE_NAMES].reverse()), model_type: model })).json();
      expect([byName.prediction, reversed.prediction], model).toEqual([vector.prediction, vector.prediction]);
      const permuted = (await post("/predict", { features: [...row].reverse(), model_type: model })).json();
      expect(permuted.prediction, model).not.toBe(vector.prediction);
    }
  });

  it("named features hit the cache entry of the same vector, and other values never do", async () => {
    const row = PARITY_ROWS[2]!;
    const first = (await post("/predict", { features: row, model_type: "lstm" })).json();
    expect(first.cached).toBe(false);
    const again = (await post("/predict", { features: keyed(row, [...FEATURE_NAMES].reverse()), model_type: "lstm" })).json();
    expect(again).toMatchObject({ cached: true, prediction: first.prediction });
    // Two values swapped under their names: another vector, another answer.
    const swapped = { ...keyed(row), rsi_14: row[1], macd: row[0] };
    const other = (await post("/predict", { features: swapped, model_type: "lstm" })).json();
    expect(other.cached).toBe(false);
    expect(other.prediction).not.toBe(first.prediction);
    expect(other.prediction).toBe((await post("/predict", { features: [row[1], row[0], ...row.slice(2)], model_type: "lstm" })).json().prediction);
  });

  it("/predict/batch takes vectors and named features, mixed, and answers each in order", async () => {
    const vectors = (await post("/predict/batch", { samples: PARITY_ROWS, model_type: "transformer" })).json();
    const mixed = await post("/predict/batch", { samples: PARITY_ROWS.map((row, i) => (i % 2 ? keyed(row, [...FEATURE_NAMES].reverse()) : row)), model_type: "transformer" });
    expect(mixed.statusCode).toBe(200);
    expect(mixed.json()).toMatchObject({ count: PARITY_ROWS.length, predictions: vectors.predictions });
  });

  it("/predict/stream: one object of named features per time step, window_size starting the predictions later; a flat series as for any 1-channel bundle", async () => {
    const batch = (await post("/predict/batch", { samples: PARITY_ROWS, model_type: "xgboost" })).json().predictions as number[];
    const steps = lines((await post("/predict/stream", { features: PARITY_ROWS.map((r) => keyed(r)), model_type: "xgboost" })).body);
    expect(steps.at(-1)).toEqual({ done: true, count: PARITY_ROWS.length });
    expect(steps.slice(0, -1).map((l) => l.prediction)).toEqual(batch);
    const later = lines((await post("/predict/stream", { features: PARITY_ROWS.map((r) => keyed(r)), window_size: 3, model_type: "xgboost" })).body);
    expect(later.slice(0, -1)).toEqual(batch.slice(2).map((prediction, index) => ({ index, prediction })));

    // A flat series slides a window of the ten values along it, as a 1-channel bundle's always did.
    const series = [...PARITY_ROWS[0]!, ...PARITY_ROWS[1]!.slice(0, 2)];
    const windows = [0, 1, 2].map((i) => series.slice(i, i + 10));
    const flat = lines((await post("/predict/stream", { features: series, model_type: "xgboost" })).body);
    expect(flat.slice(0, -1).map((l) => l.prediction)).toEqual((await post("/predict/batch", { samples: windows, model_type: "xgboost" })).json().predictions);
  });

  it("named features with names missing or unknown: 400 naming at most five of each", async () => {
    const row = PARITY_ROWS[0]!;
    const { rsi_14: _rsi, atr_14: _atr, ...short } = keyed(row);
    let res = await post("/predict", { features: { ...short, rsi14: 1 } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: "validation_error",
      fields: [
        { field: "features.rsi_14", message: "missing" },
        { field: "features.atr_14", message: "missing" },
        { field: "features.rsi14", message: "not a feature of this bundle" },
      ],
    });
    expect(res.json().message).toMatch(/^features: missing rsi_14, atr_14; unknown rsi14 \(every one of the 10 features of GET \/models features.names, exactly once\)$/);

    res = await post("/predict", { features: Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`x${i}`, i])) });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields).toHaveLength(10);
    expect(res.json().message).toMatch(/missing rsi_14, macd, macd_signal, bb_width, atr_14 and 5 more; unknown x0, x1, x2, x3, x4 and 2 more/);

    res = await post("/predict/batch", { samples: [row, { ...short, atr_14: 1 }] });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields).toEqual([{ field: "samples[1].rsi_14", message: "missing" }]);

    // Every time step is checked before the stream starts: a 400, not an error line.
    res = await post("/predict/stream", { features: [keyed(row), keyed(row), { ...keyed(row), extra: 0 }] });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields).toEqual([{ field: "features[2].extra", message: "not a feature of this bundle" }]);

    // Values are held to the bounds of a vector's, and named by their feature.
    res = await post("/predict", { features: { ...keyed(row), macd: "1" } });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe("features.macd");
    res = await post("/predict/stream", { features: [keyed(row), row] });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe("features[1]");
  });

  it("prices: 400 features_required, saying the bundle takes its named features and where to see them", async () => {
    const prices = Array.from({ length: 60 }, (_, i) => 100 + i);
    for (const url of ["/predict", "/predict/stream"]) {
      const res = await post(url, { prices });
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toMatchObject({
        error: "features_required",
        message:
          "bundle guide-import 1.0.0 takes its 10 named features, not prices or bars: send features as a vector of 10 numbers or an object keyed by feature name (GET /models lists them, in vector order)",
      });
    }
  });

  it("return_confidence on a model imported without calibration data: 422 no_intervals, on every route", async () => {
    for (const [url, body] of [
      ["/predict", { features: PARITY_ROWS[0] }],
      ["/predict/batch", { samples: PARITY_ROWS }],
      ["/predict/stream", { features: PARITY_ROWS.map((r) => keyed(r)) }],
    ] as const) {
      const res = await post(url, { ...body, return_confidence: true });
      expect(res.statusCode, url).toBe(422);
      expect(res.json(), url).toMatchObject({ error: "no_intervals", message: NO_INTERVALS });
    }
  });

  it("GET /models lists the feature names, in vector order, and the models without intervals", async () => {
    const models = (await app.inject({ method: "GET", url: "/models" })).json();
    expect(models.features).toEqual({ kind: "named", names: FEATURE_NAMES, sequence_length: 1 });
    expect(models.default_model).toBe("ensemble");
    expect(models.models.map((m: { name: string }) => m.name)).toEqual([...MODELS]);
    for (const m of models.models) expect(m.confidence_level).toBeUndefined();
  });

  it("GET /models/golden: {name, features, expected} per parity row", async () => {
    const golden = (await app.inject({ method: "GET", url: "/models/golden" })).json();
    expect(golden.cases).toHaveLength(PARITY_ROWS.length);
    golden.cases.forEach((c: Record<string, unknown>, i: number) => {
      expect(Object.keys(c)).toEqual(["name", "features", "expected"]);
      expect(c.name).toBe(`fixture-rows[${i}]`);
      expect(c.features).toEqual(PARITY_ROWS[i]);
      expect(Object.keys(c.expected as object)).toEqual([...MODELS]);
    });
  });

  it("the OpenAPI document shows the named form with the bundle's names, and no prices; every documented example is answered", async () => {
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const schemas = spec.components.schemas;
    const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
    expect(schemas.PredictRequest.oneOf).toEqual([ref("PredictFeaturesRequest"), ref("PredictNamedFeaturesRequest")]);
    expect(schemas.StreamRequest.oneOf).toEqual([ref("StreamFeaturesRequest"), ref("StreamNamedFeaturesRequest")]);
    expect(Object.keys(schemas).filter((name) => name.includes("Prices"))).toEqual([]);
    const named = schemas.PredictNamedFeaturesRequest.properties.features;
    expect(named).toMatchObject({ type: "object", required: FEATURE_NAMES, additionalProperties: false });
    expect(Object.keys(named.properties)).toEqual(FEATURE_NAMES);
    expect(named.description).toContain(FEATURE_NAMES.join(", "));
    expect(Object.keys(schemas.PredictNamedFeaturesRequest.example.features)).toEqual(FEATURE_NAMES);
    expect(schemas.BatchRequest.properties.samples.items.oneOf.map((s: { type: string }) => s.type)).toEqual(["array", "object"]);
    expect(schemas.StreamNamedFeaturesRequest.properties.window_size.minimum).toBe(1);
    // Imported without calibration data: confidence is documented as unavailable (true gets the 422).
    expect(schemas.PredictNamedFeaturesRequest.properties.return_confidence.enum).toEqual([false]);
    expect(schemas.StreamFeaturesRequest.properties.window_size.minimum).toBe(10);
    for (const [url, name] of [
      ["/predict", "PredictFeaturesRequest"],
      ["/predict", "PredictNamedFeaturesRequest"],
      ["/predict/batch", "BatchRequest"],
      ["/predict/stream", "StreamFeaturesRequest"],
      ["/predict/stream", "StreamNamedFeaturesRequest"],
    ] as const) {
      expect((await post(url, schemas[name].example)).statusCode, name).toBe(200);
    }
  });
});

describe("a bundle of named features imported with calibration data", () => {
  it("gives intervals, and counts inputs beyond the training range (feature_range) as drift", async () => {
    const app = await testApp({ MODEL_DIR: await namedBundle({ calibrated: true }), CACHE_TTL: "0" });
    const res = await app.inject({ method: "POST", url: "/predict", ...json({ features: keyed(PARITY_ROWS[0]!), return_confidence: true }) });
    expect(res.statusCode).toBe(200);
    const { prediction, confidence } = res.json();
    expect(confidence.level).toBe(0.9);
    expect(confidence.upper - prediction).toBeCloseTo(1.5 * Math.max(Math.abs(prediction), 0.05), 12);
    await app.inject({ method: "POST", url: "/predict", ...json({ features: { ...keyed(PARITY_ROWS[0]!), vol_20: 5 } }) });
    const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/input_features_out_of_range_total\{model="ensemble",reason="beyond_training"\} 1\n/);
    await app.close();
  });

  it("without a feature_range, no input counts as drift", async () => {
    const app = await testApp({ MODEL_DIR: await namedBundle(), CACHE_TTL: "0" });
    const res = await app.inject({ method: "POST", url: "/predict", ...json({ features: Array(10).fill(1e5) }) });
    expect(res.statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/metrics" })).body).toMatch(/input_features_out_of_range_total\{model="ensemble",reason="beyond_training"\} 0\n/);
    await app.close();
  });
});

describe("an imported bundle of one model", () => {
  it("is served when MODELS names it; MODELS naming another leaves the server unready, saying what the bundle holds", async () => {
    const dir = await namedBundle({ models: ["xgboost"] });
    const unready = await testApp({ MODEL_DIR: dir, MODELS: "xgboost,lstm" });
    expect((await unready.inject({ method: "GET", url: "/health" })).json().reasons).toEqual([
      "bundle guide-import has no model lstm (it holds xgboost): set MODELS to the models to serve",
    ]);
    await unready.close();
    const app = await testApp({ MODEL_DIR: dir, MODELS: "xgboost" });
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: keyed(PARITY_ROWS[0]!) }) })).json()).toMatchObject({ model_type: "xgboost" });
    expect((await app.inject({ method: "GET", url: "/models" })).json().models.map((m: { name: string }) => m.name)).toEqual(["xgboost"]);
    await app.close();
  });
});

describe("a bundle that computes its features, given named features", () => {
  it("400 named_features_unsupported on every route, saying it computes them from prices", async () => {
    const app = await testApp({ CACHE_TTL: "0" });
    const named = Object.fromEntries(GUIDE_FEATURES.map((v, i) => [`dn_ret_lag${9 - i}`, v]));
    for (const [url, body] of [
      ["/predict", { features: named }],
      ["/predict/batch", { samples: [GUIDE_FEATURES, named] }],
      ["/predict/stream", { features: [named] }],
    ] as const) {
      const res = await app.inject({ method: "POST", url, ...json(body) });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error, url).toBe("named_features_unsupported");
      expect(res.json().message, url).toMatch(/^bundle spx-return-1d \S+ computes its features from prices: send prices, or the feature vector of 10 numbers/);
    }
    await app.close();
  });
});

describe("hot reload between the kinds of bundle", () => {
  it("a computed bundle to a named one of the same width and back: each answers its own kind of request", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const app = await testApp({ MODEL_DIR: dir, CACHE_TTL: "0" });
    const prices = { prices: Array.from({ length: 50 }, (_, i) => 4000 * Math.exp(0.01 * Math.sin(i))) };
    const named = { features: keyed(PARITY_ROWS[0]!) };
    const reload = () => app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    const predict = (body: unknown) => app.inject({ method: "POST", url: "/predict", ...json(body) });
    expect((await predict(prices)).statusCode).toBe(200);

    replaceBundle(dir, await namedBundle());
    expect((await reload()).json()).toMatchObject({ reloaded: true, bundle: { name: "guide-import" } });
    expect((await predict(named)).json()).toMatchObject({ bundle: { name: "guide-import" } });
    expect((await predict(prices)).json().error).toBe("features_required");
    expect((await app.inject({ method: "GET", url: "/models" })).json().features.kind).toBe("named");

    replaceBundle(dir, RETURN_BUNDLE);
    expect((await reload()).json()).toMatchObject({ reloaded: true, bundle: { name: "spx-return-1d" } });
    expect((await predict(prices)).json()).toMatchObject({ bundle: { name: "spx-return-1d" }, input: "prices" });
    expect((await predict(named)).json().error).toBe("named_features_unsupported");
    await app.close();
  });

  it("a process that started on named features documents no prices: a computed bundle is refused until a restart", async () => {
    const dir = await namedBundle();
    const app = await testApp({ MODEL_DIR: dir });
    replaceBundle(dir, RETURN_BUNDLE);
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(422);
    expect(reload.json().message).toContain(
      "bundle spx-return-1d takes features of 10 days × 1 channel from 42 prices, the API this process publishes takes 10 named features; restart the server to serve it",
    );
    expect((await app.inject({ method: "GET", url: "/health" })).json().bundle.name).toBe("guide-import");
    await app.close();
  });
});

/** A directory in the deployment guide's layout: the user's raw model files, no bundle. */
function guideLayout(): string {
  const dir = mkdtempSync(join(tmpdir(), "guide-"));
  for (const file of ["feature_names.json", "xgboost_optimized.pkl", "lstm_optimized.pth", "lstm_optimized_config.json", "ensemble_optimized.pkl"]) {
    writeFileSync(join(dir, file), file.endsWith(".json") ? "{}" : "raw");
  }
  return dir;
}

describe("a MODEL_DIR in the deployment guide's layout", () => {
  const found = "(ensemble_optimized.pkl, feature_names.json, lstm_optimized.pth, xgboost_optimized.pkl)";

  it("the server does not start: one line says what it found and the import command (exit 2), one process or several", async () => {
    const dir = guideLayout();
    for (const env of [{}, { WORKERS: "2", METRICS_PORT: String(await freePort()) }] as Record<string, string>[]) {
      const server = await startServer({ MODEL_DIR: dir, LOG_LEVEL: "info", ...env }, false);
      // A server that started instead is stopped when the test gives up on it.
      const exit = await Promise.race([server.exit, sleep(20_000)]).finally(() => server.child.kill("SIGKILL"));
      expect(exit?.code).toBe(2);
      expect(server.output().trimEnd().split("\n")).toEqual([
        `MODEL_DIR holds model files in the deployment guide's layout ${found} and no bundle (manifest.json): ` +
          `the server serves verified bundles; import the files into one first: wavelet-pipeline import ${dir} --name NAME --version 1.0.0 --out ${dir}-bundle`,
      ]);
    }
  }, 60_000);

  it("a reload refuses it, the bundle being served still served", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const app = await testApp({ MODEL_DIR: dir });
    replaceBundle(dir, guideLayout());
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(422);
    expect(reload.json().message).toContain(`deployment guide's layout ${found}`);
    expect(reload.json().message).toContain("wavelet-pipeline import MODEL_DIR --name NAME --version 1.0.0 --out MODEL_DIR-bundle");
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) })).statusCode).toBe(200);
    await app.close();
  });

  it("beside a bundle (say the imported one), the bundle is served", async () => {
    const dir = guideLayout();
    cpSync(await namedBundle(), join(dir, "imported"), { recursive: true });
    const app = await testApp({ MODEL_DIR: dir });
    expect((await app.inject({ method: "GET", url: "/health" })).json()).toMatchObject({ status: "ok", bundle: { name: "guide-import" } });
    await app.close();
  });
});
