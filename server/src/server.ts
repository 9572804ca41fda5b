import cluster from "node:cluster";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify from "fastify";
import { AggregatorRegistry } from "prom-client";
import { buildApp } from "./app.js";
import { holdBuckets, primaryBuckets } from "./buckets.js";
import { type Config, ConfigError, parseConfig } from "./config.js";
import { GuideLayoutError, guideLayoutMessage, locateBundle } from "./inference/bundle.js";
import { logOutput } from "./logging.js";
import { authPlugin } from "./plugins/auth.js";
import { errorsPlugin } from "./plugins/errors.js";
import { askPrimary, coordinateReloads, serveReloads } from "./reloads.js";
import { metricsRoute, registryMetrics } from "./routes/metrics.js";
import { readTls, type TlsContext } from "./tls.js";

/**
 * The process: settings, listeners, workers, signals. SIGTERM (or SIGINT) first drains for
 * SHUTDOWN_DELAY_MS: /health answers 503 and everything else is served, each response with
 * Connection: close. Then it stops accepting connections and lets in-flight requests and
 * streams finish within SHUTDOWN_GRACE_MS: exit 0 if they all did, 1 if some had to be cut.
 * With workers, each one does this and the primary exits 1 if any worker did not exit 0.
 * SIGHUP reloads the bundle from MODEL_DIR (atomically in every worker, see reloads.ts; a
 * bad bundle changes nothing) and the TLS certificate, which is also reloaded, with no
 * signal, when its files change (tls.ts).
 */

/** Exit code of a shutdown that had to cut requests or streams still open at the end of the grace period. */
const EXIT_CUT = 1;

function loadConfig(): { config: Config; tls: TlsContext | undefined } {
  try {
    const config = parseConfig(process.env);
    return { config, tls: readTls(config) };
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/**
 * A MODEL_DIR holding the deployment guide's raw model files, and no bundle, is a setup to fix
 * before serving: like a bad setting, it stops the process with one line (exit 2), here with
 * the import command. Any other problem with MODEL_DIR leaves the server up and unready, /health saying why.
 */
async function refuseGuideLayout(config: Config): Promise<void> {
  const error = await locateBundle(config.MODEL_DIR, config.MODEL_BUNDLE).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof GuideLayoutError)) return;
  process.stderr.write(`${guideLayoutMessage(error.found, config.MODEL_DIR)}\n`);
  process.exit(2);
}

/** METRICS_PORT: /metrics alone, guarded by METRICS_API_KEY when it is set (auth.ts). */
async function metricsListener(config: Config, source: () => Promise<{ body: string; contentType: string }>) {
  const app = Fastify({ logger: false });
  await app.register(errorsPlugin);
  await app.register(authPlugin, { config, listener: "metrics" });
  await app.register(metricsRoute, { metrics: source });
  await app.listen({ host: config.HOST, port: config.METRICS_PORT! });
  return app;
}

/** The origin of a bound socket; a wildcard address is shown as localhost, where a browser on this machine finds it. */
function origin(scheme: "http" | "https", { address, port }: Pick<AddressInfo, "address" | "port">): string {
  const host = address === "0.0.0.0" || address === "::" ? "localhost" : address.includes(":") ? `[${address}]` : address;
  return `${scheme}://${host}:${port}`;
}

/**
 * Once everything listens, the URLs a person who started the server wants, as one plain block
 * (the rest of the output is JSON logs for machines); quiet below LOG_LEVEL=info like any info line.
 */
function printUrls(config: Config, api: Pick<AddressInfo, "address" | "port">, metrics: AddressInfo | undefined): void {
  if (!["info", "debug", "trace"].includes(config.LOG_LEVEL)) return;
  const apiOrigin = origin(config.TLS_CERT_FILE ? "https" : "http", api);
  // Without a listener of its own, /metrics is on the API port (or off).
  const metricsOrigin = metrics ? origin("http", metrics) : config.ENABLE_METRICS ? apiOrigin : undefined;
  const processes = config.WORKERS > 1 ? `${config.WORKERS} workers` : "1 process";
  logOutput(1).write(
    `wavelet server listening (${processes})\n` +
      `  API      ${apiOrigin}\n` +
      `  docs     ${apiOrigin}/docs\n` +
      `  metrics  ${metricsOrigin ? `${metricsOrigin}/metrics` : "off (ENABLE_METRICS=false)"}\n`,
  );
}

/** SIGTERM comes from Kubernetes or docker stop; SIGINT is Ctrl-C at a terminal, with no load balancer to leave. */
const drainDelay = (config: Config, signal: NodeJS.Signals) => (signal === "SIGINT" ? 0 : config.SHUTDOWN_DELAY_MS);

async function runWorker(config: Config, tls: TlsContext | undefined): Promise<void> {
  // Until it serves, a signal to stop ends the process at once (nothing to drain) and SIGHUP
  // is ignored (the bundle being loaded is the one in MODEL_DIR).
  let onStop: (signal: NodeJS.Signals) => void = () => process.exit(0);
  let onHangup: () => void = () => undefined;
  process.on("SIGTERM", () => onStop("SIGTERM"));
  process.on("SIGINT", () => onStop("SIGINT"));
  process.on("SIGHUP", () => onHangup());

  const separateMetrics = config.ENABLE_METRICS && config.METRICS_PORT !== undefined;
  const app = await buildApp({
    config,
    serveMetrics: !separateMetrics,
    https: tls,
    reload: cluster.isWorker ? askPrimary() : undefined,
    rateLimitPrimary: cluster.isWorker ? primaryBuckets() : undefined,
  });
  const { registry, metrics } = app.wavelet;
  if (cluster.isWorker) {
    // Answer the primary's metric requests from this app's registry; prom-client installs
    // that listener when an AggregatorRegistry is constructed.
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry();
  }
  if (!config.API_KEY && !config.OAUTH_ISSUER) app.log.warn("no API_KEY or OAUTH_ISSUER set: prediction routes are open; admin routes answer loopback clients only unless ADMIN_API_KEY is set");
  else if (config.ENABLE_METRICS && !separateMetrics && !config.METRICS_API_KEY && !config.OAUTH_ISSUER) {
    app.log.warn("API_KEY is set but METRICS_API_KEY is not: /metrics answers 403 until it is (or METRICS_PORT serves it)");
  }

  // With workers, the primary serves the combined metrics; a single process serves its own.
  const metricsApp = separateMetrics && cluster.isPrimary ? await metricsListener(config, registryMetrics(metrics.registry)) : undefined;
  await app.listen({ host: config.HOST, port: config.PORT });
  if (cluster.isPrimary) printUrls(config, app.server.address() as AddressInfo, metricsApp?.server.address() as AddressInfo | undefined);

  // The certificate is also re-read whenever its files change (every worker polls them, tls.ts).
  const reloadCertificate = () => app.wavelet.reloadCertificate();
  // A worker's primary gets SIGHUP and reloads every worker's bundle and certificate.
  if (cluster.isWorker) serveReloads(registry, config.RELOAD_TIMEOUT_MS, reloadCertificate);
  else {
    onHangup = () => {
      app.log.info("SIGHUP: reloading the bundle and the TLS certificate");
      reloadCertificate();
      registry.reload().catch(() => undefined); // the registry logs a refusal (and /health shows it)
    };
  }

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
      app.log.error("grace period over: exiting with requests or streams still open, which are cut");
      process.exit(EXIT_CUT);
    }, config.SHUTDOWN_GRACE_MS);
    deadline.unref();
    const closed = Promise.allSettled([app.close(), metricsApp?.close()]);
    // close() shuts idle connections once; a keep-alive one whose response (a stream, say)
    // began before the shutdown goes idle later and would hold close() to the deadline.
    setInterval(() => app.server.closeIdleConnections(), 100).unref();
    await closed;
    process.exit(0);
  };
  onStop = (signal) => void stop(signal);
}

async function runPrimary(config: Config): Promise<void> {
  const log = (msg: string) => logOutput(2).write(`${JSON.stringify({ level: 30, time: Date.now(), msg })}\n`);
  process.on("SIGHUP", coordinateReloads(config.RELOAD_TIMEOUT_MS, log));
  holdBuckets(config.RATE_LIMIT_WINDOW_MS);
  // A client's budget is the pod's; the overload limits protect each worker's own queue.
  log(
    `${config.WORKERS} workers: rate limits are shared by the workers (${config.REDIS_URL ? "in Redis, else" : "held"} by this primary process); ` +
      `MAX_STREAMS and MAX_QUEUED_ROWS hold in each worker (this pod takes up to ${config.WORKERS * config.MAX_STREAMS} streams ` +
      `and ${config.WORKERS * config.MAX_QUEUED_ROWS} queued rows)`,
  );
  const aggregator = new AggregatorRegistry();
  const metricsApp = config.ENABLE_METRICS
    ? await metricsListener(config, async () => ({ body: await aggregator.clusterMetrics(), contentType: aggregator.contentType }))
    : undefined;
  let stopping = false;
  let cut = false; // a worker did not drain cleanly
  // Each worker writes to a pipe of its own, relayed by this process, the only one to write
  // to its stdout and stderr: a worker given them would make them blocking (logging.ts).
  cluster.setupPrimary({ stdio: ["ignore", "pipe", "pipe", "ipc"] });
  const fork = () => {
    if (stopping) return;
    const worker = cluster.fork();
    logOutput(1).relay(worker.process.stdout!);
    logOutput(2).relay(worker.process.stderr!);
  };
  // The URLs are printed once, when as many live workers as WORKERS listen.
  const listening = new Set<number>();
  let announced = false;
  cluster.on("listening", (worker, address) => {
    listening.add(worker.id);
    if (announced || listening.size < config.WORKERS) return;
    announced = true;
    printUrls(config, address, metricsApp?.server.address() as AddressInfo | undefined);
  });
  cluster.on("exit", (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) {
      if (code !== 0) {
        cut = true;
        log(`worker ${worker.process.pid} exited (${signal ?? code}) while stopping`);
      }
      return;
    }
    log(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
    setTimeout(fork, 1000);
  });
  for (let i = 0; i < config.WORKERS; i++) fork();

  const broadcast = (signal: NodeJS.Signals) => Object.values(cluster.workers ?? {}).forEach((w) => w?.process.kill(signal));
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping ${config.WORKERS} workers`);
    broadcast(signal);
    const deadline = setTimeout(() => process.exit(EXIT_CUT), drainDelay(config, signal) + config.SHUTDOWN_GRACE_MS + 1000);
    deadline.unref();
    cluster.on("exit", () => {
      if (Object.keys(cluster.workers ?? {}).length > 0) return;
      void Promise.resolve(metricsApp?.close()).finally(() => process.exit(cut ? EXIT_CUT : 0));
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

const { config, tls } = loadConfig();
if (cluster.isPrimary) await refuseGuideLayout(config);
if (config.WORKERS > 1 && cluster.isPrimary) await runPrimary(config);
else await runWorker(config, tls);
