#!/usr/bin/env node
/**
 * Command-line client for the API (the guide's test_api.py, in TypeScript).
 *
 *   wavelet-client [--url http://localhost:8000] [--api-key K] <command>
 *     health | models
 *     predict [--model ensemble] [--features 0.1,0.2,...] [--confidence]
 *     batch   [--model ensemble] [--samples N] [--confidence]
 *     stream  [--model ensemble] [--length N] [--sse]
 *     performance --requests N --concurrency C [--model xgboost] [--endpoint predict|batch]
 *     all     (every check above, then a short performance run)
 */
import { parseArgs } from "node:util";

const GUIDE_FEATURES = [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

interface Client {
  url: string;
  headers: Record<string, string>;
}

async function call(client: Client, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(client.url + path, {
    method,
    headers: { ...client.headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (e.g. metrics text): keep the text
  }
  return { status: res.status, json };
}

function show(label: string, r: { status: number; json: unknown }): boolean {
  const ok = r.status >= 200 && r.status < 300;
  process.stdout.write(`${ok ? "ok  " : "FAIL"} ${label} → ${r.status}\n${JSON.stringify(r.json, null, 2)}\n`);
  return ok;
}

/** What the served bundle's feature vector looks like (GET /models): `window` days of `channels` values. */
interface Shape {
  window: number;
  channels: number;
}

async function shapeOf(client: Client): Promise<Shape> {
  const r = await call(client, "GET", "/models");
  const features = (r.json as { features?: { window: number; channels?: string[] } }).features;
  if (r.status !== 200 || !features) throw new Error(`GET /models answered ${r.status}: no bundle to learn the feature shape from`);
  return { window: features.window, channels: features.channels?.length ?? 1 };
}

/** A feature vector of the served shape that varies with i, so the cache does not answer. */
function sample(i: number, shape: Shape): number[] {
  return Array.from({ length: shape.window * shape.channels }, (_, j) => Math.sin(i * 0.37 + j) * 0.8);
}

async function stream(client: Client, shape: Shape, model: string, length: number, sse: boolean): Promise<boolean> {
  // One value a day for a one-channel bundle, else one row of a value per channel.
  const day = (i: number) => Math.sin(i / 5) * 0.5;
  const features = Array.from({ length }, (_, i) => (shape.channels === 1 ? day(i) : Array.from({ length: shape.channels }, (_, c) => day(i + c))));
  const res = await fetch(`${client.url}/predict/stream`, {
    method: "POST",
    headers: { ...client.headers, "content-type": "application/json", ...(sse ? { accept: "text/event-stream" } : {}) },
    body: JSON.stringify({ features, window_size: shape.window, model_type: model }),
  });
  if (!res.ok || !res.body) return show("stream", { status: res.status, json: await res.text() });
  let lines = 0;
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    for (const line of decoder.decode(chunk as Uint8Array, { stream: true }).split("\n")) {
      if (line.trim()) {
        lines++;
        if (lines <= 3) process.stdout.write(`${line}\n`);
      }
    }
  }
  process.stdout.write(`ok   stream → ${res.status}, ${lines} lines\n`);
  return true;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function progress(done: number, total: number, started: number): void {
  if (!process.stderr.isTTY && done !== total && done % Math.max(1, Math.floor(total / 10)) !== 0) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  const rate = done / ((performance.now() - started) / 1000);
  process.stderr.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${rate.toFixed(0)} req/s${process.stderr.isTTY ? "" : "\n"}`);
}

async function performanceRun(client: Client, shape: Shape, requests: number, concurrency: number, model: string, endpoint: string): Promise<boolean> {
  const latencies: number[] = [];
  const statuses = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < requests) {
      const i = next++;
      const body = endpoint === "batch" ? { samples: [sample(i, shape), sample(i + 1, shape)], model_type: model } : { features: sample(i, shape), model_type: model };
      const t0 = performance.now();
      let status: string;
      try {
        status = String((await call(client, "POST", endpoint === "batch" ? "/predict/batch" : "/predict", body)).status);
      } catch (error) {
        status = (error as Error).name;
      }
      latencies.push(performance.now() - t0);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      progress(latencies.length, requests, started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const errors = [...statuses].filter(([s]) => s !== "200");
  process.stderr.write("\n");
  process.stdout.write(
    [
      `requests     ${requests} (concurrency ${concurrency}, ${endpoint}, model ${model})`,
      `throughput   ${(requests / seconds).toFixed(1)} req/s over ${seconds.toFixed(2)} s`,
      `latency ms   p50 ${percentile(latencies, 50).toFixed(2)}  p95 ${percentile(latencies, 95).toFixed(2)}  p99 ${percentile(latencies, 99).toFixed(2)}  max ${latencies.at(-1)?.toFixed(2)}`,
      `errors       ${errors.length ? errors.map(([s, n]) => `${s}: ${n}`).join(", ") : "none"}`,
    ].join("\n") + "\n",
  );
  return errors.length === 0;
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string", default: process.env.API_URL ?? "http://localhost:8000" },
      "api-key": { type: "string", default: process.env.API_KEY?.split(",")[0] },
      model: { type: "string", default: "ensemble" },
      features: { type: "string" },
      samples: { type: "string", default: "2" },
      length: { type: "string", default: "100" },
      confidence: { type: "boolean", default: false },
      sse: { type: "boolean", default: false },
      requests: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "16" },
      endpoint: { type: "string", default: "predict" },
      test: { type: "string" },
    },
  });
  const command = values.test ?? positionals[0] ?? "all";
  const client: Client = { url: values.url!.replace(/\/$/, ""), headers: values["api-key"] ? { "x-api-key": values["api-key"] } : {} };
  const model = values.model!;
  // The guide's ten features fit a one-channel bundle; other shapes get a sample of theirs.
  const defaultFeatures = (shape: Shape) => (shape.window * shape.channels === GUIDE_FEATURES.length ? GUIDE_FEATURES : sample(0, shape));
  const checks: Record<string, () => Promise<boolean>> = {
    health: async () => show("health", await call(client, "GET", "/health")),
    models: async () => show("models", await call(client, "GET", "/models")),
    predict: async () => {
      const features = values.features ? values.features.split(",").map(Number) : defaultFeatures(await shapeOf(client));
      return show("predict", await call(client, "POST", "/predict", { features, model_type: model, return_confidence: values.confidence }));
    },
    batch: async () => {
      const shape = await shapeOf(client);
      const samples = Array.from({ length: Number(values.samples) }, (_, i) => sample(i, shape));
      return show("batch", await call(client, "POST", "/predict/batch", { samples, model_type: model, return_confidence: values.confidence }));
    },
    stream: async () => stream(client, await shapeOf(client), model, Number(values.length), values.sse!),
    performance: async () => performanceRun(client, await shapeOf(client), Number(values.requests), Number(values.concurrency), model, values.endpoint!),
  };
  const run = command === "all" ? Object.keys(checks) : [command];
  let ok = true;
  for (const name of run) {
    const check = checks[name];
    if (!check) {
      process.stderr.write(`unknown command ${name}; one of ${Object.keys(checks).join(", ")}, all\n`);
      return 2;
    }
    ok = (await check().catch((error: Error) => {
      process.stdout.write(`FAIL ${name}: ${error.message} (is the server running at ${client.url}?)\n`);
      return false;
    })) && ok;
  }
  return ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(await main(process.argv.slice(2)));
