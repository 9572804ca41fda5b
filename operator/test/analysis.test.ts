import { type RequestListener, createServer, request, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { afterEach, describe, expect, it } from "vitest";
import type { AnalysisVerdict } from "../src/reconcile/bluegreen.js";
import { AnalysisRuns, BODY_LIMITS, httpAnalyzer } from "../src/reconcile/analysis.js";
import { freePort } from "../../test-support/wait.js";
import { DIGEST_A, DIGEST_B, model } from "./fixtures.js";
import { type Pair, makeCA, makeCert, pkiDir } from "../../test-support/pki.js";

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
  metricsKey?: string;
  /** An imported bundle's golden cases: feature vectors, not prices. */
  named?: boolean;
  /** A bundle that reads daily bars: its golden cases are bars (as columns), not prices. */
  bars?: boolean;
  /** Serve HTTPS with this pair (spec.tls). */
  tls?: Pair;
}

const GOLDEN = [
  { name: "calm", prices: [100, 101, 102], expected: { xgboost: 0.0124, lstm: -0.003 } },
  { name: "crash", prices: [100, 80, 60], expected: { xgboost: 0.05, lstm: 0.02 } },
];
const NAMED = GOLDEN.map(({ name, prices, expected }) => ({ name, features: prices.map((p) => p / 100 - 1), expected }));
const BARS = GOLDEN.map(({ name, prices, expected }) => ({ name, bars: { high: prices.map((p) => p * 1.01), low: prices.map((p) => p * 0.99), close: prices }, expected }));

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.close(r), s.closeAllConnections()))));
});

async function colour(b: Behaviour, port = 0): Promise<string> {
  const handler: RequestListener = (req, res) => {
    const send = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/health") return void send(200, { bundle: { digest: b.digest ?? DIGEST_A } });
    if (req.url === "/models/golden") {
      if (b.apiKey && req.headers["x-api-key"] !== b.apiKey) return send(401, { error: "unauthorized" });
      return void send(200, { bundle: { digest: b.digest ?? DIGEST_A }, cases: b.named ? NAMED : b.bars ? BARS : GOLDEN });
    }
    if (req.url === "/metrics") {
      if (b.metricsKey && req.headers["x-api-key"] !== b.metricsKey) return send(401, { error: "unauthorized" });
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
        const { prices, bars, features, model_type } = JSON.parse(raw) as { prices?: number[]; bars?: { close: number[] }; features?: number[]; model_type: "xgboost" | "lstm" };
        const c = b.named
          ? NAMED.find((g) => g.features.join() === features?.join())
          : b.bars
            ? BARS.find((g) => JSON.stringify(g.bars) === JSON.stringify(bars))
            : GOLDEN.find((g) => g.prices.join() === prices?.join());
        if (!c) return send(400, { error: b.named ? "this bundle takes named features" : b.bars ? "bars_required" : "prices required" });
        send(200, { prediction: c.expected[model_type] + (b.skew ?? 0) });
      }, b.delayMs ?? 0),
    );
  };
  const server = b.tls ? createHttpsServer({ cert: b.tls.cert, key: b.tls.key }, handler) : createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return `${b.tls ? "https" : "http"}://127.0.0.1:${(server.address() as { port: number }).port}`;
}

// An unreachable preview is given up on after a second here (30 s in the operator).
const analyze = httpAnalyzer({ reachWithinMs: 1000 });

/** The preview through its Service, and its one pod's metrics (the same stand-in here). */
const targets = (preview: string, active: string, apiKey?: string) => ({ preview, active, previewMetrics: [`${preview}/metrics`], ...(apiKey ? { apiKey } : {}) });

// A generous p99 bound: only the latency test is about latency, and a busy machine answers slowly.
const analyzed = (over: Record<string, unknown> = {}, server: Record<string, unknown> = {}) =>
  model({ server, rollout: { analysis: { enabled: true, requests: 8, maxErrorRate: 0, maxP99LatencyMs: 2000, ...over } } });

describe("an analysis run against the preview and active colours", () => {
  it("passes a healthy preview that answers every golden case as recorded", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({}), await colour({})));
    expect(verdict.result).toBe("pass");
    expect(verdict.message).toContain("8 golden requests answered as recorded");
  });

  it("sends an imported bundle's golden feature vectors as features (issue 23)", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ named: true }), await colour({ named: true })));
    expect(verdict.result).toBe("pass");
    expect(verdict.message).toContain("8 golden requests answered as recorded");
    expect((await analyze(analyzed(), targets(await colour({ named: true, skew: 0.001 }), await colour({})))).result).toBe("fail");
  });

  it("sends a bars bundle's golden bars as bars, as columns (issue 24)", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ bars: true }), await colour({ bars: true })));
    expect(verdict.result).toBe("pass");
    expect(verdict.message).toContain("8 golden requests answered as recorded");
    expect((await analyze(analyzed(), targets(await colour({ bars: true, skew: 0.001 }), await colour({})))).result).toBe("fail");
  });

  it("fails a preview whose predictions differ from the bundle's recorded ones", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ skew: 0.001 }), await colour({})));
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview answered 8 golden requests wrongly: xgboost on calm: 0\.0133\d+, expected 0\.0124; lstm on calm/);
  });

  it("tolerates float32 noise in the last bits", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ skew: 1e-7 }), await colour({})));
    expect(verdict.result).toBe("pass");
  });

  it("sends the API key the server needs", async () => {
    const keyed = async (apiKey?: string) => targets(await colour({ apiKey: "k1" }), await colour({ apiKey: "k1" }), apiKey);
    expect((await analyze(analyzed(), await keyed("k1"))).result).toBe("pass");
    // The golden cases are the API's too (issue 22): without the key, no cases.
    expect(await analyze(analyzed(), await keyed())).toEqual({ result: "fail", message: "preview /models/golden answered 401" });
  });

  it("reads the preview's /metrics with the metrics key when the pods require one", async () => {
    const preview = await colour({ metricsKey: "m1" });
    const active = await colour({});
    expect((await analyze(analyzed(), { ...targets(preview, active), metricsKey: "m1" })).result).toBe("pass");
    expect((await analyze(analyzed(), targets(preview, active))).result).toBe("fail");
  });

  it("fails a preview serving another bundle", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ digest: DIGEST_B }), await colour({})));
    expect(verdict).toEqual({ result: "fail", message: `preview serves ${DIGEST_B}, not ${DIGEST_A}` });
  });

  it("fails on errors to golden requests", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ predictStatus: 500 }), await colour({})));
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview error rate 1\.000 > 0 \(HTTP 500/);
  });

  it("fails when the preview is slower than the p99 bound", async () => {
    const verdict = await analyze(analyzed({ maxP99LatencyMs: 20 }), targets(await colour({ delayMs: 40 }), await colour({})));
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview p99 \d+\.\d ms > 20 ms/);
  });

  it("fails when the preview's own metrics report server errors", async () => {
    const verdict = await analyze(analyzed(), targets(await colour({ serverErrors: 3 }), await colour({})));
    expect(verdict).toEqual({ result: "fail", message: "preview metrics report 3 server errors" });
  });

  it("fails when the preview's metrics do not count requests at all", async () => {
    const preview = await colour({ metrics: "process_cpu_seconds_total 1\n" });
    const verdict = await analyze(analyzed(), targets(preview, await colour({})));
    expect(verdict).toEqual({ result: "fail", message: `preview ${preview}/metrics has no http_requests_total: cannot tell its error count` });
  });

  it("adds up the server errors of every preview pod, each read on its own metrics port", async () => {
    const [one, two] = [await colour({}), await colour({ serverErrors: 2 })];
    const verdict = await analyze(analyzed(), { ...targets(one, await colour({})), previewMetrics: [`${one}/metrics`, `${two}/metrics`] });
    expect(verdict).toEqual({ result: "fail", message: "preview metrics report 2 server errors" });
  });

  it("waits for a preview that cannot be reached yet: its Service follows the pods' readiness by a moment (kind tier, 2026-12-06)", async () => {
    const port = await freePort();
    setTimeout(() => void colour({}, port), 400);
    const verdict = await analyze(analyzed(), targets(`http://127.0.0.1:${port}`, await colour({})));
    expect(verdict.result).toBe("pass");
  });

  it("asks again, on fresh connections, while something else answers for the preview: the kind node's egress proxy (404, no body) before kube-proxy routes the Service (kind tier, 2026-12-07)", async () => {
    const real = new URL(await colour({}));
    const routedAt = Date.now() + 400;
    // Connections made before the Service routes stay with the proxy, kept alive, as a
    // connection tracked to its first destination does.
    const node = createServer((req, res) => {
      if ((req.socket as { proxied?: boolean }).proxied) return void res.writeHead(404, { "content-length": "0", server: "keryx" }).end();
      const forward = request({ host: real.hostname, port: real.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      req.pipe(forward);
    });
    node.on("connection", (socket) => Object.assign(socket, { proxied: Date.now() < routedAt }));
    node.keepAliveTimeout = 60_000;
    servers.push(node);
    await new Promise<void>((r) => node.listen(0, "127.0.0.1", r));
    const verdict = await analyze(analyzed(), targets(`http://127.0.0.1:${(node.address() as { port: number }).port}`, await colour({})));
    expect(verdict.result).toBe("pass");
  });

  it("fails when the preview cannot be reached", async () => {
    const verdict = await analyze(analyzed(), targets("http://127.0.0.1:1", await colour({})));
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview unreachable/);
  });
});

describe("analysis over HTTPS (spec.tls, issue 26)", () => {
  const dir = pkiDir();
  const ca = makeCA(dir, "model-ca");
  // Certificates name the public hostnames; the operator asks the Service's address (here 127.0.0.1).
  const leaf = makeCert(dir, ca, "api", { cn: "api.example.com", dns: ["api.example.com"] });
  const selfSigned = makeCA(dir, "self-signed");
  const stranger = makeCA(dir, "stranger-ca");
  const impostor = makeCert(dir, stranger, "impostor", { cn: "api.example.com", dns: ["api.example.com"] });
  /** The pods' /metrics is plain HTTP under spec.tls too: another stand-in answers it. */
  const over = async (preview: string, active: string, trusted: string) => ({ ...targets(preview, active), previewMetrics: [`${await colour({})}/metrics`], ca: trusted });

  it("verifies the colours' certificates against the Secret's ca.crt, though they name other hosts than the one asked", async () => {
    const verdict = await analyze(analyzed(), await over(await colour({ tls: leaf }), await colour({ tls: leaf }), ca.cert));
    expect(verdict).toMatchObject({ result: "pass", message: expect.stringContaining("8 golden requests answered as recorded") });
  });

  it("trusts a self-signed tls.crt itself, and a CA-issued one without its root (no ca.crt)", async () => {
    expect((await analyze(analyzed(), await over(await colour({ tls: selfSigned }), await colour({ tls: selfSigned }), selfSigned.cert))).result).toBe("pass");
    expect((await analyze(analyzed(), await over(await colour({ tls: leaf }), await colour({ tls: leaf }), leaf.cert))).result).toBe("pass");
  });

  it("refuses a preview whose certificate does not chain to the Secret's", async () => {
    const verdict = await analyze(analyzed(), await over(await colour({ tls: impostor }), await colour({ tls: leaf }), ca.cert));
    expect(verdict).toEqual({ result: "fail", message: expect.stringMatching(/^preview unreachable: unable to (get local issuer certificate|verify the first certificate)/) });
    // Nor is the system's trust enough: without the Secret's certificates, a self-signed preview is refused.
    const untrusted = await analyze(analyzed(), await over(await colour({ tls: selfSigned }), await colour({ tls: selfSigned }), ca.cert));
    expect(untrusted.message).toMatch(/^preview unreachable: self[- ]signed certificate/);
  });

  it("a rollout that turns TLS on: the preview over HTTPS, the active colour still over HTTP", async () => {
    expect((await analyze(analyzed(), await over(await colour({ tls: leaf }), await colour({}), ca.cert))).result).toBe("pass");
  });

  it("an endless answer over HTTPS is cut off at the limit as over HTTP", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const flood = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      if (req.url === "/health") return void res.end(JSON.stringify({ bundle: { digest: DIGEST_A } }));
      res.writeHead(200, { "content-type": "application/json" }).write('{"cases": [');
      const more = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once("drain", more);
      };
      more();
    });
    servers.push(flood);
    await new Promise<void>((r) => flood.listen(0, "127.0.0.1", r));
    const url = `https://127.0.0.1:${(flood.address() as { port: number }).port}`;
    const verdict = await analyze(analyzed(), await over(url, await colour({ tls: leaf }), ca.cert));
    expect(verdict).toEqual({ result: "fail", message: `preview unreachable: answer longer than the ${BODY_LIMITS.golden} bytes read` });
  });
});

describe("analysis runs off the reconcile workers", () => {
  it("a poll starts the run and returns at once; its end queues the model; the verdict is kept for that run only", async () => {
    let finish: (v: AnalysisVerdict) => void = () => undefined;
    const queued: string[] = [];
    const runs = new AnalysisRuns(() => new Promise((r) => (finish = r)), (key) => queued.push(key));
    const targets = async () => ({ preview: "p", active: "a", previewMetrics: [] });
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
    expect(runs.poll("ns/spx", "h#0", model(), async () => ({ preview: "", active: "", previewMetrics: [] }))).toEqual({ result: "fail", message: "analysis could not run: secrets is forbidden" });
  });
});

/**
 * A preview that answers without end, or never finishes answering: what a tenant's image or
 * bundle can do. One operator analyses every model of the cluster under a 128 MiB heap: it
 * reads a bounded number of bytes for a bounded time, fails that model's run, nothing else.
 */
describe("a hostile preview costs the operator a bounded read (issue 21, finding 7)", () => {
  /** A server that answers `path` with a body of 1 MiB chunks, forever or until `endless` stops; counts the bytes it sent. */
  async function flooding(path: string, { slow = false } = {}) {
    const sent = { bytes: 0, closed: false };
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const inner = await colour({});
    const server = createServer((req, res) => {
      if (req.url !== path) {
        // Everything else as a healthy preview answers it.
        void fetch(`${inner}${req.url}`, { method: req.method, headers: { "content-type": "application/json" }, ...(req.method === "POST" ? { body: req, duplex: "half" } : {}) } as RequestInit).then(async (r) =>
          res.writeHead(r.status, { "content-type": "application/json" }).end(Buffer.from(await r.arrayBuffer())),
        );
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.on("close", () => (sent.closed = true));
      if (slow) {
        // A byte a second: never done, never too large.
        const timer = setInterval(() => res.write(" "), 1000);
        res.on("close", () => clearInterval(timer));
        return;
      }
      res.write('{"cases": [');
      const more = () => {
        while (!res.destroyed && res.write(chunk)) sent.bytes += chunk.length;
        if (!res.destroyed) res.once("drain", () => ((sent.bytes += chunk.length), more()));
      };
      more();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, sent };
  }

  it("an endless /models/golden: cut off after the limit, the run fails", async () => {
    const { url, sent } = await flooding("/models/golden");
    const verdict = await analyze(analyzed(), targets(url, await colour({})));
    expect(verdict).toEqual({ result: "fail", message: `preview unreachable: answer longer than the ${BODY_LIMITS.golden} bytes read` });
    await new Promise((r) => setTimeout(r, 100));
    expect(sent.closed).toBe(true);
    // What the operator let in: the limit, and what sat in socket buffers when it stopped.
    expect(sent.bytes).toBeLessThan(BODY_LIMITS.golden + 16 * 1024 * 1024);
  });

  it("an endless /metrics on a pod fails the run the same way", async () => {
    const { url, sent } = await flooding("/metrics");
    const verdict = await analyze(analyzed(), targets(url, await colour({})));
    expect(verdict).toEqual({ result: "fail", message: `preview ${url}/metrics unreachable: answer longer than the ${BODY_LIMITS.metrics} bytes read` });
    expect(sent.bytes).toBeLessThan(BODY_LIMITS.metrics + 16 * 1024 * 1024);
  });

  it("an endless /predict answer counts as a failed request", async () => {
    const { url } = await flooding("/predict");
    const verdict = await analyze(analyzed({ requests: 2 }), targets(url, await colour({})));
    expect(verdict.message).toMatch(new RegExp(`^preview error rate 1\\.000 > 0 \\(answer longer than the ${BODY_LIMITS.predict} bytes read`));
  });

  it("an answer that never ends is given up after the request timeout; a run never outlasts its time box", async () => {
    const { url } = await flooding("/health", { slow: true });
    const quick = httpAnalyzer({ reachWithinMs: 1000, requestTimeoutMs: 300 });
    const started = Date.now();
    expect((await quick(analyzed(), targets(url, await colour({})))).message).toMatch(/^preview unreachable: .*(timeout|aborted)/i);
    expect(Date.now() - started).toBeLessThan(3000);

    // Each golden request answered in 200 ms: 20 of them do not fit in 1 s.
    const boxed = httpAnalyzer({ reachWithinMs: 1000, runWithinMs: 1000 });
    const verdict = await boxed(analyzed({ requests: 20 }), targets(await colour({ delayMs: 200 }), await colour({})));
    expect(verdict).toEqual({ result: "fail", message: "analysis did not finish within 1s" });
  });

  it("an answer that is not JSON is named with its status and length", async () => {
    const server = createServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(req.url === "/health" ? "" : "{}"));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    expect(await analyze(analyzed(), targets(url, await colour({})))).toEqual({ result: "fail", message: "preview unreachable: /health answered 200 with 0 bytes that are not JSON" });
  });

  it("golden cases that are not golden cases fail the run, not the operator", async () => {
    const server = createServer((req, res) => {
      if (req.url === "/health") return void res.end(JSON.stringify({ bundle: { digest: DIGEST_A } }));
      res.end(JSON.stringify({ cases: [{ name: "x", prices: "not prices", expected: null }] }));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    expect(await analyze(analyzed(), targets(url, await colour({})))).toEqual({ result: "fail", message: "preview /models/golden is not a list of golden cases" });
  });
});
