import { request as httpRequest, type IncomingMessage } from "node:http";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testApp, waitFor } from "./helpers.js";

let app: FastifyInstance;
let base: string;
// Long enough that the kernel's socket buffers (a few MB on loopback) hold a small share.
const LENGTH = 1_000_000;
const series = Array.from({ length: LENGTH }, (_, i) => Math.sin(i / 7) * 0.6);

beforeAll(async () => {
  app = await testApp({ CACHE_TTL: "0", MAX_STREAM_LENGTH: String(LENGTH), BODY_LIMIT: String(64 * 1024 * 1024) });
  base = await app.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(() => app.close());

async function rowsPredicted(model = "xgboost"): Promise<number> {
  const metric = await app.wavelet.metrics.inferences.get();
  return metric.values.find((v) => v.labels.model === model)?.value ?? 0;
}

/** The row count once it has not moved for 500 ms. */
async function settled(): Promise<number> {
  let last = -1;
  for (;;) {
    const now = await rowsPredicted();
    if (now === last) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Open a stream over real HTTP; the response is paused until the test reads it. */
function open(body: unknown, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = httpRequest(`${base}/predict/stream`, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      res.pause();
      resolve(res);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

function firstLine(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf("\n");
      if (end >= 0) {
        res.off("data", onData);
        res.pause();
        resolve(text.slice(0, end));
      }
    };
    res.on("data", onData);
    res.resume();
  });
}

describe("/predict/stream over real HTTP", () => {
  it("sends the first prediction long before the last is computed, and stops when the client stops reading", async () => {
    const before = await rowsPredicted();
    const res = await open({ features: series, window_size: 10, model_type: "xgboost" });
    try {
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(await firstLine(res))).toMatchObject({ index: 0 });
      // The client reads nothing more: once the socket buffers are full the server must
      // stop computing, well short of the end.
      const whilePaused = (await settled()) - before;
      expect(whilePaused).toBeLessThan(LENGTH / 4);
      await new Promise((r) => setTimeout(r, 500));
      expect((await rowsPredicted()) - before).toBe(whilePaused);
    } finally {
      res.destroy();
    }
  }, 20_000);

  it("a client that disconnects stops the work", async () => {
    const before = await rowsPredicted();
    const res = await open({ features: series, window_size: 10, model_type: "xgboost" });
    await firstLine(res);
    res.destroy();
    const afterAbort = await settled();
    await new Promise((r) => setTimeout(r, 500));
    expect(await rowsPredicted()).toBe(afterAbort);
    expect((await app.wavelet.metrics.inFlight.get()).values[0]!.value).toBe(0);
    expect(afterAbort - before).toBeLessThan(LENGTH / 4);
  }, 20_000);

  it("streams every window to the end when read, with a done line", async () => {
    const n = 5000;
    const res = await fetch(`${base}/predict/stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ features: series.slice(0, n), window_size: 10, model_type: "lstm", return_confidence: true }),
    });
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(n - 10 + 2);
    expect(lines.at(-1)).toEqual({ done: true, count: n - 9 });
    lines.slice(0, -1).forEach((l, i) => {
      expect(l.index).toBe(i);
      expect(l.confidence.lower).toBeLessThan(l.prediction);
    });
  });

  it("speaks Server-Sent Events when asked", async () => {
    const res = await fetch(`${base}/predict/stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ features: series.slice(0, 12), window_size: 10 }),
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = (await res.text()).trim().split("\n\n");
    expect(events).toHaveLength(4);
    expect(events[0]).toMatch(/^event: prediction\ndata: \{"index":0,"prediction":/);
    expect(events[3]).toBe('event: done\ndata: {"done":true,"count":3}');
  });

  it("bounds the series length by MAX_STREAM_LENGTH", async () => {
    const small = await testApp({ MAX_STREAM_LENGTH: "100" });
    const res = await small.inject({ method: "POST", url: "/predict/stream", headers: { "content-type": "application/json" }, payload: JSON.stringify({ features: series.slice(0, 101) }) });
    expect(res.statusCode).toBe(400);
    expect(res.json().fields[0].field).toBe("features");
    await small.close();
  });

  it("releases the bundle after streams end or break, so a reload can free the old one", async () => {
    const res = await open({ features: series, window_size: 10, model_type: "xgboost" });
    await firstLine(res);
    const old = app.wavelet.registry.serving!;
    await app.wavelet.registry.reload();
    expect(old.bundle.status("xgboost")).toBe("loaded"); // still in use by the open stream
    res.destroy();
    await waitFor("old bundle released", () => (old.bundle.status("xgboost") === "not_loaded" ? true : undefined), 5000);
  }, 20_000);
});

describe("streams cannot pin memory or fail silently", () => {
  let limited: FastifyInstance;
  let limitedBase: string;
  beforeAll(async () => {
    limited = await testApp({
      CACHE_TTL: "0",
      MAX_STREAM_LENGTH: String(LENGTH),
      BODY_LIMIT: String(64 * 1024 * 1024),
      MAX_STREAMS: "1",
      STREAM_STALL_TIMEOUT_MS: "1000",
    });
    limitedBase = await limited.listen({ host: "127.0.0.1", port: 0 });
  });
  afterAll(() => limited.close());

  const openOn = (url: string, body: unknown) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${url}/predict/stream`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        res.pause();
        resolve(res);
      });
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });

  it("beyond MAX_STREAMS a stream gets 503 overloaded with Retry-After; a client that stops reading is cut and its retired bundle released", async () => {
    const res = await openOn(limitedBase, { features: series, model_type: "xgboost" });
    res.on("error", () => undefined);
    const ended = new Promise((r) => res.once("close", r));
    await firstLine(res);
    const second = await limited.inject({ method: "POST", url: "/predict/stream", headers: { "content-type": "application/json" }, payload: JSON.stringify({ features: series.slice(0, 20) }) });
    expect(second.statusCode).toBe(503);
    expect(second.json().error).toBe("overloaded");
    expect(Number(second.headers["retry-after"])).toBeGreaterThanOrEqual(1);

    const old = limited.wavelet.registry.serving!;
    await limited.wavelet.registry.reload();
    expect(old.bundle.status("xgboost")).toBe("loaded"); // the paused stream still holds it
    // The client never reads again: after STREAM_STALL_TIMEOUT_MS the server cuts it.
    await waitFor("old bundle released", () => (old.bundle.status("xgboost") === "not_loaded" ? true : undefined), 15_000);
    res.resume(); // what was buffered drains, then the cut connection ends the response
    await ended;
    const third = await limited.inject({ method: "POST", url: "/predict/stream", headers: { "content-type": "application/json" }, payload: JSON.stringify({ features: series.slice(0, 20) }) });
    expect(third.statusCode).toBe(200);
  }, 30_000);

  it("with only the socket idle timeout (STREAM_IDLE_TIMEOUT_MS), a client that stops reading is cut too", async () => {
    const idle = await testApp({
      CACHE_TTL: "0",
      MAX_STREAM_LENGTH: String(LENGTH),
      BODY_LIMIT: String(64 * 1024 * 1024),
      STREAM_STALL_TIMEOUT_MS: "0",
      STREAM_IDLE_TIMEOUT_MS: "1000",
    });
    try {
      const res = await openOn(await idle.listen({ host: "127.0.0.1", port: 0 }), { features: series, model_type: "xgboost" });
      res.on("error", () => undefined);
      const ended = new Promise((r) => res.once("close", r));
      await firstLine(res);
      const old = idle.wavelet.registry.serving!;
      await idle.wavelet.registry.reload();
      await waitFor("old bundle released", () => (old.bundle.status("xgboost") === "not_loaded" ? true : undefined), 15_000);
      res.resume();
      await ended;
    } finally {
      await idle.close();
    }
  }, 30_000);

  it("an error after the headers ends the stream with an error line (NDJSON) or an error event (SSE)", async () => {
    // A first chunk of 21 rows cannot enter a queue bounded at 8 rows: 503 overloaded, after the 200.
    const small = await testApp({ MAX_BATCH_SAMPLES: "8", MAX_QUEUED_ROWS: "8" });
    try {
      const payload = JSON.stringify({ features: series.slice(0, 30) });
      const ndjson = await small.inject({ method: "POST", url: "/predict/stream", headers: { "content-type": "application/json" }, payload });
      expect(ndjson.statusCode).toBe(200);
      const lines = ndjson.body.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines.at(-1)).toMatchObject({ error: "overloaded", request_id: expect.any(String) });
      expect(lines.some((l) => l.done)).toBe(false);
      const sse = await small.inject({
        method: "POST",
        url: "/predict/stream",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        payload,
      });
      expect(sse.body).toMatch(/event: error\ndata: \{"error":"overloaded",/);
      expect(sse.body).not.toContain("event: done");
    } finally {
      await small.close();
    }
  });
});

describe("window_size, the bundle, caching", () => {
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: "POST", url: "/predict/stream", headers: { "content-type": "application/json", ...headers }, payload: JSON.stringify(body) });
  const predictions = (body: string) =>
    body
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((l) => l.prediction !== undefined);

  it("a window_size above the bundle's window predicts from each window's last `window` values, one per window", async () => {
    const features = series.slice(0, 40);
    const wide = await post({ features, window_size: 15, model_type: "lstm" });
    expect(wide.statusCode).toBe(200);
    const lines = wide.body.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toEqual({ done: true, count: 40 - 15 + 1 });
    // Window i (features[i .. i+14]) is the bundle-window prediction of features[i+5 .. i+14].
    const narrow = predictions((await post({ features: features.slice(5), window_size: 10, model_type: "lstm" })).body);
    expect(predictions(wide.body).map((l) => l.prediction)).toEqual(narrow.map((l) => l.prediction));
    // With prices: the same days' predictions, starting window_size - window days later.
    const prices = Array.from({ length: 80 }, (_, i) => 100 * Math.exp(0.01 * Math.sin(i)));
    const p10 = predictions((await post({ prices, model_type: "lstm" })).body);
    const p15 = predictions((await post({ prices, window_size: 15, model_type: "lstm" })).body);
    expect(p15.map((l) => l.prediction)).toEqual(p10.slice(5).map((l) => l.prediction));
  });

  // Schemathesis (CI, 2026-11-27) sent prices with a window_size longer than their days of
  // features: valid by the published schema, which cannot relate the two, so not a 400.
  it("a window_size longer than the series gives no predictions, only the done line", async () => {
    for (const body of [{ features: series.slice(0, 20), window_size: 21 }, { prices: Array.from({ length: 51 }, (_, i) => 100 + i), window_size: 226 }]) {
      const res = await post(body);
      expect(res.statusCode).toBe(200);
      expect(res.body.trim().split("\n").map((l) => JSON.parse(l))).toEqual([{ done: true, count: 0 }]);
    }
  });

  it("names the bundle that computed the stream, and marks every prediction response no-store", async () => {
    const res = await post({ features: series.slice(0, 12) });
    const bundle = app.wavelet.registry.serving!.bundle;
    expect(res.headers["x-bundle-name"]).toBe(bundle.name);
    expect(res.headers["x-bundle-version"]).toBe(bundle.version);
    expect(res.headers["x-bundle-digest"]).toBe(bundle.digest);
    expect(res.headers["cache-control"]).toBe("no-store");
    const single = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": "application/json" }, payload: JSON.stringify({ features: series.slice(0, 10) }) });
    const batch = await app.inject({ method: "POST", url: "/predict/batch", headers: { "content-type": "application/json" }, payload: JSON.stringify({ samples: [series.slice(0, 10)] }) });
    const refused = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": "application/json" }, payload: "{}" });
    for (const r of [single, batch, refused]) expect(r.headers["cache-control"]).toBe("no-store");
    expect((await app.inject({ method: "GET", url: "/health" })).headers["cache-control"]).not.toBe("no-store");
  });
});
