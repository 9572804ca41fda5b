import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, type ServerProcess, freePort, startServer, waitFor } from "./helpers.js";

/**
 * Who may read /metrics (issue 22, item 1). Its histograms carry every tenant's predictions
 * (prediction_value_sum rises by each answer, its buckets give the sign), so once the API
 * needs credentials, /metrics does too: METRICS_API_KEY (or a token with the metrics scope),
 * or METRICS_PORT, a listener of its own that the network guards. Real processes over HTTP,
 * the review's request sequence.
 */

const KEY = "predict-key-0123456789";
const METRICS_KEYS = ["metrics-key-0123456789", "metrics-key-rotated-0001"];
const XGBOOST = { features: GUIDE_FEATURES, model_type: "xgboost" };
const SUM = /^prediction_value_sum\{model="xgboost"\} (\S+)$/m;

const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers });
const predict = (server: ServerProcess, headers: Record<string, string>) =>
  fetch(`${server.url}/predict`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(XGBOOST) });

async function withServer(env: Record<string, string>, test: (server: ServerProcess) => Promise<void>) {
  const server = await startServer({ MODELS: "xgboost", SHUTDOWN_DELAY_MS: "0", ...env });
  try {
    await test(server);
  } finally {
    server.child.kill("SIGTERM");
    await server.exit;
  }
}

describe("/metrics needs credentials once the API does", () => {
  it("API_KEY without METRICS_API_KEY: /metrics on the API port answers 403 saying what to set, before and after a keyed prediction", async () => {
    await withServer({ API_KEY: KEY }, async (server) => {
      const scrape = async (headers: Record<string, string> = {}) => {
        const res = await get(`${server.url}/metrics`, headers);
        return { status: res.status, text: await res.text() };
      };
      const before = await scrape();
      expect(before.status).toBe(403);
      expect(JSON.parse(before.text).message).toMatch(/METRICS_API_KEY.*METRICS_PORT/);
      expect((await predict(server, { "x-api-key": KEY })).status).toBe(200);
      for (const headers of [{}, { "x-api-key": KEY }, { authorization: `Bearer ${KEY}` }] as Record<string, string>[]) {
        const after = await scrape(headers);
        expect(after.status, JSON.stringify(headers)).toBe(403);
        expect(after.text).not.toMatch(SUM);
      }
      // The bundle's description and golden cases are the prediction realm's too.
      for (const path of ["/models", "/models/golden"]) {
        const anonymous = await get(`${server.url}${path}`);
        expect(anonymous.status, path).toBe(401);
        expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="predict"');
        expect((await get(`${server.url}${path}`, { "x-api-key": KEY })).status, path).toBe(200);
      }
      expect((await get(`${server.url}/health`)).status).toBe(200);
      expect(server.output()).toContain("API_KEY is set but METRICS_API_KEY is not: /metrics answers 403");
    });
  }, 60_000);

  it("METRICS_API_KEY: /metrics takes one of its keys (X-API-Key or Bearer, as Prometheus sends it) and nothing else; they do not predict", async () => {
    await withServer({ API_KEY: KEY, METRICS_API_KEY: METRICS_KEYS.join(",") }, async (server) => {
      const anonymous = await get(`${server.url}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="metrics"');
      expect((await get(`${server.url}/metrics`, { "x-api-key": KEY })).status).toBe(403);
      expect((await get(`${server.url}/metrics`, { "x-api-key": "metrics-key-but-not-one-of-them" })).status).toBe(403);
      const sum = async (headers: Record<string, string>) => {
        const res = await get(`${server.url}/metrics`, headers);
        expect(res.status).toBe(200);
        return Number(SUM.exec(await res.text())?.[1] ?? 0); // absent until the first prediction
      };
      const before = await sum({ "x-api-key": METRICS_KEYS[0]! });
      const answer = await predict(server, { "x-api-key": KEY });
      expect(answer.status).toBe(200);
      const { prediction } = (await answer.json()) as { prediction: number };
      // The scraper with the credential still sees everything, as Prometheus needs.
      expect(await sum({ authorization: `Bearer ${METRICS_KEYS[1]}` })).toBeCloseTo(before + prediction, 9);
      expect((await predict(server, { "x-api-key": METRICS_KEYS[0]! })).status).toBe(403);
      expect((await get(`${server.url}/models`, { "x-api-key": METRICS_KEYS[0]! })).status).toBe(403);
    });
  }, 60_000);

  it("a server without any credentials keeps /metrics, /models and /models/golden open", async () => {
    await withServer({}, async (server) => {
      for (const path of ["/metrics", "/models", "/models/golden"]) expect((await get(`${server.url}${path}`)).status, path).toBe(200);
    });
  }, 60_000);
});

describe("METRICS_PORT, the listener Prometheus scrapes", () => {
  it("is open without METRICS_API_KEY (the network decides who reaches it); the API port serves no /metrics", async () => {
    const metricsPort = await freePort();
    await withServer({ API_KEY: KEY, METRICS_PORT: String(metricsPort) }, async (server) => {
      const res = await get(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^model_bundle_ready 1$/m);
      expect((await get(`${server.url}/metrics`, { "x-api-key": KEY })).status).toBe(404);
    });
  }, 60_000);

  it("WORKERS=2: the primary's combined metrics need METRICS_API_KEY when it is set", async () => {
    const metricsPort = await freePort();
    await withServer({ API_KEY: KEY, METRICS_API_KEY: METRICS_KEYS[0]!, METRICS_PORT: String(metricsPort), WORKERS: "2" }, async () => {
      const url = `http://127.0.0.1:${metricsPort}/metrics`;
      const anonymous = await get(url);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="metrics"');
      expect(((await anonymous.json()) as { error: string }).error).toBe("unauthorized");
      expect((await get(url, { "x-api-key": KEY })).status).toBe(403);
      // 200 once both workers answer the primary.
      const text = await waitFor("the combined metrics", async () => {
        const scraped = await get(url, { authorization: `Bearer ${METRICS_KEYS[0]}` });
        return scraped.status === 200 ? scraped.text() : undefined;
      });
      expect(text).toMatch(/^model_bundle_ready 1$/m);
    });
  }, 60_000);
});
