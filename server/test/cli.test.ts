import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/client/cli.js";
import { delta, histogram, histogramQuantile, samples, total } from "../src/client/histogram.js";
import { VOL_BUNDLE, testApp } from "./helpers.js";
import { linearBundle, rangeFeatures } from "./linear-bundle.js";
import { randomBars } from "./ohlc.js";

const CLI_JS = resolve(import.meta.dirname, "../dist/client/cli.js");

/** The built CLI as a process (nothing listens on port 9: a check that ran would fail). */
const spawnCli = (args: string[], file = CLI_JS) =>
  spawnSync(process.execPath, [file, ...args], { encoding: "utf8", env: { ...process.env, API_URL: "http://127.0.0.1:9" }, timeout: 20_000 });

/** main() in this process, its stdout and stderr captured. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => (out += t), err: (t) => (err += t), tty: false });
  return { code, out, err };
}

const metricsText = async (url: string) => (await fetch(`${url}/metrics`)).text();

describe("the command line", () => {
  it("--help (the built file, as npm runs it) prints the usage on stdout and exits 0", () => {
    const run = spawnCli(["--help"]);
    expect(run.status).toBe(0);
    expect(run.stderr).toBe("");
    for (const part of ["Usage: wavelet", "Commands:", "performance", "--requests N", "(default: 1000)", "API_URL", "API_KEY", "Examples:"]) {
      expect(run.stdout).toContain(part);
    }
  });

  it("an unknown option: one line naming it, then the usage, on stderr; exit 2 and no stack trace", () => {
    const run = spawnCli(["performance", "--bogus", "3"]);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe("");
    const [first, blank, usage] = run.stderr.split("\n");
    expect(first).toBe("wavelet: Unknown option '--bogus'");
    expect(blank).toBe("");
    expect(usage).toBe("Usage: wavelet [options] [command]");
    expect(run.stderr).not.toMatch(/\n\s+at |node:internal|ERR_PARSE_ARGS/);
  });

  it("a command's --help describes that command and its options only", () => {
    const run = spawnCli(["predict", "--help"]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage: wavelet predict \[options\]\n\nPOST \/predict/);
    expect(run.stdout).toContain("--features LIST");
    expect(run.stdout).toContain("--confidence");
    expect(run.stdout).not.toContain("--requests");
    expect(run.stdout).not.toContain("Commands:");
  });

  it("is installed as the `wavelet` command: a tracked, executable launcher; both it and the built file run through a symlink as npm links them", () => {
    const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, "../package.json"), "utf8"));
    expect(pkg.bin.wavelet).toBe("bin/wavelet.js");
    const launcher = resolve(import.meta.dirname, "..", pkg.bin.wavelet);
    expect(statSync(launcher).mode & 0o111).toBe(0o111);
    const dir = mkdtempSync(join(tmpdir(), "bin-"));
    for (const [name, target] of [["wavelet", launcher], ["cli", CLI_JS]] as const) {
      expect(readFileSync(target, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
      symlinkSync(target, join(dir, name));
      const run = spawnCli(["health", "--help"], join(dir, name));
      expect(run.status).toBe(0);
      expect(run.stdout).toContain("Usage: wavelet health");
    }
  });

  it("-h, help and help <command> print the usage; unknown commands and bad values are usage errors (exit 2)", async () => {
    for (const args of [["-h"], ["help"]]) {
      const r = await cli(args);
      expect(r).toMatchObject({ code: 0, err: "" });
      expect(r.out).toContain("Commands:");
    }
    expect((await cli(["help", "stream"])).out).toMatch(/^Usage: wavelet stream \[options\]/);
    const errors: [string[], string][] = [
      [["frobnicate"], "wavelet: unknown command frobnicate"],
      [["--test", "nope"], "wavelet: unknown command nope"],
      [["performance", "--requests", "many"], "wavelet: --requests takes a positive whole number, not many"],
      [["batch", "--samples", "0"], "wavelet: --samples takes a positive whole number, not 0"],
      [["performance", "--endpoint", "stream"], "wavelet: --endpoint is predict or batch, not stream"],
      [["predict", "--features", "1,x"], "wavelet: --features takes comma-separated numbers, not 1,x"],
      [["predict", "--features", "1,,2"], "wavelet: --features takes comma-separated numbers, not 1,,2"],
      [["help", "nope"], "wavelet: unknown command nope"],
      [["health", "--url", "localhost:8000"], "wavelet: --url is not an http(s) URL: localhost:8000"],
      [["health", "models"], "wavelet: one command at a time, not health models"],
      [["--url"], "wavelet: Option '--url <value>' argument missing"],
    ];
    for (const [args, line] of errors) {
      const r = await cli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.split("\n")[0]).toBe(line);
      expect(r.err).toContain("Usage: wavelet");
    }
  });
});

describe("the server's latency from its histogram", () => {
  const text = [
    "# HELP http_request_duration_seconds HTTP request latency",
    "# TYPE http_request_duration_seconds histogram",
    'http_request_duration_seconds_bucket{le="0.001",route="/predict",method="POST"} 10',
    'http_request_duration_seconds_bucket{method="POST",le="0.005",route="/predict"} 60',
    'http_request_duration_seconds_bucket{le="0.01",route="/predict",method="POST"} 90',
    'http_request_duration_seconds_bucket{le="+Inf",route="/predict",method="POST"} 100',
    'http_request_duration_seconds_bucket{le="0.001",route="/predict/batch",method="POST"} 7',
    'http_request_duration_seconds_bucket{le="+Inf",route="/predict/batch",method="POST"} 7',
    'http_request_duration_seconds_bucket{le="+Inf",route="/odd \\"quoted\\"",method="POST"} 3',
    'http_request_duration_seconds_count{route="/predict",method="POST"} 100',
  ].join("\n");

  it("reads one series' buckets whatever the label order", () => {
    expect(histogram(text, "http_request_duration_seconds", { route: "/predict", method: "POST" })).toEqual([
      { le: 0.001, count: 10 },
      { le: 0.005, count: 60 },
      { le: 0.01, count: 90 },
      { le: Number.POSITIVE_INFINITY, count: 100 },
    ]);
    expect(samples(text, "http_request_duration_seconds_bucket", { route: '/odd "quoted"' })).toEqual(new Map([["", 3]]));
  });

  it("interpolates inside buckets as histogram_quantile does", () => {
    const buckets = histogram(text, "http_request_duration_seconds", { route: "/predict" });
    expect(histogramQuantile(0.05, buckets)).toBeCloseTo(0.0005, 12); // rank 5 of the first 10, from 0
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.0042, 12); // 0.001 + 0.004 · 40/50
    expect(histogramQuantile(0.9, buckets)).toBeCloseTo(0.01, 12);
    expect(histogramQuantile(0.95, buckets)).toBe(0.01); // in +Inf: the highest finite bound
    expect(histogramQuantile(0.5, [])).toBeNaN();
  });

  it("subtracts the scrape before the run; a series absent then counts from zero", () => {
    const after = histogram(text, "http_request_duration_seconds", { route: "/predict" });
    const before = after.map((b) => ({ le: b.le, count: Math.floor(b.count / 2) }));
    expect(delta(before, after).map((b) => b.count)).toEqual([5, 30, 45, 50]);
    expect(delta([], after)).toEqual(after);
    expect(total(delta(before, after))).toBe(50);
  });
});

describe("against a server", () => {
  let app: FastifyInstance;
  let url: string;
  beforeAll(async () => {
    app = await testApp();
    url = await app.listen({ host: "127.0.0.1", port: 0 });
  });
  afterAll(() => app.close());

  it("health, predict, batch", async () => {
    const health = await cli(["--url", url, "health"]);
    expect(health.code).toBe(0);
    expect(health.out).toMatch(/^ok {3}health → 200\n/);
    expect(JSON.parse(health.out.slice(health.out.indexOf("\n"))).status).toBe("ok");

    const predict = await cli(["--url", url, "predict", "--model", "xgboost", "--confidence", "--features", "0.1,0.2,-0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"]);
    expect(predict.code).toBe(0);
    const answer = JSON.parse(predict.out.slice(predict.out.indexOf("\n")));
    expect(answer).toMatchObject({ prediction: expect.any(Number), model_type: "xgboost", confidence: expect.any(Object) });

    const batch = await cli(["--url", url, "batch", "--samples", "3"]);
    expect(batch.code).toBe(0);
    expect(JSON.parse(batch.out.slice(batch.out.indexOf("\n"))).predictions).toHaveLength(3);

    const refused = await cli(["--url", url, "predict", "--features", "1,2,3"]);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/^FAIL predict → 400/);
  });

  it("stream: NDJSON and SSE", async () => {
    // 100 days, window 10: 91 predictions and the closing line (SSE: an event and a data line each).
    const ndjson = await cli(["--url", url, "stream", "--length", "100"]);
    expect(ndjson.code).toBe(0);
    expect(ndjson.out).toContain("ok   stream → 200, 92 lines\n");
    const sse = await cli(["--url", url, "stream", "--length", "100", "--sse"]);
    expect(sse.code).toBe(0);
    expect(sse.out).toContain("ok   stream → 200, 184 lines\n");
  });

  it("performance: the client's latency beside the server's own histogram delta, which counts exactly the requests sent", async () => {
    for (const [endpoint, route] of [
      ["predict", "/predict"],
      ["batch", "/predict/batch"],
    ] as const) {
      const match = { route, method: "POST" };
      const before = histogram(await metricsText(url), "http_request_duration_seconds", match);
      const run = await cli(["--url", url, "performance", "--requests", "300", "--concurrency", "8", "--endpoint", endpoint, "--model", "xgboost"]);
      const served = delta(before, histogram(await metricsText(url), "http_request_duration_seconds", match));
      expect(run.code, run.out).toBe(0);
      expect(total(served)).toBe(300);
      expect(run.out).toMatch(/latency ms\s+p50 [\d.]+\s+p95 [\d.]+\s+p99 [\d.]+\s+max [\d.]+\s+client: sent → answer read, 300 answers/);
      const server = /server ms\s+p50 ([\d.]+)\s+p95 ([\d.]+)\s+p99 ([\d.]+)\s+server: POST (\S+), (\d+) requests, from its histogram/.exec(run.out);
      expect(server, run.out).not.toBeNull();
      const [, p50, p95, p99, printedRoute, count] = server!;
      expect(printedRoute).toBe(route);
      expect(Number(count)).toBe(300);
      expect([p50, p95, p99]).toEqual([0.5, 0.95, 0.99].map((q) => (histogramQuantile(q, served) * 1000).toFixed(2)));
      expect(run.out).toMatch(/client cpu\s+\d+ % of one core/);
      expect(run.out).toContain("errors       none");
    }
  });

  it("performance reads --metrics-url, and says so when the server's metrics cannot be read", async () => {
    const given = await cli(["--url", url, "performance", "--requests", "20", "--metrics-url", `${url}/metrics`]);
    expect(given.out).toMatch(/server ms\s+p50 [\d.]+ .* 20 requests/);
    const missing = await cli(["--url", url, "performance", "--requests", "20", "--metrics-url", `${url}/nothing-here`]);
    expect(missing.code).toBe(0);
    expect(missing.out).toContain(`server ms    unavailable: GET ${url}/nothing-here answered 404 (see --metrics-url)`);
  });

  it("performance against a server with keys: the API key predicts, --metrics-key (or METRICS_API_KEY) reads /metrics", async () => {
    const [apiKey, metricsKey] = ["cli-api-key-0123456789", "cli-metrics-key-0123456789"];
    const keyed = await testApp({ API_KEY: apiKey, METRICS_API_KEY: metricsKey });
    try {
      const keyedUrl = await keyed.listen({ host: "127.0.0.1", port: 0 });
      const run = await cli(["--url", keyedUrl, "--api-key", apiKey, "performance", "--requests", "20", "--metrics-key", metricsKey]);
      expect(run.out).toMatch(/server ms\s+p50 [\d.]+ .* 20 requests/);
      expect(run.out).toContain("errors       none");
      const withoutKey = await cli(["--url", keyedUrl, "--api-key", apiKey, "performance", "--requests", "20"]);
      expect(withoutKey.out).toContain(`server ms    unavailable: GET ${keyedUrl}/metrics answered 401`);
      process.env.METRICS_API_KEY = metricsKey;
      try {
        expect((await cli(["--url", keyedUrl, "--api-key", apiKey, "performance", "--requests", "20"])).out).toMatch(/server ms\s+p50 [\d.]+ .* 20 requests/);
      } finally {
        delete process.env.METRICS_API_KEY;
      }
    } finally {
      await keyed.close();
    }
  });

  it("all: every check passes, and GET /models is asked for the feature shape once per run", async () => {
    const modelsRequests = async () => samples(await metricsText(url), "http_requests_total", { route: "/models" }).get("") ?? 0;
    const before = await modelsRequests();
    const run = await cli(["--url", url, "all", "--requests", "50"]);
    expect(run.code, run.out).toBe(0);
    for (const check of ["ok   health", "ok   models", "ok   predict", "ok   batch", "ok   stream", "errors       none"]) expect(run.out).toContain(check);
    // The models check itself, and the one look at the shape.
    expect((await modelsRequests()) - before).toBe(2);
  });

  it("a multi-channel bundle: predict, stream and performance send its shape, with values its channels take", async () => {
    const vol = await testApp({ MODEL_DIR: VOL_BUNDLE });
    try {
      const volUrl = await vol.listen({ host: "127.0.0.1", port: 0 });
      expect((await cli(["--url", volUrl, "predict"])).out).toMatch(/^ok {3}predict → 200/);
      // 60 days of 8 channels, window 5: 56 predictions and the closing line. The ensemble
      // answers non-finite to negative variances: made-up values must be positive.
      expect((await cli(["--url", volUrl, "stream", "--length", "60"])).out).toContain("ok   stream → 200, 57 lines\n");
      const perf = await cli(["--url", volUrl, "performance", "--requests", "200"]);
      expect(perf.out).toContain("errors       none");
      expect(perf.code).toBe(0);
    } finally {
      await vol.close();
    }
  });

  it("--prices FILE.csv: predict and stream send its days as the bundle reads them, prices or bars", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-prices-"));
    const days = randomBars(80, 4);
    const date = (t: number) => new Date(Date.UTC(2020, 0, 1 + t)).toISOString().slice(0, 10);
    const csv = (fields: string[]) =>
      [["Date", ...fields].join(","), ...days.map((b, t) => [date(t), ...fields.map((f) => b[f.toLowerCase() as keyof typeof b])].join(","))].join("\n");
    const ohlc = join(dir, "ohlc.csv");
    const closes = join(dir, "closes.csv");
    writeFileSync(ohlc, csv(["Open", "High", "Low", "Close"]));
    writeFileSync(closes, csv(["Close"]));
    const answer = (run: { out: string }) => JSON.parse(run.out.slice(run.out.indexOf("\n")));

    // A bundle of closes (the server above): prices.
    const onCloses = await cli(["--url", url, "predict", "--prices", ohlc]);
    expect(onCloses.code, onCloses.out).toBe(0);
    expect(answer(onCloses).input).toBe("prices");

    const ranged = await testApp({ MODEL_DIR: linearBundle(undefined, rangeFeatures(), "range-linear") });
    try {
      const rangedUrl = await ranged.listen({ host: "127.0.0.1", port: 0 });
      const predict = await cli(["--url", rangedUrl, "predict", "--prices", ohlc]);
      expect(predict.code, predict.out).toBe(0);
      expect(answer(predict).input).toBe("bars");
      // 80 days from 54: 27 predictions and the done line.
      expect((await cli(["--url", rangedUrl, "stream", "--prices", ohlc])).out).toContain("ok   stream → 200, 28 lines\n");
      const lacking = await cli(["--url", rangedUrl, "predict", "--prices", closes]);
      expect(lacking.code).toBe(1);
      expect(lacking.out).toBe("FAIL predict: the bundle reads open, high, low, close of each day (GET /models features.inputs); the file has no open, high, low\n");
    } finally {
      await ranged.close();
    }
    expect((await cli(["--url", url, "predict", "--prices", ohlc, "--features", "1"])).err.split("\n")[0]).toBe("wavelet: give --features or --prices, not both");
    expect((await cli(["--url", url, "predict", "--prices", join(dir, "none.csv")])).err.split("\n")[0]).toBe(`wavelet: --prices: cannot read ${join(dir, "none.csv")}: ENOENT`);
  });

  describe("stream against a server that answers in pieces", () => {
    let fake: Server;
    let fakeUrl: string;
    let answer: string[] = [];
    beforeAll(async () => {
      // Writes each piece of `answer` apart, so the client reads them as separate chunks.
      fake = createServer(async (req, res) => {
        if (req.url === "/models") return void res.end(JSON.stringify({ features: { window: 10, channels: ["dn_ret"] } }));
        for (const piece of answer) {
          res.write(piece);
          await new Promise((r) => setTimeout(r, 30));
        }
        res.end();
      });
      await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
      fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise((r) => fake.close(r)));

    it("counts a line cut over two chunks once", async () => {
      answer = ['{"index":0,"predi', 'ction":0.1}\n{"done":true,', '"count":1}\n'];
      const run = await cli(["--url", fakeUrl, "stream"]);
      expect(run.out).toContain("ok   stream → 200, 2 lines\n");
      expect(run.code).toBe(0);
    });

    it("fails when the answer ends with an error instead of the done line or event", async () => {
      answer = ['{"index":0,"prediction":0.1}\n', '{"error":"overloaded","message":"too busy"}\n'];
      const ndjson = await cli(["--url", fakeUrl, "stream"]);
      expect(ndjson.code).toBe(1);
      expect(ndjson.out).toContain('FAIL stream → 200, 2 lines, ending {"error":"overloaded","message":"too busy"}\n');
      answer = ['event: prediction\ndata: {"index":0,"prediction":0.1}\n\n', 'event: error\ndata: {"error":"overloaded"}\n\n'];
      const sse = await cli(["--url", fakeUrl, "stream", "--sse"]);
      expect(sse.code).toBe(1);
      expect(sse.out).toContain("FAIL stream → 200, 4 lines, ending event: error\n");
    });
  });

  it("a server that is not there: each check fails with exit 1, naming the URL", async () => {
    const run = await cli(["--url", "http://127.0.0.1:9", "health"]);
    expect(run.code).toBe(1);
    expect(run.out).toMatch(/^FAIL health: .*\(is the server running at http:\/\/127\.0\.0\.1:9\?\)/);
  });
});
