import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { freePort, startRedis, startServer, testApp, waitFor } from "./helpers.js";

const value = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
const BUNDLE_INFO = /^model_bundle_info\{bundle="spx-return-1d",version="[^"]+",digest="sha256:[0-9a-f]{64}"\} (\S+)$/m;
const REDIS_UP = /^redis_up (\S+)$/m;

describe("metrics", () => {
  it("redis_up is exported only when REDIS_URL is set", async () => {
    const app = await testApp();
    const body = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).toContain("model_bundle_info");
    expect(body).not.toContain("redis_up");
    expect(body).not.toContain("redis_breaker_open");
    await app.close();
  });

  it("WORKERS=2: the primary combines gauges as gauges (one bundle reads 1, Redis up reads 1), not as sums", async () => {
    const redis = await startRedis();
    const metricsPort = await freePort();
    const server = await startServer({ WORKERS: "2", METRICS_PORT: String(metricsPort), REDIS_URL: redis.url, SHUTDOWN_DELAY_MS: "0" });
    try {
      const scrape = async () => {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        return res.status === 200 ? res.text() : undefined; // 200: every worker answered
      };
      await waitFor("both workers connected to Redis", async () => value((await scrape()) ?? "", REDIS_UP) >= 1, 20_000);
      await sleep(500); // a sum would go on to count the second worker's connection
      const text = (await scrape())!;
      expect(value(text, BUNDLE_INFO)).toBe(1);
      expect(value(text, REDIS_UP)).toBe(1);
      expect(value(text, /^redis_breaker_open (\S+)$/m)).toBe(0);
      expect(text).toMatch(/^model_load_seconds\{model="xgboost"\} \S+$/m);
    } finally {
      server.child.kill("SIGTERM");
      await server.exit;
      await redis.stop();
    }
  }, 60_000);
});
