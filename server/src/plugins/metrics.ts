import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { getHeapStatistics } from "node:v8";
import client from "prom-client";
import type { Limits } from "../limits.js";
import { droppedLogLines } from "../logging.js";

/**
 * Prometheus metrics. Every label is bounded: routes are route patterns (or "unmatched"),
 * models are the models served (fixed at start, countModels), never ids or raw inputs. The registry belongs to one
 * app, so tests and workers never share counters by accident.
 */

// Predictions are percent returns or percent volatilities: a few units either way.
const PREDICTION_BUCKETS = [-10, -5, -3, -2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2, 3, 5, 10];
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface MetricsOptions {
  /** Whether GET /health would answer 200 now; read at each scrape. */
  ready: () => boolean;
  /** Rows waiting in the run queue now; read at each scrape. */
  queuedRows: () => number;
  limits: Limits;
}

export function createMetrics(opts: MetricsOptions) {
  const registry = new client.Registry();
  let counted = 0;
  const m = {
    registry,
    requests: new client.Counter({ name: "http_requests_total", help: "HTTP requests", labelNames: ["route", "method", "status"], registers: [registry] }),
    latency: new client.Histogram({
      name: "http_request_duration_seconds",
      help: "HTTP request latency",
      labelNames: ["route", "method"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    inFlight: new client.Gauge({ name: "http_requests_in_flight", help: "requests being served", aggregator: "sum", registers: [registry] }),
    inferences: new client.Counter({ name: "model_inference_rows_total", help: "rows predicted", labelNames: ["model"], registers: [registry] }),
    inferenceLatency: new client.Histogram({
      name: "model_inference_duration_seconds",
      help: "duration of one ONNX run",
      labelNames: ["model"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    batchSize: new client.Histogram({
      name: "model_batch_size",
      help: "rows per ONNX run",
      labelNames: ["model"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
      registers: [registry],
    }),
    // Gauges say how they combine across workers (the primary's AggregatorRegistry sums by
    // default): one pod serving a bundle reads 1, not one per worker.
    loadSeconds: new client.Gauge({
      name: "model_load_seconds",
      help: "time to load and warm a model (the slowest worker)",
      labelNames: ["model"],
      aggregator: "max",
      registers: [registry],
    }),
    bundleInfo: new client.Gauge({
      name: "model_bundle_info",
      help: "the bundle being served (value 1)",
      labelNames: ["bundle", "version", "digest"],
      aggregator: "max",
      registers: [registry],
    }),
    bundleReady: new client.Gauge({
      name: "model_bundle_ready",
      help: "1 when every configured model is loaded, verified and warmed (GET /health answers 200), else 0",
      aggregator: "min",
      registers: [registry],
      collect() {
        this.set(opts.ready() ? 1 : 0);
      },
    }),
    digestMismatch: new client.Gauge({
      name: "model_bundle_digest_mismatch",
      help: "1 when the last bundle presented (at start or reload) was refused because its digest is not EXPECTED_BUNDLE_DIGEST",
      aggregator: "max",
      registers: [registry],
    }),
    reloads: new client.Counter({ name: "model_reloads_total", help: "bundle reloads", labelNames: ["result"], registers: [registry] }),
    cacheHits: new client.Counter({ name: "prediction_cache_hits_total", help: "cache hits", labelNames: ["backend"], registers: [registry] }),
    cacheMisses: new client.Counter({ name: "prediction_cache_misses_total", help: "cache misses", labelNames: ["backend"], registers: [registry] }),
    rateLimited: new client.Counter({ name: "rate_limited_requests_total", help: "requests refused with 429", registers: [registry] }),
    // Registered by a cluster worker's rate limit (buckets.ts).
    rateLimitPrimaryFallbacks: new client.Counter({
      name: "rate_limit_primary_fallbacks_total",
      help: "rate-limit charges a worker counted alone because the primary did not answer in time",
      registers: [],
    }),
    redisErrors: new client.Counter({ name: "redis_errors_total", help: "failed Redis operations", labelNames: ["operation"], registers: [registry] }),
    redisFallbacks: new client.Counter({
      name: "redis_fallbacks_total",
      help: "operations done without Redis (down, too slow, or skipped by the breaker): cache skipped, rate limit counted locally",
      labelNames: ["operation"],
      registers: [registry],
    }),
    redisTimeouts: new client.Counter({
      name: "redis_timeouts_total",
      help: "Redis calls given up after REDIS_TIMEOUT_MS",
      labelNames: ["operation"],
      registers: [registry],
    }),
    // Registered by connectRedis, so only a server with REDIS_URL exports them.
    redisUp: new client.Gauge({ name: "redis_up", help: "1 when the Redis connection is ready (in every worker)", aggregator: "min", registers: [] }),
    redisBreakerOpen: new client.Gauge({
      name: "redis_breaker_open",
      help: "1 while Redis is skipped after consecutive failures (in any worker)",
      aggregator: "max",
      registers: [],
    }),
    predictions: new client.Histogram({
      name: "prediction_value",
      help: "predicted values, in target units",
      labelNames: ["model"],
      buckets: PREDICTION_BUCKETS,
      registers: [registry],
    }),
    outOfRange: new client.Counter({
      name: "predictions_out_of_training_range_total",
      help: "predictions outside the range of targets the bundle was trained on",
      labelNames: ["model"],
      registers: [registry],
    }),
    // Scheduling and input drift (issue 9).
    // What the operator's custom metrics API serves an HPA as queued_rows (DESIGN §5).
    queuedRows: new client.Gauge({
      name: "model_queued_rows",
      help: "rows waiting in the run queue (admitted, not yet run), across every model",
      aggregator: "sum",
      registers: [registry],
      collect() {
        this.set(opts.queuedRows());
      },
    }),
    queueWait: new client.Histogram({
      name: "model_queue_wait_seconds",
      help: "time a request waited in the run queue before its first rows ran",
      labelNames: ["model"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    inputsOutOfRange: new client.Counter({
      name: "input_features_out_of_range_total",
      help:
        "input drift: feature rows with a value beyond what the bundle's training could produce (reason beyond_training, " +
        "still answered), and requests refused at validation for a non-finite or out-of-bounds feature or price (reason refused)",
      labelNames: ["model", "reason"],
      registers: [registry],
    }),
    // Limits to compare use with (the CPU and memory alerts), the same in every worker.
    cpuLimit: new client.Gauge({
      name: "process_cpu_limit_cores",
      help: "cores this container may use: its cgroup CPU quota (source cgroup), else the machine's cores (source cpus)",
      labelNames: ["source"],
      aggregator: "max",
      registers: [registry],
    }),
    // Registered by the CertificateReloader (tls.ts), so only an HTTPS server exports them.
    tlsReloads: new client.Counter({
      name: "tls_certificate_reloads_total",
      help:
        "TLS certificate reloads (SIGHUP, or TLS_CERT_FILE or TLS_KEY_FILE changed): ok, served; invalid, not a certificate and its key " +
        "or unreadable, refused once per state of the files while the previous pair keeps serving (summed over workers: each reloads its own)",
      labelNames: ["result"],
      registers: [],
    }),
    tlsNotAfter: new client.Gauge({
      name: "tls_certificate_not_after_seconds",
      help: "expiry (notAfter, unix seconds) of the TLS certificate being served (with workers, the earliest any worker serves)",
      aggregator: "min",
      registers: [],
    }),
    // Registered only when the cgroup sets a limit, so an alert can tell "no limit" from 0.
    memoryLimit: new client.Gauge({ name: "process_memory_limit_bytes", help: "the container's cgroup memory limit", aggregator: "max", registers: [] }),
    heapLimit: new client.Gauge({ name: "nodejs_heap_size_limit_bytes", help: "V8's heap size limit (summed over workers)", registers: [registry] }),
    logLinesDropped: new client.Counter({
      name: "log_lines_dropped_total",
      help: "log lines this process could not write (its stdout's reader gone, or not reading and the buffer full)",
      registers: [registry],
      collect() {
        // The process's own count (logging.ts), brought up to date at each scrape.
        const dropped = droppedLogLines();
        this.inc(dropped - counted);
        counted = dropped;
      },
    }),
  };
  client.collectDefaultMetrics({ register: registry });
  m.cpuLimit.set({ source: opts.limits.cpuSource }, opts.limits.cpuCores);
  if (opts.limits.memoryBytes !== undefined) {
    registry.registerMetric(m.memoryLimit);
    m.memoryLimit.set(opts.limits.memoryBytes);
  }
  m.heapLimit.set(getHeapStatistics().heap_size_limit);
  m.cacheHits.inc({ backend: "memory" }, 0);
  m.cacheMisses.inc({ backend: "memory" }, 0);
  m.digestMismatch.set(0);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The models served (known once the bundle at start is read): their counters start at 0, so a rate or ratio is 0 rather than absent. */
export function countModels(m: Metrics, models: readonly string[]): void {
  for (const model of models) {
    m.inferences.inc({ model }, 0);
    m.outOfRange.inc({ model }, 0);
    for (const reason of ["beyond_training", "refused"]) m.inputsOutOfRange.inc({ model, reason }, 0);
  }
}

declare module "fastify" {
  interface FastifyRequest {
    startedAt?: number;
    counted?: boolean;
  }
}

/** Request counters, latency and in-flight gauge for every route. */
export const metricsPlugin = fp(async (app: FastifyInstance, opts: { metrics: Metrics }) => {
  const { metrics } = opts;
  const finish = (request: FastifyRequest, status: number) => {
    if (request.counted) return;
    request.counted = true;
    metrics.inFlight.dec();
    const route = request.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ route, method: request.method, status: String(status) });
    metrics.latency.observe({ route, method: request.method }, (performance.now() - (request.startedAt ?? 0)) / 1000);
  };
  app.addHook("onRequest", async (request, reply) => {
    request.startedAt = performance.now();
    metrics.inFlight.inc();
    // A client that goes away mid-response (a stream, say) gets no onResponse; 499 is the
    // customary "client closed request".
    reply.raw.once("close", () => finish(request, reply.raw.writableFinished ? reply.statusCode : 499));
  });
  app.addHook("onResponse", async (request, reply) => finish(request, reply.statusCode));
});
