import cluster from "node:cluster";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify from "fastify";
import { AggregatorRegistry } from "prom-client";
import { buildApp } from "./app.js";
import { type Config, ConfigError, parseConfig } from "./config.js";
import { metricsRoute, registryMetrics } from "./routes/metrics.js";

/**
 * The process: settings, listeners, workers, signals. SIGTERM (or SIGINT) first drains for
 * SHUTDOWN_DELAY_MS: /health answers 503 and everything else is served, each response with
 * Connection: close. Then it stops accepting connections, lets in-flight requests and
 * streams finish within SHUTDOWN_GRACE_MS, and exits 0. With workers, each one does this.
 * SIGHUP reloads the bundle from MODEL_DIR (atomically; a bad bundle changes nothing).
 */

function loadConfig(): Config {
  try {
    return parseConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

async function metricsListener(config: Config, source: () => Promise<{ body: string; contentType: string }>) {
  const app = Fastify({ logger: false });
  await app.register(metricsRoute, { metrics: source });
  await app.listen({ host: config.HOST, port: config.METRICS_PORT! });
  return app;
}

/** SIGTERM comes from Kubernetes or docker stop; SIGINT is Ctrl-C at a terminal, with no load balancer to leave. */
const drainDelay = (config: Config, signal: NodeJS.Signals) => (signal === "SIGINT" ? 0 : config.SHUTDOWN_DELAY_MS);

async function runWorker(config: Config): Promise<void> {
  const separateMetrics = config.ENABLE_METRICS && config.METRICS_PORT !== undefined;
  const app = await buildApp({ config, serveMetrics: !separateMetrics });
  const { registry, metrics } = app.wavelet;
  if (cluster.isWorker) {
    // Answer the primary's metric requests from this app's registry; prom-client installs
    // that listener when an AggregatorRegistry is constructed.
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry();
  }
  if (!config.API_KEY && !config.OAUTH_ISSUER) app.log.warn("no API_KEY or OAUTH_ISSUER set: prediction routes are open; admin routes answer loopback clients only unless ADMIN_API_KEY is set");

  // With workers, the primary serves the combined metrics; a single process serves its own.
  const metricsApp = separateMetrics && cluster.isPrimary ? await metricsListener(config, registryMetrics(metrics.registry)) : undefined;
  await app.listen({ host: config.HOST, port: config.PORT });

  process.on("SIGHUP", () => {
    app.log.info("SIGHUP: reloading bundle");
    registry.reload().catch((err: unknown) => app.log.error({ err }, "reload failed; previous bundle keeps serving"));
  });

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    app.wavelet.beginShutdown();
    // Kubernetes removes the pod from its Service while this runs; until then, and until
    // keep-alive clients have been told to reconnect elsewhere, keep serving.
    const delayMs = drainDelay(config, signal);
    app.log.info({ signal, delayMs }, "shutting down: unready, draining keep-alive clients");
    await sleep(delayMs);
    app.log.info({ graceMs: config.SHUTDOWN_GRACE_MS }, "shutting down: no new connections, finishing in-flight requests");
    const deadline = setTimeout(() => {
      app.log.warn("grace period over; exiting with requests still open");
      process.exit(0);
    }, config.SHUTDOWN_GRACE_MS);
    deadline.unref();
    await Promise.allSettled([app.close(), metricsApp?.close()]);
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

async function runPrimary(config: Config): Promise<void> {
  const log = (msg: string) => process.stderr.write(`${JSON.stringify({ level: 30, time: Date.now(), msg })}\n`);
  const aggregator = new AggregatorRegistry();
  const metricsApp = config.ENABLE_METRICS
    ? await metricsListener(config, async () => ({ body: await aggregator.clusterMetrics(), contentType: aggregator.contentType }))
    : undefined;
  let stopping = false;
  const fork = () => cluster.fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    log(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
    setTimeout(fork, 1000);
  });
  for (let i = 0; i < config.WORKERS; i++) fork();

  const broadcast = (signal: NodeJS.Signals) => Object.values(cluster.workers ?? {}).forEach((w) => w?.process.kill(signal));
  process.on("SIGHUP", () => broadcast("SIGHUP"));
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping ${config.WORKERS} workers`);
    broadcast(signal);
    const deadline = setTimeout(() => process.exit(0), drainDelay(config, signal) + config.SHUTDOWN_GRACE_MS + 1000);
    deadline.unref();
    cluster.on("exit", () => {
      if (Object.keys(cluster.workers ?? {}).length > 0) return;
      void Promise.resolve(metricsApp?.close()).finally(() => process.exit(0));
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

const config = loadConfig();
if (config.WORKERS > 1 && cluster.isPrimary) await runPrimary(config);
else await runWorker(config);
