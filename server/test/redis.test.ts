import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GUIDE_FEATURES, type RedisProcess, json, startRedis, testApp, waitFor } from "./helpers.js";

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis.stop());

const predict = (app: FastifyInstance, features: number[], headers: Record<string, string> = {}) =>
  app.inject({ method: "POST", url: "/predict", ...json({ features, model_type: "xgboost" }), headers: { "content-type": "application/json", ...headers } });

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

  it("the rate limit holds across replicas and answers 429 with Retry-After", async () => {
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MAX: "10", RATE_LIMIT_WINDOW_MS: "60000" };
    const [a, b] = await Promise.all([testApp(env), testApp(env)]);
    await Promise.all([redisReady(a), redisReady(b)]);
    const key = { "x-api-key": `client-${Date.now()}` };
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await predict(a, GUIDE_FEATURES, key)).statusCode);
      statuses.push((await predict(b, GUIDE_FEATURES, key)).statusCode);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    const refused = await predict(a, GUIDE_FEATURES, key);
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(refused.json().error).toBe("rate_limited");
    expect(await metric(a, /^rate_limited_requests_total (\d+)$/m)).toBeGreaterThan(0);
    // Another client is not affected.
    expect((await predict(a, GUIDE_FEATURES, { "x-api-key": `other-${Date.now()}` })).statusCode).toBe(200);
    await Promise.all([a.close(), b.close()]);
  });

  it("keeps answering when Redis goes away (cache bypassed, limit local) and recovers when it returns", async () => {
    const app = await testApp({ REDIS_URL: redis.url, RATE_LIMIT_MAX: "1000" });
    await redisReady(app);
    await redis.stop();
    await waitFor("redis down", () => (app.wavelet.redis!.status !== "ready" ? true : undefined), 10_000);
    const during = await Promise.all(Array.from({ length: 20 }, (_, i) => predict(app, GUIDE_FEATURES.map((v) => v + i / 100))));
    expect(during.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
    expect(await metric(app, /^redis_up (\d+)$/m)).toBe(0);
    expect(await metric(app, /^redis_fallbacks_total\{operation="cache"\} (\d+)$/m)).toBe(20);
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
    const app = await testApp({ REDIS_URL: redis.url, RATE_LIMIT_MAX: "3" });
    await redisReady(app);
    await redis.stop();
    await waitFor("redis down", () => (app.wavelet.redis!.status !== "ready" ? true : undefined), 10_000);
    const key = { "x-api-key": `local-${Date.now()}` };
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await predict(app, GUIDE_FEATURES, key)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    await redis.start();
    await app.close();
  }, 40_000);
});
