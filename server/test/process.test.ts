import { spawnSync } from "node:child_process";
import { type IncomingMessage, request } from "node:http";
import { describe, expect, it } from "vitest";
import { main as client } from "../src/client/cli.js";
import { GUIDE_FEATURES, RETURN_BUNDLE, SERVER_JS, copyBundle, freePort, fresh, nextVersion, replaceBundle, startServer, waitFor } from "./helpers.js";

/** The block of URLs the server prints once it listens. */
const printedUrls = (output: string) => /^wavelet server listening .*\n(?: {2}.*\n){3}/m.exec(output)?.[0];

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

describe("the server process", () => {
  it("refuses to start on bad settings, naming them", () => {
    const run = spawnSync(process.execPath, [SERVER_JS], { env: { ...process.env, PORT: "99999", CACHE_TTL: "-1" }, encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("invalid configuration");
    expect(run.stderr).toContain("PORT=");
    expect(run.stderr).toContain("CACHE_TTL=");
  });

  it("a refused setting never prints the credentials of a URL (issue 22, item 11)", () => {
    const env = {
      REDIS_URL: "http://:s3cretpass@redis:6379",
      OAUTH_ISSUER: "ftp://issuer-user:issuer-pass@login.example/realm?client_secret=query-secret",
      OAUTH_AUDIENCE: "wavelet",
      TLS_CERT_FILE: "/tmp/cert.pem",
    };
    const run = spawnSync(process.execPath, [SERVER_JS], { env: { ...process.env, ...env }, encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('REDIS_URL="http://***@redis:6379"');
    expect(run.stderr).toContain('OAUTH_ISSUER="ftp://***@login.example/realm?client_secret=***"');
    expect(run.stderr).toContain("TLS_CERT_FILE=");
    for (const secret of ["s3cretpass", "issuer-user", "issuer-pass", "query-secret"]) expect(run.stderr).not.toContain(secret);
  });

  it("SIGTERM: serves (health 503) for SHUTDOWN_DELAY_MS, then stops accepting, finishes the in-flight stream, exits 0", async () => {
    const server = await startServer({ SHUTDOWN_DELAY_MS: "4000", SHUTDOWN_GRACE_MS: "30000", CACHE_TTL: "0", BODY_LIMIT: String(32 << 20), MAX_STREAM_LENGTH: "1000000" });
    const features = Array.from({ length: 300_000 }, (_, i) => Math.sin(i / 9));
    const stream = await post(`${server.url}/predict/stream`, { features, window_size: 10, model_type: "transformer" });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read(); // the stream has started
    server.child.kill("SIGTERM");
    // During the delay: unready, yet a new connection is accepted and served.
    const health = await waitFor("/health 503", async () => {
      const res = await fresh(`${server.url}/health`);
      return res.status === 503 ? res : undefined;
    }, 3000);
    expect(JSON.parse(health.body).reasons).toContain("shutting down");
    expect((await fresh(`${server.url}/predict`, { body: { features: GUIDE_FEATURES } })).status).toBe(200);
    // Then new connections are refused, while the stream goes on to its end.
    await waitFor("new connections refused", () => fresh(`${server.url}/health`).then(() => false, () => true), 10_000);
    let text = "";
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text.trim().split("\n").at(-1)).toBe(JSON.stringify({ done: true, count: features.length - 9 }));
    expect(await server.exit).toEqual({ code: 0, signal: null });
  }, 60_000);

  for (const [name, env] of [
    ["", {}],
    [" (WORKERS=2: the primary's exit code says a worker cut one)", { WORKERS: "2" }],
  ] as const) {
    it(`SIGTERM: a stream still open when SHUTDOWN_GRACE_MS ends is cut and the exit code is 1${name}`, async () => {
      const metrics: Record<string, string> = "WORKERS" in env ? { METRICS_PORT: String(await freePort()) } : {};
      const server = await startServer({ ...env, ...metrics, SHUTDOWN_DELAY_MS: "0", SHUTDOWN_GRACE_MS: "1000", CACHE_TTL: "0", BODY_LIMIT: String(64 << 20), MAX_STREAM_LENGTH: "2000000" });
      // A client that stops reading: its answer (~40 MB) cannot fit in the socket buffers,
      // so the stream stays open however long the server waits.
      const features = Array.from({ length: 1_000_000 }, (_, i) => Math.sin(i / 9));
      const started = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(`${server.url}/predict/stream`, { method: "POST", agent: false, headers: { "content-type": "application/json" } }, (res) => {
          res.once("data", () => (res.pause(), resolve(res)));
        });
        req.on("error", reject);
        req.end(JSON.stringify({ features, window_size: 10, model_type: "xgboost" }));
      });
      expect(started.statusCode).toBe(200);
      server.child.kill("SIGTERM");
      expect(await server.exit).toEqual({ code: 1, signal: null });
      expect(server.output()).toContain("grace period over");
      started.destroy();
    }, 60_000);
  }

  it("SIGHUP reloads the bundle from MODEL_DIR", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const server = await startServer({ MODEL_DIR: dir });
    const next = nextVersion();
    replaceBundle(dir, next.dir);
    server.child.kill("SIGHUP");
    const version = async () => ((await (await fetch(`${server.url}/health`)).json()) as { bundle: { version: string } }).bundle.version;
    await waitFor("reload", async () => ((await version()) === next.version ? true : undefined), 10_000);
    server.child.kill("SIGTERM");
    expect((await server.exit).code).toBe(0);
  }, 30_000);

  it("prints the URLs of the API, /docs and /metrics once it listens, a wildcard host as localhost", async () => {
    const server = await startServer({ HOST: "0.0.0.0", LOG_LEVEL: "info" });
    const block = await waitFor("the URLs", async () => printedUrls(server.output()), 5000);
    const base = `http://localhost:${server.port}`;
    expect(block).toBe(`wavelet server listening (1 process)\n  API      ${base}\n  docs     ${base}/docs\n  metrics  ${base}/metrics\n`);
    for (const url of [`${base}/health`, `${base}/docs`, `${base}/metrics`]) expect((await fetch(url)).status, url).toBe(200);
    server.child.kill("SIGINT");
    await server.exit;
    expect(server.output().split("wavelet server listening")).toHaveLength(2);
  }, 30_000);

  it("WORKERS=2 serves from two processes and the primary serves their combined metrics", async () => {
    const metricsPort = await freePort();
    const server = await startServer({ WORKERS: "2", METRICS_PORT: String(metricsPort), CACHE_TTL: "0", LOG_LEVEL: "info" });
    // The primary prints the URLs once both workers listen, /metrics on its own port.
    const block = await waitFor("the URLs", async () => printedUrls(server.output()), 10_000);
    expect(block).toContain(`wavelet server listening (2 workers)\n  API      ${server.url}\n`);
    expect(block).toContain(`  metrics  http://127.0.0.1:${metricsPort}/metrics\n`);
    const output = server.output();
    expect(output.slice(0, output.indexOf(block)).match(/"msg":"Server listening at /g)).toHaveLength(2);
    const responses = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`${server.url}/predict`, { features: GUIDE_FEATURES.map((v) => v + i) })));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const metrics = await waitFor("aggregated metrics", async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const total = Number(/http_requests_total\{route="\/predict",method="POST",status="200"\} (\d+)/.exec(text)?.[1] ?? 0);
      return total === 40 ? text : undefined;
    }, 10_000);
    expect(metrics).toContain("model_inference_rows_total");
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404); // not on the API port
    server.child.kill("SIGTERM");
    expect((await server.exit).code).toBe(0);
  }, 60_000);

  it("the client CLI checks a running server and measures it", async () => {
    const server = await startServer({});
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stdout.write;
    let code: number;
    try {
      code = await client(["--url", server.url, "all", "--requests", "200", "--concurrency", "8", "--confidence"]);
    } finally {
      process.stdout.write = write;
    }
    const out = lines.join("");
    expect(code).toBe(0);
    for (const check of ["ok   health", "ok   models", "ok   predict", "ok   batch", "ok   stream"]) expect(out).toContain(check);
    expect(out).toMatch(/throughput\s+[\d.]+ req\/s/);
    expect(out).toMatch(/latency ms\s+p50 [\d.]+\s+p95 [\d.]+\s+p99 [\d.]+/);
    expect(out).toContain("errors       none");
    server.child.kill("SIGTERM");
    await server.exit;
  }, 30_000);
});
