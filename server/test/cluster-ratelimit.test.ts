import { Agent, request } from "node:http";
import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, freePort, fresh, startServer, waitFor } from "./helpers.js";

/**
 * WORKERS=2 without Redis: the workers charge one set of budgets, held by the primary, so a
 * client gets RATE_LIMIT_MAX per window from the pod, not from each worker. Each request goes
 * over a new connection, which the primary hands to the workers in turn (round-robin).
 */

// A budget of 20 rows; the largest requests must fit in it (config), so they are set low too.
const LIMITED = { RATE_LIMIT_MAX: "20", MAX_BATCH_SAMPLES: "20", MAX_STREAM_LENGTH: "20", MAX_QUEUED_ROWS: "20", CACHE_TTL: "0" };

async function cluster(env: Record<string, string>) {
  const metricsPort = await freePort();
  const server = await startServer({ WORKERS: "2", METRICS_PORT: String(metricsPort), MODELS: "xgboost", SHUTDOWN_DELAY_MS: "0", LOG_LEVEL: "info", ...env });
  // startServer waits for one worker; the primary prints the URLs once both listen.
  await waitFor("both workers", () => server.output().includes("wavelet server listening (2 workers)"), 30_000).catch((error: Error) => {
    server.child.kill("SIGKILL");
    throw error;
  });
  return { ...server, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

const count = (statuses: number[]) => statuses.reduce<Record<number, number>>((n, s) => ({ ...n, [s]: (n[s] ?? 0) + 1 }), {});

describe("rate limits with WORKERS=2 without Redis", () => {
  it("the workers share the prediction budget: 60 predictions on new connections → 20 × 200 and 40 × 429", async () => {
    const server = await cluster(LIMITED);
    try {
      const predictions: number[] = [];
      for (let i = 0; i < 60; i++) predictions.push((await fresh(`${server.url}/predict`, { body: { features: GUIDE_FEATURES.map((v) => v + i) } })).status);
      expect(count(predictions)).toEqual({ 200: 20, 429: 40 });
      expect(predictions.slice(0, 20)).toEqual(Array(20).fill(200));
      // Said once, at start: the overload limits are each worker's own.
      expect(server.output().match(/MAX_STREAMS and MAX_QUEUED_ROWS hold in each worker/g)).toHaveLength(1);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 60_000);

  it("and the admin budget: 6 reloads on new connections → 2 × 200 and 4 × 429", async () => {
    const server = await cluster({ ADMIN_RATE_LIMIT_MAX: "2" });
    try {
      const reloads: number[] = [];
      for (let i = 0; i < 6; i++) reloads.push((await fresh(`${server.url}/admin/reload`, { method: "POST", body: {} })).status);
      expect(count(reloads)).toEqual({ 200: 2, 429: 4 });
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 60_000);

  it("with REDIS_URL set and Redis down, the primary's budgets stand in for it (not each worker's)", async () => {
    const server = await cluster({ ...LIMITED, REDIS_URL: `redis://127.0.0.1:${await freePort()}/0` });
    try {
      const predictions: number[] = [];
      for (let i = 0; i < 60; i++) predictions.push((await fresh(`${server.url}/predict`, { body: { features: GUIDE_FEATURES.map((v) => v + i) } })).status);
      expect(count(predictions)).toEqual({ 200: 20, 429: 40 });
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 60_000);

  it("a primary that does not answer costs a worker's request a short wait at most: it counts locally", async () => {
    const server = await cluster(LIMITED);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const predict = () =>
      new Promise<{ status: number; ms: number }>((resolve, reject) => {
        const started = performance.now();
        const req = request(`${server.url}/predict`, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode!, ms: performance.now() - started }));
        });
        req.on("error", reject);
        req.end(JSON.stringify({ features: GUIDE_FEATURES }));
      });
    try {
      // A keep-alive connection is the worker's own: it needs the primary only to charge.
      expect((await predict()).status).toBe(200);
      server.child.kill("SIGSTOP");
      const stopped = [await predict(), await predict()];
      expect(stopped.map((r) => r.status)).toEqual([200, 200]);
      for (const r of stopped) expect(r.ms).toBeLessThan(1000);
      server.child.kill("SIGCONT");
      expect((await predict()).status).toBe(200);
      const metrics = await (await fetch(server.metricsUrl)).text();
      expect(Number(/^rate_limit_primary_fallbacks_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    } finally {
      agent.destroy();
      server.child.kill("SIGCONT");
      server.child.kill("SIGKILL");
    }
  }, 60_000);
});
