import { spawnSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { main as client } from "../src/client/cli.js";
import { GUIDE_FEATURES, RETURN_BUNDLE, SERVER_JS, VOL_BUNDLE, copyBundle, freePort, startServer, waitFor } from "./helpers.js";

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

  it("SIGTERM: after SHUTDOWN_DELAY_MS stops accepting, finishes the in-flight stream, exits 0", async () => {
    const server = await startServer({ SHUTDOWN_DELAY_MS: "300", SHUTDOWN_GRACE_MS: "15000", CACHE_TTL: "0", BODY_LIMIT: String(32 << 20), MAX_STREAM_LENGTH: "1000000" });
    const features = Array.from({ length: 300_000 }, (_, i) => Math.sin(i / 9));
    const stream = await post(`${server.url}/predict/stream`, { features, window_size: 10, model_type: "transformer" });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read(); // the stream has started
    server.child.kill("SIGTERM");
    // New connections are refused once the delay is over, while the stream goes on.
    await waitFor("new connections refused", () => fetch(`${server.url}/health`).then(() => false, () => true), 5000);
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

  it("SIGHUP reloads the bundle from MODEL_DIR", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const server = await startServer({ MODEL_DIR: dir });
    rmSync(dir, { recursive: true });
    cpSync(VOL_BUNDLE, dir, { recursive: true });
    server.child.kill("SIGHUP");
    const bundleName = async () => ((await (await fetch(`${server.url}/health`)).json()) as { bundle: { name: string } }).bundle.name;
    await waitFor("reload", async () => ((await bundleName()) === "spx-vol-5d" ? true : undefined), 10_000);
    server.child.kill("SIGTERM");
    expect((await server.exit).code).toBe(0);
  }, 30_000);

  it("WORKERS=2 serves from two processes and the primary serves their combined metrics", async () => {
    const metricsPort = await freePort();
    const server = await startServer({ WORKERS: "2", METRICS_PORT: String(metricsPort), CACHE_TTL: "0" });
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
