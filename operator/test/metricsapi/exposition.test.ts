import client from "prom-client";
import { describe, expect, it } from "vitest";
import { ExpositionError, readServerSample } from "../../src/metricsapi/exposition.js";

/** The families as the server registers them (server/src/plugins/metrics.ts), written by prom-client itself. */
async function serverExposition(requests: { route: string; method: string; status: string; n: number }[], queued?: number): Promise<string> {
  const registry = new client.Registry();
  const counter = new client.Counter({ name: "http_requests_total", help: "HTTP requests", labelNames: ["route", "method", "status"], registers: [registry] });
  const latency = new client.Histogram({ name: "http_request_duration_seconds", help: "HTTP request latency", labelNames: ["route", "method"], registers: [registry] });
  for (const { n, ...labels } of requests) {
    counter.inc(labels, n);
    latency.observe({ route: labels.route, method: labels.method }, 0.01);
  }
  if (queued !== undefined) new client.Gauge({ name: "model_queued_rows", help: "rows waiting in the run queue", registers: [registry] }).set(queued);
  new client.Gauge({ name: "model_bundle_info", help: "the bundle being served", labelNames: ["bundle", "version", "digest"], registers: [registry] }).set(
    { bundle: "spx", version: "1", digest: "sha256:abc" },
    1,
  );
  return registry.metrics();
}

const TRAFFIC = [
  { route: "/predict", method: "POST", status: "200", n: 40 },
  { route: "/predict", method: "POST", status: "422", n: 2 },
  { route: "/predict/batch", method: "POST", status: "200", n: 5 },
  { route: "/predict/stream", method: "POST", status: "200", n: 3 },
  { route: "/health", method: "GET", status: "200", n: 900 },
  { route: "/livez", method: "GET", status: "200", n: 300 },
  { route: "/metrics", method: "GET", status: "200", n: 100 },
  { route: "unmatched", method: "GET", status: "404", n: 7 },
];

describe("readServerSample", () => {
  it("counts the prediction routes only, any method and status, and reads the queue", async () => {
    expect(readServerSample(await serverExposition(TRAFFIC, 12))).toEqual({ requests: 50, queuedRows: 12 });
  });

  it("reads what the primary writes for several workers (their sum)", async () => {
    const registry = client.AggregatorRegistry.aggregate([await oneWorker(10, 2), await oneWorker(15, 3)]);
    expect(readServerSample(await registry.metrics())).toEqual({ requests: 25, queuedRows: 5 });
  });

  it("leaves queuedRows out when the server does not export it (an older image)", async () => {
    const sample = readServerSample(await serverExposition(TRAFFIC));
    expect(sample).toEqual({ requests: 50 });
    expect("queuedRows" in sample).toBe(false);
  });

  it("answers 0 for a server that has served no prediction yet, with or without other series", async () => {
    expect(readServerSample(await serverExposition([], 0))).toEqual({ requests: 0, queuedRows: 0 });
    expect(readServerSample(await serverExposition([{ route: "/health", method: "GET", status: "200", n: 3 }]))).toEqual({ requests: 0 });
  });

  it("unescapes label values and is not fooled by quotes, commas or braces inside them", async () => {
    const text = await serverExposition([
      { route: '/predict"', method: "POST", status: "200", n: 1000 },
      { route: "/predict\\", method: "POST", status: "200", n: 1000 },
      { route: "/predict\n", method: "POST", status: "200", n: 1000 },
      { route: "/predict", method: "POST", status: "200", n: 4 },
    ]);
    expect(text).toContain(String.raw`route="/predict\"",`);
    expect(text).toContain(String.raw`route="/predict\\",`);
    expect(text).toContain(String.raw`route="/predict\n",`);
    expect(readServerSample(text)).toEqual({ requests: 4 });
    const tricky = [
      String.raw`http_requests_total{method="a,b}c\"d",route="/predict",status="200"} 3`,
      String.raw`http_requests_total{route="/pre\\dict",status="200"} 100`,
      String.raw`http_requests_total{route="/predict\"",status="200"} 100`,
      String.raw`http_requests_total { route = "/predict/batch" , } 2`,
    ].join("\n");
    expect(readServerSample(tricky)).toEqual({ requests: 5 });
  });

  it("takes timestamps, exponents, NaN and infinities where the format allows them", () => {
    const text = [
      "# HELP http_requests_total HTTP requests",
      "# TYPE http_requests_total counter",
      'http_requests_total{route="/predict",method="POST",status="200"} 1.5e3 1700000000000',
      'http_requests_total{route="/health",method="GET",status="200"} +Inf',
      'http_requests_total{route="/livez",method="GET",status="200"} NaN -5',
      "# a free comment",
      "",
      "   ",
      "other_gauge Nan",
      "other_gauge{x=\"y\"} -Inf",
      "model_queued_rows 7 1700000000000",
      "",
    ].join("\n");
    expect(readServerSample(text)).toEqual({ requests: 1500, queuedRows: 7 });
  });

  it("has no queue length when the gauge is not a count", () => {
    const base = 'http_requests_total{route="/predict"} 1\n';
    expect(readServerSample(`${base}model_queued_rows Nan\n`)).toEqual({ requests: 1 });
    expect(readServerSample(`${base}model_queued_rows +Inf\n`)).toEqual({ requests: 1 });
    expect(readServerSample(`${base}model_queued_rows -1\n`)).toEqual({ requests: 1 });
  });

  it("refuses a body without http_requests_total: an error page, an empty body, another exporter", () => {
    for (const text of ["", "<html><body>502 Bad Gateway</body></html>", "not found", "# HELP go_goroutines x\ngo_goroutines 12\n", "model_queued_rows 3\n"]) {
      expect(() => readServerSample(text), JSON.stringify(text)).toThrow(ExpositionError);
    }
  });

  it.each([
    ["an unterminated label set", 'http_requests_total{route="/predict" 5'],
    ["an unterminated value", 'http_requests_total{route="/predict} 5'],
    ["an unknown escape", String.raw`http_requests_total{route="/pre\dict"} 5`],
    ["an unquoted label value", "http_requests_total{route=/predict} 5"],
    ["a label without a value", 'http_requests_total{route} 5'],
    ["no separator between labels", 'http_requests_total{route="/predict" method="POST"} 5'],
    ["no value", 'http_requests_total{route="/predict"}'],
    ["a value that is no number", 'http_requests_total{route="/predict"} five'],
    ["a timestamp that is no integer", 'http_requests_total{route="/predict"} 5 1.5'],
    ["more than a value and a timestamp", 'http_requests_total{route="/predict"} 5 1 2'],
    ["a negative request count", 'http_requests_total{route="/predict"} -5'],
    ["a request count that is NaN", 'http_requests_total{route="/predict"} NaN'],
    ["a queue length that is no number", 'model_queued_rows{} x'],
    ["a line of another family that is no sample", "<html>"],
    ["a metric name starting with a digit", "9lives 1"],
  ])("refuses a line with %s", (_, line) => {
    const text = `# TYPE http_requests_total counter\nhttp_requests_total{route="/health"} 1\n${line}\n`;
    expect(() => readServerSample(text)).toThrow(ExpositionError);
    expect(() => readServerSample(text)).toThrow(/^line 3 /);
  });

  it("reads a large exposition of many other families without their labels getting in the way", async () => {
    const others = Array.from({ length: 3000 }, (_, i) => `model_inference_duration_seconds_bucket{model="m${i % 7}",le="${i}"} ${i}`);
    const text = `${others.join("\n")}\n${await serverExposition(TRAFFIC, 1)}`;
    expect(text.length).toBeGreaterThan(100_000);
    expect(readServerSample(text)).toEqual({ requests: 50, queuedRows: 1 });
  });
});

async function oneWorker(requests: number, queued: number) {
  const registry = new client.Registry();
  new client.Counter({ name: "http_requests_total", help: "HTTP requests", labelNames: ["route", "method", "status"], registers: [registry] }).inc(
    { route: "/predict", method: "POST", status: "200" },
    requests,
  );
  new client.Gauge({ name: "model_queued_rows", help: "rows waiting", aggregator: "sum", registers: [registry] }).set(queued);
  return registry.getMetricsAsJSON();
}
