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
