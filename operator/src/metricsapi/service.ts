import { AuthorizationV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { OperatorConfig } from "../config.js";
import type { Clock } from "../controller/clock.js";
import type { Caches } from "../controller/informers.js";
import type { Log } from "../log.js";
import type { Metrics } from "../metrics.js";
import { MetricsApiServer } from "./apiserver.js";
import { AUTH_CONFIGMAP, parseAuthConfig } from "./authn.js";
import { Authorizer } from "./authz.js";
import { route } from "./handlers.js";
import { MetricStore } from "./rates.js";
import { Scraper } from "./scraper.js";
import { MetricsKeys, scrapeTargets } from "./targets.js";

/**
 * The custom metrics API of one operator replica: its scraper, its store and its HTTPS
 * listener, over the informers' caches. Every replica runs it (the aggregator balances over
 * the ready ones); none needs the lease, since it only reads.
 */

export interface MetricsApi {
  /** Whether it can answer with data: two scrape rounds done (what /readyz adds). */
  ready(): boolean;
  stop(): Promise<void>;
}

// Server pods' /metrics is some 100 KB; a pod answering more is not read further.
const MAX_BODY_BYTES = 4 * 1024 * 1024;
// How often the serving certificate and the front proxy's CA are re-read.
const RELOAD_MS = 30_000;

export interface MetricsApiDeps {
  config: OperatorConfig;
  kc: KubeConfig;
  caches: Caches;
  clock: Clock;
  log: Log;
  metrics: Metrics;
  readSecret: (namespace: string, name: string) => Promise<{ data: Record<string, string> } | undefined>;
}

export async function startMetricsApi({ config, kc, caches, clock, log, metrics, readSecret }: MetricsApiDeps): Promise<MetricsApi> {
  const core = kc.makeApiClient(CoreV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const windowMs = config.METRICS_WINDOW_SECONDS * 1000;
  const intervalMs = config.METRICS_SCRAPE_INTERVAL_SECONDS * 1000;
  // Three missed scrapes in a row and a pod has no value: the HPA holds it instead of guessing.
  const store = new MetricStore({ windowMs, staleMs: 3 * intervalMs });
  const keys = new MetricsKeys(readSecret, (namespace, name) => caches.secrets.get(name, namespace)?.metadata?.resourceVersion, log);
  const scraper = new Scraper({
    targets: () =>
      scrapeTargets({
        models: () => caches.models.list(),
        pods: (namespace) => caches.pods.list(namespace),
        metricsKey: (namespace, ref) => keys.get(namespace, ref),
      }),
    store,
    clock,
    intervalMs,
    timeoutMs: config.METRICS_SCRAPE_TIMEOUT_SECONDS * 1000,
    concurrency: config.METRICS_SCRAPE_CONCURRENCY,
    maxBodyBytes: MAX_BODY_BYTES,
    onScrape: (outcome) => metrics.scrapes.inc({ outcome }),
    log,
  });
  for (const outcome of ["ok", "error", "timeout", "too_large"]) metrics.scrapes.inc({ outcome }, 0);

  const authorizer = new Authorizer((body) => authz.createSubjectAccessReview({ body }), { ttlMs: 10_000, maxEntries: 4096, now: () => clock.now() });
  const context = {
    pods: (namespace: string) => caches.pods.list(namespace),
    model: (namespace: string, name: string) => caches.models.get(name, namespace),
    store,
    now: () => clock.now(),
  };
  const server = new MetricsApiServer({
    route: (url) => route(url, context),
    authorize: (who, what) => authorizer.authorize(who, what),
    authConfig: async () => parseAuthConfig((await core.readNamespacedConfigMap(AUTH_CONFIGMAP)).data),
    certDir: config.METRICS_API_CERT_DIR,
    onRequest: (code) => metrics.metricsApiRequests.inc({ code: String(code) }),
    log,
  });
  await server.listen(config.METRICS_API_PORT);
  scraper.start();
  let reload: { cancel(): void } | undefined;
  const again = () => {
    reload = clock.setTimeout(() => {
      server.load().then(
        (changed) => changed && log.info("custom metrics API: serving certificate or front-proxy CA reloaded"),
        (error: unknown) => log.warn(`custom metrics API: cannot reload its TLS material, keeping the current one: ${(error as Error).message}`),
      ).finally(again);
    }, RELOAD_MS);
  };
  again();
  log.info(`custom metrics API (custom.metrics.k8s.io/v1beta2) listening on ${config.METRICS_API_PORT}; scraping every ${config.METRICS_SCRAPE_INTERVAL_SECONDS} s over ${config.METRICS_WINDOW_SECONDS} s`);
  return {
    ready: () => scraper.ready,
    async stop() {
      reload?.cancel();
      await scraper.stop();
      await server.close();
    },
  };
}
