#!/usr/bin/env node
/**
 * The operator process.
 *
 *   node dist/main.js              run (KUBECONFIG or in-cluster credentials)
 *   node dist/main.js crd          print the WaveletModel CRD (crds/waveletmodel.yaml)
 *
 * The Helm chart charts/wavelet-operator installs it; it never installs its own CRD. With
 * leader election (the default) only the replica that holds the Lease reconciles; the
 * others keep warm caches and take over when it goes.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { CoordinationV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { waveletModelCrd } from "./api/crd.js";
import { HTTPROUTE } from "./api/gatewayapi.js";
import { GROUP, PHASES, PLURAL, VERSION, type WaveletModel } from "./api/waveletmodel.js";
import { parseConfig } from "./config.js";
import { systemClock } from "./controller/clock.js";
import { Controller } from "./controller/controller.js";
import { createInformers } from "./controller/informers.js";
import { LeaderElector } from "./controller/leader.js";
import { WorkQueue } from "./controller/queue.js";
import { KubeClient, statusCode } from "./kube/client.js";
import { PooledKubeConfig } from "./kube/pooled.js";
import { TokenBucket } from "./kube/throttle.js";
import { createLog } from "./log.js";
import { createMetrics } from "./metrics.js";
import { type MetricsApi, startMetricsApi } from "./metricsapi/service.js";
import { AnalysisRuns, httpAnalyzer } from "./reconcile/analysis.js";
import { Reconciler } from "./reconcile/reconciler.js";

const SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/** The namespace of the pod this runs in, or undefined outside a cluster. */
function podNamespace(): string | undefined {
  if (!process.env.KUBERNETES_SERVICE_HOST) return undefined;
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fail at once, in one line, when the cluster cannot work with this operator: unreachable,
 * the CRD not installed, or credentials that cannot list WaveletModels. Answers whether it
 * serves the Gateway API's HTTPRoutes (spec.route).
 */
async function preflight(kc: KubeConfig, namespaces: string[]): Promise<{ httpRoutes: boolean }> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const where = namespaces[0];
  try {
    await (where
      ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: where, limit: 1 })
      : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 1 }));
  } catch (error) {
    const code = statusCode(error);
    const server = kc.getCurrentCluster()?.server ?? "(no cluster in the kubeconfig)";
    if (code === 404) throw new Error(`the WaveletModel CRD is not installed in ${server}: kubectl apply -f crds/waveletmodel.yaml (or install charts/wavelet-operator)`);
    if (code === 401 || code === 403) throw new Error(`${server} refuses to list ${PLURAL}${where ? ` in ${where}` : ""} (HTTP ${code}): check the credentials and RBAC`);
    if (code === undefined) throw new Error(`cannot reach the API server at ${server}: ${(error as Error)?.message ?? error}`);
    throw error;
  }
  return { httpRoutes: await serves(kc, HTTPROUTE) };
}

/** Whether the API server serves `resource` (discovery: a group version it does not serve is a 404). */
async function serves(kc: KubeConfig, { group, version, plural }: { group: string; version: string; plural: string }): Promise<boolean> {
  try {
    return (await kc.makeApiClient(CustomObjectsApi).getAPIResources({ group, version })).resources.some((r) => r.name === plural);
  } catch (error) {
    if (statusCode(error) === 404) return false;
    throw error;
  }
}

async function run(): Promise<void> {
  const config = parseConfig(process.env, podNamespace());
  const log = createLog(config.LOG_LEVEL, { component: "wavelet-operator", pod: config.POD_NAME });
  const clock = systemClock;
  const metrics = createMetrics();
  const kc = new PooledKubeConfig({
    throttle: new TokenBucket(clock, config.KUBE_API_QPS, config.KUBE_API_BURST),
    onThrottled: (ms) => metrics.apiThrottled.inc(ms / 1000),
  });
  kc.loadFromDefault();
  // Lease renewals must not queue behind a burst of writes.
  const leaseKc = new PooledKubeConfig({ maxSockets: 2 });
  leaseKc.loadFromDefault();
  const queue = new WorkQueue(clock);
  // Before anything watches: which kinds the cluster serves decides what is watched.
  const cluster = await preflight(kc, config.WATCH_NAMESPACE);
  if (!cluster.httpRoutes) {
    log.info("the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoutes: models with spec.route are Degraded (GatewayAPIMissing) until its CRDs are installed and the operator restarted");
  }
  const informers = createInformers(kc, config.WATCH_NAMESPACE, (key, priority) => queue.add(key, priority), clock, log, {
    deployments: config.MIGRATE_DEPLOYMENTS,
    httpRoutes: cluster.httpRoutes,
  });
  const client = new KubeClient(kc, config.POD_NAME);
  const reconciler = new Reconciler({
    caches: informers.caches,
    writer: client,
    clock,
    settings: { defaultServerImage: config.SERVER_IMAGE },
    analyses: new AnalysisRuns(httpAnalyzer(), (key) => queue.add(key)),
    metrics,
    log,
  });
  const controller = new Controller(queue, (key) => reconciler.reconcile(key), metrics, log);
  const elector = config.LEADER_ELECTION
    ? new LeaderElector(
        leaseKc.makeApiClient(CoordinationV1Api),
        {
          namespace: config.OPERATOR_NAMESPACE,
          name: config.LEASE_NAME,
          identity: config.POD_NAME,
          leaseDurationSeconds: config.LEASE_DURATION_SECONDS,
          renewDeadlineSeconds: config.RENEW_DEADLINE_SECONDS,
          retryPeriodSeconds: config.RETRY_PERIOD_SECONDS,
        },
        clock,
        log,
      )
    : undefined;

  const server = createServer(async (req, res) => {
    if (req.url === "/healthz") return void res.writeHead(200).end("ok");
    if (req.url === "/readyz") {
      const why = !informers.synced() ? "caches not synced, or a watch is down" : metricsApi && !metricsApi.ready() ? "the custom metrics API has no data yet" : undefined;
      return void res.writeHead(why ? 503 : 200).end(why ?? "ok");
    }
    if (req.url === "/metrics") {
      const models = informers.caches.models.list() as unknown as WaveletModel[];
      // Every phase, 0 when no model is in it, so "how many are Degraded" is 0 rather than absent.
      for (const phase of PHASES) metrics.rollouts.set({ phase }, 0);
      for (const wm of models) metrics.rollouts.inc({ phase: wm.status?.phase ?? "Pending" });
      metrics.queueDepth.set(queue.length);
      return void res.writeHead(200, { "content-type": metrics.registry.contentType }).end(await metrics.registry.metrics());
    }
    res.writeHead(404).end();
  });
  server.listen(config.PORT);

  let metricsApi: MetricsApi | undefined;
  let stopping = false;
  let resync: { cancel(): void } | undefined;
  const stop = async (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`stopping: ${why}`);
    resync?.cancel();
    await controller.stop();
    await elector?.stop();
    await metricsApi?.stop();
    await informers.stop();
    server.close();
    process.exit(code);
  };
  process.on("SIGTERM", () => void stop(0, "SIGTERM"));
  process.on("SIGINT", () => void stop(0, "SIGINT"));

  if (!elector) log.info("leader election is off (LEADER_ELECTION=false, the default outside a cluster): run one replica");
  // Caches fill while waiting for the lease, so a new leader starts with warm caches.
  await informers.start();
  log.info("caches synced");
  // Every replica serves it, leader or not: it only reads the caches and the pods.
  if (config.METRICS_API) {
    metricsApi = await startMetricsApi({ config, kc, caches: informers.caches, clock, log, metrics, readSecret: (namespace, name) => client.secret(namespace, name) });
  }
  const lead = () => {
    metrics.leader.set(1);
    controller.start(config.WORKERS);
    for (const wm of informers.caches.models.list()) queue.add(`${wm.metadata?.namespace}/${wm.metadata?.name}`);
    const tick = () => {
      for (const wm of informers.caches.models.list()) queue.add(`${wm.metadata?.namespace}/${wm.metadata?.name}`);
      resync = clock.setTimeout(tick, config.RESYNC_SECONDS * 1000);
    };
    resync = clock.setTimeout(tick, config.RESYNC_SECONDS * 1000);
  };
  if (!elector) return lead();
  const outcome = await elector.run(lead);
  metrics.leader.set(0);
  // Another replica may lead from now on: no pass of this one may finish. Exit at once.
  if (outcome === "lost") process.exit(1);
}

async function main(command = "run"): Promise<void> {
  switch (command) {
    case "crd":
      process.stdout.write(stringify(waveletModelCrd(), { lineWidth: 0 }));
      return;
    case "run":
      return run();
    default:
      throw new Error(`unknown command ${command}; use run or crd`);
  }
}

main(process.argv[2]).catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message ?? error}\n`);
  process.exit(2);
});
