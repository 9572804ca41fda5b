import type { FastifyInstance } from "fastify";
import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, json, startRedis, startServer, testApp, waitFor } from "./helpers.js";

/**
 * The prediction cache never tells one client what another asked (issue 22, item 6: "cached":
 * true, and the speed of a hit, answered the tail of a series someone else had sent). Entries
 * are the caller's own: its key or token identity, else its address.
 */

const TENANT_A = "tenant-a-key-0123456789";
const TENANT_B = "tenant-b-key-0123456789";

describe("the prediction cache is per client", () => {
  it("two tenants of one server: the second to send a series is not answered from the first's entry", async () => {
    const server = await startServer({ API_KEY: `${TENANT_A},${TENANT_B}`, MODELS: "xgboost" });
    try {
      const features = GUIDE_FEATURES.map((v) => v * 1.7);
      const ask = async (key: string) => {
        const res = await fetch(`${server.url}/predict`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": key },
          body: JSON.stringify({ features, model_type: "xgboost" }),
        });
        expect(res.status).toBe(200);
        return (await res.json()) as { prediction: number; cached: boolean };
      };
      const a = await ask(TENANT_A);
      expect(a.cached).toBe(false);
      const b = await ask(TENANT_B);
      expect(b.cached).toBe(false);
      expect(b.prediction).toBe(a.prediction);
      // Each tenant's own repeat is still a hit.
      expect((await ask(TENANT_A)).cached).toBe(true);
      expect((await ask(TENANT_B)).cached).toBe(true);
    } finally {
      server.child.kill("SIGKILL");
      await server.exit;
    }
  }, 30_000);

  it("replicas sharing Redis: an anonymous client's entry is found again by that client only", async () => {
    const redis = await startRedis();
    const [one, two] = await Promise.all([testApp({ REDIS_URL: redis.url }), testApp({ REDIS_URL: redis.url })]);
    try {
      await Promise.all([one, two].map((app) => waitFor("redis ready", () => (app.wavelet.redis?.status === "ready" ? true : undefined), 10_000)));
      const features = GUIDE_FEATURES.map((v) => v * 2.3);
      const ask = async (app: FastifyInstance, remoteAddress: string) =>
        (await app.inject({ method: "POST", url: "/predict", ...json({ features, model_type: "xgboost" }), remoteAddress })).json().cached as boolean;
      expect(await ask(one, "203.0.113.1")).toBe(false);
      await waitFor("the entry in Redis", async () => ((await one.wavelet.redis!.dbsize()) > 0 ? true : undefined), 5000);
      expect(await ask(two, "203.0.113.2")).toBe(false);
      expect(await ask(two, "203.0.113.1")).toBe(true);
    } finally {
      await Promise.all([one.close(), two.close()]);
      await redis.stop();
    }
  }, 30_000);
});
