import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GUIDE_FEATURES, RETURN_BUNDLE, json, testApp } from "./helpers.js";

let app: FastifyInstance;
beforeAll(async () => {
  app = await testApp();
});
afterAll(() => app.close());

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: "POST", url, ...json(body), headers: { "content-type": "application/json", ...headers } });

describe("the guide's examples, verbatim", () => {
  it("GET /health", async () => {
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.status).toBe("ok");
    expect(body.bundle.name).toBe("spx-return-1d");
    expect(body.bundle.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(body.models).toEqual({ xgboost: "loaded", lstm: "loaded", transformer: "loaded", ensemble: "loaded" });
  });

  it("POST /predict", async () => {
    const res = await post("/predict", { features: GUIDE_FEATURES, model_type: "ensemble" });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(Number.isFinite(body.prediction)).toBe(true);
    expect(body).toMatchObject({ model_type: "ensemble", input: "features", target: { name: "log_return_1d", horizon: 1 } });
  });

  it("POST /predict/batch with confidence", async () => {
    const res = await post("/predict/batch", {
      samples: [GUIDE_FEATURES, [0.2, 0.3, -0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]],
      model_type: "ensemble",
      return_confidence: true,
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.count).toBe(2);
    expect(body.confidence.level).toBe(0.9);
    body.predictions.forEach((p: number, i: number) => {
      expect(body.confidence.lower[i]).toBeLessThan(p);
      expect(body.confidence.upper[i]).toBeGreaterThan(p);
    });
  });

  it("POST /predict/stream", async () => {
    const res = await post("/predict/stream", { features: GUIDE_FEATURES, window_size: 10, model_type: "ensemble" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("application/x-ndjson");
    const lines = res.body.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0].index).toBe(0);
    expect(lines[1]).toEqual({ done: true, count: 1 });
  });

  it("GET /metrics", async () => {
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/plain");
    expect(res.body).toContain('http_requests_total{route="/predict",method="POST",status="200"}');
    expect(res.body).toContain("process_cpu_user_seconds_total");
    const { version } = JSON.parse(readFileSync(join(RETURN_BUNDLE, "manifest.json"), "utf8"));
    expect(res.body).toMatch(new RegExp(`model_bundle_info\\{bundle="spx-return-1d",version="${version}",digest="sha256:[0-9a-f]{64}"\\} 1`));
    expect(res.body).toMatch(/^model_bundle_ready 1$/m);
    expect(res.body).toMatch(/^model_bundle_digest_mismatch 0$/m);
    // Counters of the served models exist from the start, so the alerts' ratios are 0, not absent.
    expect(res.body).toMatch(/^predictions_out_of_training_range_total\{model="lstm"\} 0$/m);
    expect(res.body).toMatch(/^input_features_out_of_range_total\{model="transformer",reason="beyond_training"\} 0$/m);
    expect(res.body).toMatch(/^prediction_cache_hits_total\{backend="memory"\} \d+$/m);
  });

  it("the documentation pages are served locally", async () => {
    for (const url of ["/docs", "/redoc", "/openapi.json", "/redoc/redoc.standalone.js", "/docs/static/swagger-ui-bundle.js"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(200);
    }
    const redoc = await app.inject({ method: "GET", url: "/redoc" });
    expect(redoc.body).not.toMatch(/https?:\/\//);
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(["/predict", "/predict/batch", "/predict/stream", "/health", "/models", "/admin/reload"]));
    expect(spec.components.schemas.PredictFeaturesRequest.properties.model_type.enum).toEqual(["xgboost", "lstm", "transformer", "ensemble"]);
  });
});

describe("inputs", () => {
  it("computes features from raw prices", async () => {
    const prices = Array.from({ length: 60 }, (_, i) => 100 * Math.exp(0.01 * Math.sin(i)));
    const res = await post("/predict", { prices, model_type: "xgboost", return_confidence: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ input: "prices", model_type: "xgboost", confidence: { level: 0.9 } });
  });

  it("defaults to the ensemble", async () => {
    expect((await post("/predict", { features: GUIDE_FEATURES })).json().model_type).toBe("ensemble");
  });

  it("answers a repeated request from the cache with the same value", async () => {
    const features = GUIDE_FEATURES.map((v) => v * 1.5);
    const first = (await post("/predict", { features, model_type: "lstm" })).json();
    const second = (await post("/predict", { features, model_type: "lstm" })).json();
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(second.prediction).toBe(first.prediction);
  });

  it("GET /models lists versions, digests and out-of-sample metrics", async () => {
    const body = (await app.inject({ method: "GET", url: "/models" })).json();
    expect(body.bundle.name).toBe("spx-return-1d");
    expect(body.features.window).toBe(10);
    expect(body.models.map((m: { name: string }) => m.name)).toEqual(["xgboost", "lstm", "transformer", "ensemble"]);
    for (const m of body.models) {
      expect(m.status).toBe("loaded");
      expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(m.metrics.rmse).toBeGreaterThan(0);
    }
    expect(body.evaluation.baselines.random_walk.rmse).toBeGreaterThan(0);
  });
});

describe("bad input gets a 4xx JSON error naming the field, never a 5xx", () => {
  const PRICES = Array.from({ length: 42 }, (_, i) => 100 + i);
  const cases: [string, string, unknown, number, string][] = [
    ["too few features", "/predict", { features: [1, 2, 3] }, 400, "features"],
    ["too many features", "/predict", { features: Array(11).fill(0.1) }, 400, "features"],
    ["a string among features", "/predict", { features: [...GUIDE_FEATURES.slice(0, 9), "1"] }, 400, "features[9]"],
    ["null among features", "/predict", { features: [null, ...GUIDE_FEATURES.slice(1)] }, 400, "features[0]"],
    ["features not an array", "/predict", { features: "0.1,0.2" }, 400, "features"],
    ["unknown model type", "/predict", { features: GUIDE_FEATURES, model_type: "prophet" }, 400, "model_type"],
    ["unknown field", "/predict", { features: GUIDE_FEATURES, extra: 1 }, 400, "extra"],
    ["both features and prices", "/predict", { features: GUIDE_FEATURES, prices: PRICES }, 400, "features"],
    ["neither features nor prices", "/predict", { model_type: "lstm" }, 400, "features"],
    ["too few prices", "/predict", { prices: [100, 101, 102] }, 400, "prices"],
    ["a negative price", "/predict", { prices: PRICES.map((p, i) => (i === 1 ? -1 : p)) }, 400, "prices[1]"],
    ["a zero price", "/predict", { prices: PRICES.map((p, i) => (i === 1 ? 0 : p)) }, 400, "prices[1]"],
    ["a feature beyond ±1e6", "/predict", { features: [1e7, ...GUIDE_FEATURES.slice(1)] }, 400, "features[0]"],
    ["a price beyond 1e15", "/predict", { prices: Array(42).fill(1e16) }, 400, "prices[0]"],
    ["confidence not boolean", "/predict", { features: GUIDE_FEATURES, return_confidence: "yes" }, 400, "return_confidence"],
    ["a short sample in a batch", "/predict/batch", { samples: [GUIDE_FEATURES, [1, 2]] }, 400, "samples[1]"],
    ["an empty batch", "/predict/batch", { samples: [] }, 400, "samples"],
    ["a batch of strings", "/predict/batch", { samples: ["a"] }, 400, "samples[0]"],
    ["a wrong window_size", "/predict/stream", { features: GUIDE_FEATURES, window_size: 5 }, 400, "window_size"],
    ["a stream shorter than the window", "/predict/stream", { features: [1, 2] }, 400, "features"],
    ["a fractional window_size", "/predict/stream", { features: GUIDE_FEATURES, window_size: 2.5 }, 400, "window_size"],
  ];
  for (const [name, url, body, status, field] of cases) {
    it(name, async () => {
      const res = await post(url, body);
      expect(res.statusCode).toBe(status);
      const error = res.json();
      expect(error.request_id).toBeTruthy();
      expect(error.fields?.map((f: { field: string }) => f.field) ?? [error.message]).toEqual(expect.arrayContaining([field]));
    });
  }

  it("NaN and Infinity are not JSON, and overflowing numbers are not finite", async () => {
    for (const payload of ['{"features":[NaN,1,2,3,4,5,6,7,8,9]}', '{"features":[Infinity,1,2,3,4,5,6,7,8,9]}']) {
      const res = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": "application/json" }, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe("invalid_json");
    }
    const res = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": "application/json" }, payload: '{"features":[1e999,1,2,3,4,5,6,7,8,9]}' });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe("features[0]");
  });

  it("malformed, empty, non-JSON and deeply nested bodies", async () => {
    const deep = `{"features":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    for (const [payload, type] of [["{", "application/json"], ["", "application/json"], ["features=1", "application/x-www-form-urlencoded"], [deep, "application/json"]]) {
      const res = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": type! }, payload: payload! });
      expect(res.statusCode, String(payload).slice(0, 20)).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
      expect(res.json().error).toBeTruthy();
    }
  });

  it("an oversized body is refused with 413", async () => {
    const res = await post("/predict/batch", { samples: Array(30_000).fill(GUIDE_FEATURES) });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toBe("payload_too_large");
  });

  it("a huge array under the body limit is refused by length, not crashed on", async () => {
    const res = await post("/predict", { features: Array(100_001).fill(0) });
    expect(res.statusCode === 400 || res.statusCode === 413).toBe(true);
  });

  it("unknown routes answer JSON 404", async () => {
    const res = await app.inject({ method: "GET", url: "/nope" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe("not_found");
  });

  it("security headers are set", async () => {
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(res.headers["x-request-id"]).toBeTruthy();
  });

  it("a caller's X-Request-Id is echoed when safe to log, replaced when not", async () => {
    const idOf = async (id: string) => (await app.inject({ method: "GET", url: "/health", headers: { "x-request-id": id } })).headers["x-request-id"];
    expect(await idOf("req-42.a:b_C")).toBe("req-42.a:b_C");
    expect(await idOf("x".repeat(128))).toBe("x".repeat(128));
    for (const unsafe of ["x".repeat(129), "x".repeat(300), "two words", 'a"quote', "a\tb", "line\\nfeed", "ünïcode"]) {
      expect(await idOf(unsafe), unsafe).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
  });
});

describe("input drift", () => {
  const drift = async (model: string, reason: string) =>
    (await app.wavelet.metrics.inputsOutOfRange.get()).values.find((v) => v.labels.model === model && v.labels.reason === reason)?.value ?? 0;

  it("counts feature rows beyond what training could produce (still answered) and numbers refused at validation", async () => {
    // spx-return-1d's training returns lie within about ±11 %: 50 is beyond, 0.5 is not.
    const inside = GUIDE_FEATURES;
    const beyond = [...GUIDE_FEATURES.slice(0, 9), 50];
    const before = await drift("lstm", "beyond_training");
    expect((await post("/predict/batch", { samples: [inside, beyond, beyond], model_type: "lstm" })).statusCode).toBe(200);
    expect((await post("/predict", { features: inside, model_type: "lstm" })).statusCode).toBe(200);
    expect((await drift("lstm", "beyond_training")) - before).toBe(2);

    const refusedBefore = await drift("xgboost", "refused");
    const res = await app.inject({
      method: "POST",
      url: "/predict",
      headers: { "content-type": "application/json" },
      payload: '{"features":[1e999,1,2,3,4,5,6,7,8,9],"model_type":"xgboost"}',
    });
    expect(res.statusCode).toBe(400);
    expect((await post("/predict", { features: [1e7, ...GUIDE_FEATURES.slice(1)], model_type: "xgboost" })).statusCode).toBe(400);
    // A wrong type is a client bug, not drift.
    expect((await post("/predict", { features: ["1", ...GUIDE_FEATURES.slice(1)], model_type: "xgboost" })).statusCode).toBe(400);
    expect((await drift("xgboost", "refused")) - refusedBefore).toBe(2);
    expect((await app.inject({ method: "GET", url: "/metrics" })).body).toContain('input_features_out_of_range_total{model="xgboost",reason="refused"}');
  });
});
