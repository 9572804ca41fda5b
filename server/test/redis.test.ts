import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GUIDE_FEATURES, type RedisProcess, json, startRedis, statuses, testApp, waitFor } from "./helpers.js";

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

/** Each test's clients have their own addresses: the counters in the shared Redis outlive an app. */
const predict = (app: FastifyInstance, features: number[], remoteAddress = "127.0.0.1", model_type = "xgboost") =>
  app.inject({ method: "POST", url: "/predict", ...json({ features, model_type }), remoteAddress });
// Row budgets must admit the largest request.
const limit = (max: number) => ({ RATE_LIMIT_MAX: String(max), MAX_BATCH_SAMPLES: String(max), MAX_STREAM_LENGTH: String(max) });

const metric = async (app: FastifyInstance, pattern: RegExp) => Number(pattern.exec((await app.inject({ method: "GET", url: "/metrics" })).body)?.[1] ?? 0);
const redisReady = (app: FastifyInstance) => waitFor("redis ready", () => (app.wavelet.redis?.status === "ready" ? true : undefined), 10_000);

describe("with a real Redis", () => {
  it("two replicas share the prediction cache", async () => {
    const [a, b] = await Promise.all([testApp({ REDIS_URL: redis.url }), testApp({ REDIS_URL: redis.url })]);
    await Promise.all([redisReady(a), redisReady(b)]);
    const features = GUIDE_FEATURES.map((v) => v * 3.1);
    const first = (await predict(a, features)).json();
    expect(first.cached).toBe(false);
    await waitFor("entry in redis", async () => ((await a.wavelet.redis!.dbsize()) > 0 ? true : undefined), 5000);
    const second = (await predict(b, features)).json();
    expect(second.cached).toBe(true);
    expect(second.prediction).toBe(first.prediction);
    expect(await metric(b, /prediction_cache_hits_total\{backend="redis"\} (\d+)/)).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });

  it("a replica that has not loaded a model yet answers a shared cache hit with its interval", async () => {
    const [eager, lazy] = await Promise.all([testApp({ REDIS_URL: redis.url }), testApp({ REDIS_URL: redis.url, MODEL_LOADING: "lazy" })]);
    await Promise.all([redisReady(eager), redisReady(lazy)]);
    const features = GUIDE_FEATURES.map((v) => v * 4.3);
    const first = (await predict(eager, features)).json();
    await waitFor("entry in redis", async () => ((await eager.wavelet.redis!.dbsize()) > 0 ? true : undefined), 5000);
    const res = await lazy.inject({ method: "POST", url: "/predict", ...json({ features, model_type: "xgboost", return_confidence: true }) });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ cached: true, prediction: first.prediction, confidence: { level: 0.9 } });
    expect(lazy.wavelet.registry.serving!.bundle.status("xgboost")).toBe("not_loaded");
    await Promise.all([eager.close(), lazy.close()]);
  });

  it("a float32 and an int8 replica sharing Redis each answer with their own model's values", async () => {
    const [float, int8] = await Promise.all([testApp({ REDIS_URL: redis.url }), testApp({ REDIS_URL: redis.url, QUANTIZED: "true" })]);
    await Promise.all([redisReady(float), redisReady(int8)]);
    const features = GUIDE_FEATURES.map((v) => v * 2.9);
    const first = (await predict(float, features, undefined, "lstm")).json();
    await waitFor("entry in redis", async () => ((await float.wavelet.redis!.dbsize()) > 0 ? true : undefined), 5000);
    const quantized = (await predict(int8, features, undefined, "lstm")).json();
    expect(quantized.cached).toBe(false);
    expect(quantized.prediction).not.toBe(first.prediction);
    // What the int8 replica cached is its own answer, and the float32 one keeps its own.
    const again = await Promise.all([predict(float, features, undefined, "lstm"), predict(int8, features, undefined, "lstm")]);
    expect(again.map((r) => r.json().prediction)).toEqual([first.prediction, quantized.prediction]);
    await Promise.all([float.close(), int8.close()]);
  });

  it("the rate limit holds across replicas, counting rows, and answers 429 with Retry-After", async () => {
    const env = { REDIS_URL: redis.url, ...limit(10), RATE_LIMIT_WINDOW_MS: "60000" };
    const [a, b] = await Promise.all([testApp(env), testApp(env)]);
    await Promise.all([redisReady(a), redisReady(b)]);
    const client = "198.51.100.10";
    const batch = await a.inject({ method: "POST", url: "/predict/batch", ...json({ samples: Array(6).fill(GUIDE_FEATURES) }), remoteAddress: client });
    expect(batch.statusCode).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await predict(b, GUIDE_FEATURES, client)).statusCode);
      statuses.push((await predict(a, GUIDE_FEATURES, client)).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    const refused = await predict(b, GUIDE_FEATURES, client);
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(refused.json().error).toBe("rate_limited");
    expect(await metric(a, /^rate_limited_requests_total (\d+)$/m)).toBeGreaterThan(0);
    expect(await metric(a, /^redis_fallbacks_total\{operation="rate_limit"\} (\d+)$/m)).toBe(0);
    // Another client is not affected.
    expect((await predict(a, GUIDE_FEATURES, "198.51.100.11")).statusCode).toBe(200);
    await Promise.all([a.close(), b.close()]);
  });

  it("a hung Redis costs each request milliseconds, is skipped after consecutive timeouts, and is used again when it answers", async () => {
    const app = await testApp({ REDIS_URL: redis.url, ...limit(1000), REDIS_BREAKER_COOLDOWN_MS: "500" });
    await redisReady(app);
    redis.pause();
    try {
      // Before the fix each request waited out two 250 ms command timeouts (cache, limit): 5 s.
      const started = performance.now();
      const during = await statuses(10, (i) => predict(app, GUIDE_FEATURES.map((v) => v - i / 7), "198.51.100.20"));
      expect(performance.now() - started).toBeLessThan(2000);
      expect(during).toEqual(Array(10).fill(200));
      expect(await metric(app, /^redis_breaker_open (\d+)$/m)).toBe(1);
      // The default threshold: five timeouts open the breaker; the rest skip Redis without waiting.
      const timeouts = await metric(app, /^redis_timeouts_total\{operation="cache_get"\} (\d+)$/m) + await metric(app, /^redis_timeouts_total\{operation="rate_limit"\} (\d+)$/m);
      expect(timeouts).toBeLessThanOrEqual(6);
      expect(await metric(app, /^redis_fallbacks_total\{operation="rate_limit"\} (\d+)$/m)).toBe(10);
    } finally {
      redis.resume();
    }
    // After the cool-down a request probes Redis, which answers: the breaker closes.
    await waitFor("breaker closed", async () => {
      await predict(app, GUIDE_FEATURES, "198.51.100.20");
      return (await metric(app, /^redis_breaker_open (\d+)$/m)) === 0 ? true : undefined;
    }, 10_000);
    const before = await app.wavelet.redis!.dbsize();
    await predict(app, GUIDE_FEATURES.map((v) => v * 9.1), "198.51.100.20");
    await waitFor("cache writes resumed", async () => ((await app.wavelet.redis!.dbsize()) > before ? true : undefined), 5000);
    await app.close();
  }, 40_000);

  it("a model run that blocks the event loop past REDIS_TIMEOUT_MS does not count as Redis being slow", async () => {
    const app = await testApp({ REDIS_URL: redis.url, ...limit(1000), REDIS_TIMEOUT_MS: "100" });
    await redisReady(app);
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(predict(app, GUIDE_FEATURES.map((v) => v + i / 11), "198.51.100.50"));
      const until = performance.now() + 250; // the event loop is busy while the reply arrives
      while (performance.now() < until);
      await new Promise((r) => setImmediate(r));
    }
    expect((await Promise.all(answers)).map((r) => r.statusCode)).toEqual(Array(5).fill(200));
    expect(await metric(app, /^redis_fallbacks_total\{operation="rate_limit"\} (\d+)$/m)).toBe(0);
    expect(await metric(app, /^redis_fallbacks_total\{operation="cache_get"\} (\d+)$/m)).toBe(0);
    await app.close();
  });

  it("keeps answering when Redis goes away (cache bypassed, limit local) and recovers when it returns", async () => {
    const app = await testApp({ REDIS_URL: redis.url, ...limit(1000) });
    await redisReady(app);
    await redis.stop();
    await waitFor("redis down", () => (app.wavelet.redis!.status !== "ready" ? true : undefined), 10_000);
    const during = await Promise.all(Array.from({ length: 20 }, (_, i) => predict(app, GUIDE_FEATURES.map((v) => v + i / 100), "198.51.100.30")));
    expect(during.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
    expect(await metric(app, /^redis_up (\d+)$/m)).toBe(0);
    expect(await metric(app, /^redis_fallbacks_total\{operation="cache_get"\} (\d+)$/m)).toBe(20);
    expect(await metric(app, /^redis_fallbacks_total\{operation="rate_limit"\} (\d+)$/m)).toBe(20);

    await redis.start();
    await redisReady(app);
    expect(await metric(app, /^redis_up (\d+)$/m)).toBe(1);
    const features = GUIDE_FEATURES.map((v) => v * 7.7);
    await predict(app, features);
    await waitFor("cache writes resumed", async () => ((await app.wavelet.redis!.dbsize()) > 0 ? true : undefined), 5000);
    await app.close();
  }, 40_000);

  it("a Redis failure on the rate-limit path falls back to the local count", async () => {
    const app = await testApp({ REDIS_URL: redis.url, ...limit(3) });
    await redisReady(app);
    await redis.stop();
    await waitFor("redis down", () => (app.wavelet.redis!.status !== "ready" ? true : undefined), 10_000);
    expect(await statuses(5, () => predict(app, GUIDE_FEATURES, "198.51.100.40"))).toEqual([200, 200, 200, 429, 429]);
    await redis.start();
    await app.close();
  }, 40_000);
});
