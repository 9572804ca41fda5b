import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import type { AnalysisVerdict } from "../src/reconcile/bluegreen.js";
import { AnalysisRuns, httpAnalyzer } from "../src/reconcile/analysis.js";
import { freePort } from "../../test-support/wait.js";
import { DIGEST_A, DIGEST_B, model } from "./fixtures.js";

/**
 * A stand-in for one colour of the inference server over real HTTP: /health, /models/golden,
 * /predict and /metrics. The golden cases and the answers are the test's; that the real
 * server answers its bundle's golden cases is server/test/parity.test.ts's.
 */
interface Behaviour {
  digest?: string;
  predictStatus?: number;
  delayMs?: number;
  serverErrors?: number;
  /** Added to every prediction: a server whose numbers are off. */
  skew?: number;
  metrics?: string;
  apiKey?: string;
}

const GOLDEN = [
  { name: "calm", prices: [100, 101, 102], expected: { xgboost: 0.0124, lstm: -0.003 } },
  { name: "crash", prices: [100, 80, 60], expected: { xgboost: 0.05, lstm: 0.02 } },
];

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function colour(b: Behaviour, port = 0): Promise<string> {
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/health") return void send(200, { bundle: { digest: b.digest ?? DIGEST_A } });
    if (req.url === "/models/golden") return void send(200, { bundle: { digest: b.digest ?? DIGEST_A }, cases: GOLDEN });
    if (req.url === "/metrics") {
      return void res
        .writeHead(200)
        .end(b.metrics ?? `http_requests_total{route="/predict",method="POST",status="200"} 20\nhttp_requests_total{route="/predict",method="POST",status="500"} ${b.serverErrors ?? 0}\n`);
    }
    let raw = "";
    req.on("data", (d) => (raw += d));
    req.on("end", () =>
      setTimeout(() => {
        if (b.apiKey && req.headers["x-api-key"] !== b.apiKey) return send(401, { error: "unauthorized" });
        if (b.predictStatus) return send(b.predictStatus, { error: "x" });
        const { prices, model_type } = JSON.parse(raw) as { prices: number[]; model_type: "xgboost" | "lstm" };
        const c = GOLDEN.find((g) => g.prices.join() === prices.join())!;
        send(200, { prediction: c.expected[model_type] + (b.skew ?? 0) });
      }, b.delayMs ?? 0),
    );
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

// An unreachable preview is given up on after a second here (30 s in the operator).
const analyze = httpAnalyzer({ reachWithinMs: 1000 });

// A generous p99 bound: only the latency test is about latency, and a busy machine answers slowly.
const analyzed = (over: Record<string, unknown> = {}, server: Record<string, unknown> = {}) =>
  model({ server, rollout: { analysis: { enabled: true, requests: 8, maxErrorRate: 0, maxP99LatencyMs: 2000, ...over } } });

describe("an analysis run against the preview and active colours", () => {
  it("passes a healthy preview that answers every golden case as recorded", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({}), active: await colour({}) });
    expect(verdict.result).toBe("pass");
    expect(verdict.message).toContain("8 golden requests answered as recorded");
  });

  it("fails a preview whose predictions differ from the bundle's recorded ones", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({ skew: 0.001 }), active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview answered 8 golden requests wrongly: xgboost on calm: 0\.0133\d+, expected 0\.0124; lstm on calm/);
  });

  it("tolerates float32 noise in the last bits", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({ skew: 1e-7 }), active: await colour({}) });
    expect(verdict.result).toBe("pass");
  });

  it("sends the API key the server needs", async () => {
    const targets = async (apiKey?: string) => ({ preview: await colour({ apiKey: "k1" }), active: await colour({ apiKey: "k1" }), apiKey });
    expect((await analyze(analyzed(), await targets("k1"))).result).toBe("pass");
    expect(await analyze(analyzed(), await targets())).toMatchObject({ result: "fail", message: expect.stringMatching(/^preview error rate 1\.000 > 0 \(HTTP 401/) });
  });

  it("fails a preview serving another bundle", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({ digest: DIGEST_B }), active: await colour({}) });
    expect(verdict).toEqual({ result: "fail", message: `preview serves ${DIGEST_B}, not ${DIGEST_A}` });
  });

  it("fails on errors to golden requests", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({ predictStatus: 500 }), active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview error rate 1\.000 > 0 \(HTTP 500/);
  });

  it("fails when the preview is slower than the p99 bound", async () => {
    const verdict = await analyze(analyzed({ maxP99LatencyMs: 20 }), { preview: await colour({ delayMs: 40 }), active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview p99 \d+\.\d ms > 20 ms/);
  });

  it("fails when the preview's own metrics report server errors", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({ serverErrors: 3 }), active: await colour({}) });
    expect(verdict).toEqual({ result: "fail", message: "preview metrics report 3 server errors" });
  });

  it("fails when the preview's metrics do not count requests at all", async () => {
    const verdict = await analyze(analyzed(), { preview: await colour({ metrics: "process_cpu_seconds_total 1\n" }), active: await colour({}) });
    expect(verdict).toEqual({ result: "fail", message: "preview /metrics has no http_requests_total: cannot tell its error count" });
  });

  it("waits for a preview that cannot be reached yet: its Service follows the pods' readiness by a moment (kind tier, 2026-12-06)", async () => {
    const port = await freePort();
    setTimeout(() => void colour({}, port), 400);
    const verdict = await analyze(analyzed(), { preview: `http://127.0.0.1:${port}`, active: await colour({}) });
    expect(verdict.result).toBe("pass");
  });

  it("fails when the preview cannot be reached", async () => {
    const verdict = await analyze(analyzed(), { preview: "http://127.0.0.1:1", active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview unreachable/);
  });
});

describe("analysis runs off the reconcile workers", () => {
  it("a poll starts the run and returns at once; its end queues the model; the verdict is kept for that run only", async () => {
    let finish: (v: AnalysisVerdict) => void = () => undefined;
    const queued: string[] = [];
    const runs = new AnalysisRuns(() => new Promise((r) => (finish = r)), (key) => queued.push(key));
    const targets = async () => ({ preview: "p", active: "a" });
    expect(runs.poll("ns/spx", "h#0", model(), targets)).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(runs.poll("ns/spx", "h#0", model(), targets)).toBeUndefined(); // still running: not started twice
    finish({ result: "fail", message: "timeout" });
    await new Promise((r) => setImmediate(r));
    expect(queued).toEqual(["ns/spx"]);
    expect(runs.poll("ns/spx", "h#0", model(), targets)).toEqual({ result: "fail", message: "timeout" });
    // The next run (status counted the first) starts afresh.
    expect(runs.poll("ns/spx", "h#1", model(), targets)).toBeUndefined();
  });

  it("a run that cannot start (its API key Secret unreadable) is a failed run, not a stuck one", async () => {
    const queued: string[] = [];
    const runs = new AnalysisRuns(async () => ({ result: "pass", message: "" }), (key) => queued.push(key));
    runs.poll("ns/spx", "h#0", model(), async () => {
      throw new Error("secrets is forbidden");
    });
    await new Promise((r) => setImmediate(r));
    expect(runs.poll("ns/spx", "h#0", model(), async () => ({ preview: "", active: "" }))).toEqual({ result: "fail", message: "analysis could not run: secrets is forbidden" });
  });
});
