import { randomUUID } from "node:crypto";
import type { Server as HttpsServer } from "node:https";
import cors from "@fastify/cors";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { validatorCompiler } from "fastify-type-provider-zod";
import type { Redis } from "ioredis";
import type { RemoteCharge } from "./buckets.js";
import { type Config, defaultModel, MODEL_TYPES } from "./config.js";
import { Predictor } from "./inference/predictor.js";
import { DigestMismatch, ModelRegistry } from "./inference/registry.js";
import { Scheduler } from "./inference/scheduler.js";
import { containerLimits, type Limits } from "./limits.js";
import { loggerOptions } from "./logging.js";
import { authPlugin, securitySchemes } from "./plugins/auth.js";
import { PredictionCache } from "./plugins/cache.js";
import { docsPlugin } from "./plugins/docs.js";
import { errorsPlugin } from "./plugins/errors.js";
import { countModels, createMetrics, type Metrics, metricsPlugin } from "./plugins/metrics.js";
import { rateLimitPlugin } from "./plugins/rateLimit.js";
import { securityHeadersPlugin } from "./plugins/securityHeaders.js";
import { RedisGuard, connectRedis } from "./plugins/redis.js";
import { adminRoutes } from "./routes/admin.js";
import { healthRoutes } from "./routes/health.js";
import { metricsRoute, registryMetrics } from "./routes/metrics.js";
import { predictRoutes } from "./routes/predict.js";
import { proxyTrust } from "./proxies.js";
import { localReload, type Reload } from "./reloads.js";
import { CertificateReloader, type TlsContext } from "./tls.js";
import { DEFAULT_SHAPE, describeShape, type FeatureShape, featureShape, servesShape } from "./schemas/api.js";

export const API_VERSION = "1.0.0";

export interface BuildOptions {
  config: Config;
  /** pino options, or false for silence (tests). */
  logger?: FastifyServerOptions["logger"];
  /** Whether /metrics is served by this app (false when a separate listener serves it). */
  serveMetrics?: boolean;
  /**
   * Serve HTTPS with this certificate and key, read from TLS_CERT_FILE and TLS_KEY_FILE: those
   * files are then polled every TLS_RELOAD_INTERVAL_MS and a new pair in them served (tls.ts).
   */
  https?: TlsContext | undefined;
  /** How /admin/reload reloads: this process's registry unless a cluster worker asks its primary. */
  reload?: Reload | undefined;
  /** A cluster worker's charge to the rate-limit buckets its primary holds for every worker. */
  rateLimitPrimary?: RemoteCharge | undefined;
  /** CPU and memory limits for the metrics; read from the cgroup when not given. */
  limits?: Limits;
}

export interface WaveletApp {
  registry: ModelRegistry;
  metrics: Metrics;
  /** The process's one queue of model runs. */
  scheduler: Scheduler;
  redis: Redis | undefined;
  /**
   * Health turns 503 from here on, so load balancers stop sending new requests, and every
   * response says Connection: close, so keep-alive clients reconnect (to another pod).
   */
  beginShutdown(): void;
  /** SIGHUP: serve the TLS certificate and key the files hold now (a bad pair keeps the current one); nothing without HTTPS. */
  reloadCertificate(): void;
}

declare module "fastify" {
  interface FastifyInstance {
    wavelet: WaveletApp;
  }
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The whole HTTP API, bundle loaded, not listening: server.ts and tests decide that. */
export async function buildApp(opts: BuildOptions): Promise<FastifyInstance> {
  const { config } = opts;
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    logger: opts.logger ?? loggerOptions(config.LOG_LEVEL),
    bodyLimit: config.BODY_LIMIT,
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    // The caller's X-Request-Id is kept only if it is safe to log and echo (no requestIdHeader:
    // with it, Fastify takes the header as it comes and never calls genReqId).
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    trustProxy: proxyTrust(config.TRUST_PROXY),
    // Bodies are parsed by plain JSON.parse: every body then goes through a strict zod
    // schema that rejects unknown keys (__proto__ and constructor included) and builds
    // fresh objects, so the per-request regex scans for poisoned keys buy nothing.
    onProtoPoisoning: "ignore",
    onConstructorPoisoning: "ignore",
    // A request still arriving on an open connection after close() (its headers were on
    // the way) is served like any other: a drain must not fail requests.
    return503OnClosing: false,
  });
  app.setValidatorCompiler(validatorCompiler);
  // Responses are built by typed handlers from the same schemas; validating them again on
  // the hot path would cost more than the model run. The schemas still document them.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  const metrics = createMetrics({
    ready: () => !shuttingDown && registry.readiness().ready,
    queuedRows: () => scheduler.queuedRows,
    limits: opts.limits ?? containerLimits(),
  });
  const redis = config.REDIS_URL ? connectRedis(config.REDIS_URL, app.log, metrics) : undefined;
  const redisGuard = redis && new RedisGuard(redis, { timeoutMs: config.REDIS_TIMEOUT_MS, threshold: config.REDIS_BREAKER_THRESHOLD, cooldownMs: config.REDIS_BREAKER_COOLDOWN_MS }, metrics, app.log);
  let shuttingDown = false;
  let shape: FeatureShape | undefined;
  const scheduler = new Scheduler({
    coalesce: config.MICRO_BATCH,
    maxRows: config.MICRO_BATCH_MAX,
    waitMs: config.MICRO_BATCH_WAIT_MS,
    maxQueuedRows: config.MAX_QUEUED_ROWS,
    onWait: (model, seconds) => metrics.queueWait.observe({ model }, seconds),
  });
  const registry = new ModelRegistry({
    modelDir: config.MODEL_DIR,
    bundleName: config.MODEL_BUNDLE,
    bundle: {
      models: config.MODELS,
      quantized: config.QUANTIZED,
      onLoad: (model, seconds) => metrics.loadSeconds.set({ model }, seconds),
    },
    // With no bundle at start, the API is published for the guide's models (and DEFAULT_MODEL).
    fallbackModels: [...new Set([...MODEL_TYPES, ...(config.DEFAULT_MODEL ? [config.DEFAULT_MODEL] : [])])],
    loading: config.MODEL_LOADING,
    runner: {
      scheduler,
      onRun: (model, rows, seconds) => {
        metrics.inferences.inc({ model }, rows);
        metrics.inferenceLatency.observe({ model }, seconds);
        metrics.batchSize.observe({ model }, rows);
      },
    },
    expectedDigest: config.EXPECTED_BUNDLE_DIGEST,
    timeoutMs: config.RELOAD_TIMEOUT_MS,
    log: app.log,
    onSwap: (next) => {
      metrics.bundleInfo.reset();
      metrics.bundleInfo.set({ bundle: next.name, version: next.version, digest: next.digest }, 1);
      metrics.reloads.inc({ result: "ok" });
      metrics.digestMismatch.set(0);
    },
    onReloadFailed: (error) => {
      metrics.reloads.inc({ result: "failed" });
      metrics.digestMismatch.set(error instanceof DigestMismatch ? 1 : 0);
    },
    accept: (bundle) => {
      // MODELS unset, at start: the bundle's models are served, DEFAULT_MODEL must be one.
      const wanted = config.DEFAULT_MODEL;
      if (!shape && wanted && !bundle.isConfigured(wanted)) {
        return `bundle ${bundle.name} has no model ${wanted} (it holds ${bundle.options.models.join(", ")}), which DEFAULT_MODEL names`;
      }
      const offered = featureShape(bundle.manifest.features);
      return shape && !servesShape(shape, offered)
        ? `bundle ${bundle.name} takes ${describeShape(offered)}, ` +
            `the API this process publishes takes ${describeShape(shape)}; restart the server to serve it`
        : undefined;
    },
  });
  const { TLS_CERT_FILE, TLS_KEY_FILE } = config;
  const certificate =
    opts.https && TLS_CERT_FILE && TLS_KEY_FILE
      ? new CertificateReloader(app.server as unknown as HttpsServer, { ...config, TLS_CERT_FILE, TLS_KEY_FILE }, app.log, metrics, opts.https)
      : undefined;
  certificate?.start(config.TLS_RELOAD_INTERVAL_MS);
  app.decorate("wavelet", {
    registry,
    metrics,
    scheduler,
    redis,
    beginShutdown: () => (shuttingDown = true),
    reloadCertificate: () => certificate?.reload(),
  } satisfies WaveletApp);
  app.addHook("onRequest", (_request, reply, done) => {
    if (shuttingDown) void reply.header("connection", "close");
    done();
  });
  app.addHook("onClose", async () => {
    certificate?.stop();
    await registry.close();
    redis?.disconnect();
  });

  await registry.start();
  const first = registry.serving?.bundle;
  shape = first ? featureShape(first.manifest.features) : DEFAULT_SHAPE;
  // Fixed for the process's lifetime, as the API it publishes and the metrics' labels.
  const models = registry.models;
  countModels(metrics, models);
  // model_type takes the models served; with MODELS set, the guide's too (one not loaded answers 503, as the guide shows).
  const modelTypes = config.MODELS ? [...new Set([...MODEL_TYPES, ...models])] : models;

  await app.register(errorsPlugin);
  await app.register(metricsPlugin, { metrics });
  await app.register(securityHeadersPlugin, { hstsIncludeSubDomains: config.HSTS_INCLUDE_SUBDOMAINS });
  if (config.ALLOWED_ORIGINS.length) {
    await app.register(cors, {
      origin: config.ALLOWED_ORIGINS.includes("*") ? true : config.ALLOWED_ORIGINS,
      methods: ["GET", "POST"],
      allowedHeaders: ["Content-Type", "X-API-Key", "Authorization", "X-Request-Id"],
      exposedHeaders: ["X-Request-Id", "Retry-After", "WWW-Authenticate", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Bundle-Name", "X-Bundle-Version", "X-Bundle-Digest"],
      maxAge: 600,
    });
  }
  await app.register(authPlugin, { config });
  await app.register(rateLimitPlugin, {
    max: { predict: config.RATE_LIMIT_MAX, admin: config.ADMIN_RATE_LIMIT_MAX },
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    redis: redisGuard,
    primary: opts.rateLimitPrimary,
    metrics,
  });
  await app.register(docsPlugin, { version: API_VERSION, securitySchemes: securitySchemes(config) });

  const cache = new PredictionCache(config.CACHE_TTL, config.CACHE_MAX_ENTRIES, redisGuard, metrics);
  await app.register(predictRoutes, {
    registry,
    predictor: new Predictor(metrics),
    cache,
    metrics,
    limits: { maxBatchSamples: config.MAX_BATCH_SAMPLES, maxStreamLength: config.MAX_STREAM_LENGTH },
    streams: { max: config.MAX_STREAMS, chunkRows: config.MICRO_BATCH_MAX, stallMs: config.STREAM_STALL_TIMEOUT_MS, idleMs: config.STREAM_IDLE_TIMEOUT_MS },
    shape,
    modelTypes,
    defaultModel: config.DEFAULT_MODEL ?? defaultModel(models, first?.manifest.default_model),
    intervals: first ? models.every((model) => first.entry(model).calibration) : true,
  });
  await app.register(healthRoutes, {
    registry,
    loading: config.MODEL_LOADING,
    startedAt: Date.now(),
    shuttingDown: () => shuttingDown,
  });
  await app.register(adminRoutes, { reload: opts.reload ?? localReload(registry), allowedOrigins: config.ALLOWED_ORIGINS });
  if (config.ENABLE_METRICS && opts.serveMetrics !== false) {
    await app.register(metricsRoute, { metrics: registryMetrics(metrics.registry) });
  }

  await app.ready();
  return app;
}
