import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1Deployment,
  type V1Ingress,
  type V1Pod,
  type V1ReplicaSet,
  type V1Service,
  type V1PodDisruptionBudget,
  type V2HorizontalPodAutoscaler,
  NetworkingV1Api,
  PolicyV1Api,
  makeInformer,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION, type WaveletModelSpec, namedSecrets } from "../api/waveletmodel.js";
import { HTTPROUTE } from "../api/gatewayapi.js";
import { MANAGED_SELECTOR, ownerKey } from "../api/labels.js";
import { type Clock, sleep } from "./clock.js";
import type { Priority } from "./queue.js";
import { relevantUpdates } from "./relevant.js";

/**
 * Watch-backed caches of the WaveletModels and of the children the operator owns (selected
 * by the managed-by label, so memory is bounded by what the operator manages). Every event
 * becomes the key of the WaveletModel it concerns; reconciles read only these caches.
 * client-node's informers stop on a watch error, so each restarts itself with a backoff.
 */

export interface Caches {
  models: ObjectCache<KubernetesObject>;
  replicasets: ObjectCache<V1ReplicaSet>;
  /** Only those of an operator from before ReplicaSets, until it has replaced them. */
  deployments: ObjectCache<V1Deployment>;
  /** The pods of the children (they carry the managed-by label of their template). */
  pods: ObjectCache<V1Pod>;
  services: ObjectCache<V1Service>;
  hpas: ObjectCache<V2HorizontalPodAutoscaler>;
  pdbs: ObjectCache<V1PodDisruptionBudget>;
  ingresses: ObjectCache<V1Ingress>;
  /** Undefined when the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoutes (asked at start). */
  httproutes?: ObjectCache<KubernetesObject>;
  /**
   * The Secrets of the watched namespaces, metadata only (name and resourceVersion: never
   * their data, labels or annotations): a model's pod template hashes the versions of the
   * Secrets it names, and a new version queues those models at once (a TLS Secret's, to be
   * checked again).
   */
  secrets: ObjectCache<KubernetesObject>;
}

export interface InformerSet {
  caches: Caches;
  start(): Promise<void>;
  stop(): Promise<void>;
  synced(): boolean;
}

type Log = { warn: (msg: string, extra?: unknown) => void };

/**
 * Drops what no pass reads and most of an object's memory is: managedFields (reads that need
 * them go to the API server). A pod is about twice as large with them.
 */
function slim(o: KubernetesObject): void {
  if (o.metadata?.managedFields) delete o.metadata.managedFields;
}

/** All a Secret's cached form keeps: who it is and its version (kubectl apply copies the data into an annotation). */
function slimSecret(o: KubernetesObject): void {
  const { name, namespace, uid, resourceVersion } = o.metadata ?? {};
  o.metadata = { name, namespace, uid, resourceVersion };
}

// Watches and lists of Secrets ask for PartialObjectMetadata: the API server sends no data.
const METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/** `kc` whose requests (the informer's watches) ask for metadata only. */
function metadataOnly(kc: KubeConfig): KubeConfig {
  return new Proxy(kc, {
    get(target, property, receiver) {
      if (property !== "applyToFetchOptions") return Reflect.get(target, property, receiver);
      return async (options: object) => {
        const applied = await target.applyToFetchOptions(options);
        // client-node builds a Headers object here (its typings say HeadersInit).
        (applied.headers as unknown as Headers).set("Accept", METADATA);
        return applied;
      };
    },
  });
}

/** One cache over the informers of several namespaces, each of which holds only its own. */
function merged<T>(caches: ObjectCache<T>[]): ObjectCache<T> {
  return {
    get: (name, namespace) => caches.map((c) => c.get(name, namespace)).find((o) => o !== undefined),
    list: (namespace) => caches.flatMap((c) => c.list(namespace)),
  };
}

const EMPTY: ObjectCache<never> = { get: () => undefined, list: () => [] };

export interface InformerOptions {
  /** Watch Deployments of an operator from before ReplicaSets, to retire them (MIGRATE_DEPLOYMENTS). */
  deployments: boolean;
  /** The cluster serves the Gateway API's HTTPRoutes: watch them (a watch of a resource it does not serve would never start). */
  httpRoutes: boolean;
}

/** `namespaces`: the namespaces to watch, each with its own informers; none means the whole cluster. */
export function createInformers(
  kc: KubeConfig,
  namespaces: string[],
  enqueue: (key: string, priority?: Priority) => void,
  clock: Clock,
  log: Log,
  options: InformerOptions = { deployments: true, httpRoutes: false },
): InformerSet {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const policy = kc.makeApiClient(PolicyV1Api);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const list = <T extends KubernetesObject>(fn: () => Promise<unknown>) => fn as () => Promise<KubernetesListObject<T>>;

  const informersIn = (namespace: string | undefined) => {
    const scope = (path: string) => (namespace ? path.replace(/^(\/apis?\/[^/]+(?:\/[^/]+)?)\//, `$1/namespaces/${namespace}/`) : path);
    const models = makeInformer<KubernetesObject>(
      kc,
      scope(`/apis/${GROUP}/${VERSION}/${PLURAL}`),
      list(() =>
        namespace
          ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
          : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }),
      ),
    );
    /** A child kind, selected by the managed-by label: list it in the namespace, or everywhere. */
    const children = <T extends KubernetesObject>(
      path: string,
      inNamespace: (o: { namespace: string; labelSelector: string }) => Promise<unknown>,
      everywhere: (o: { labelSelector: string }) => Promise<unknown>,
    ) =>
      makeInformer<T>(
        kc,
        scope(path),
        list(() => (namespace ? inNamespace({ namespace, labelSelector: MANAGED_SELECTOR }) : everywhere({ labelSelector: MANAGED_SELECTOR }))),
        MANAGED_SELECTOR,
      );
    const deployments = children<V1Deployment>("/apis/apps/v1/deployments", (o) => apps.listNamespacedDeployment(o), (o) => apps.listDeploymentForAllNamespaces(o));
    const replicasets = children<V1ReplicaSet>("/apis/apps/v1/replicasets", (o) => apps.listNamespacedReplicaSet(o), (o) => apps.listReplicaSetForAllNamespaces(o));
    const pods = children<V1Pod>("/api/v1/pods", (o) => core.listNamespacedPod(o), (o) => core.listPodForAllNamespaces(o));
    const services = children<V1Service>("/api/v1/services", (o) => core.listNamespacedService(o), (o) => core.listServiceForAllNamespaces(o));
    const hpas = children<V2HorizontalPodAutoscaler>(
      "/apis/autoscaling/v2/horizontalpodautoscalers",
      (o) => autoscaling.listNamespacedHorizontalPodAutoscaler(o),
      (o) => autoscaling.listHorizontalPodAutoscalerForAllNamespaces(o),
    );
    const pdbs = children<V1PodDisruptionBudget>("/apis/policy/v1/poddisruptionbudgets", (o) => policy.listNamespacedPodDisruptionBudget(o), (o) =>
      policy.listPodDisruptionBudgetForAllNamespaces(o),
    );
    const ingresses = children<V1Ingress>("/apis/networking.k8s.io/v1/ingresses", (o) => networking.listNamespacedIngress(o), (o) => networking.listIngressForAllNamespaces(o));
    const { group, version, plural } = HTTPROUTE;
    const httproutes = children<KubernetesObject>(
      `/apis/${group}/${version}/${plural}`,
      (o) => custom.listNamespacedCustomObject({ group, version, plural, ...o }),
      (o) => custom.listClusterCustomObject({ group, version, plural, ...o }),
    );
    const metadata = setHeaderOptions("Accept", METADATA_LIST);
    const secrets = makeInformer<KubernetesObject>(
      metadataOnly(kc),
      scope("/api/v1/secrets"),
      list(() => (namespace ? core.listNamespacedSecret({ namespace }, metadata) : core.listSecretForAllNamespaces({}, metadata))),
    );
    return { namespace, models, replicasets, deployments, pods, services, hpas, pdbs, ingresses, httproutes, secrets };
  };
  const sets = (namespaces.length ? namespaces : [undefined]).map(informersIn);

  type Verb = "add" | "update" | "delete";
  // A model seen for the first time waits behind the work on models already running (queue.ts).
  const modelKey = (o: KubernetesObject, verb: Verb) => enqueue(`${o.metadata?.namespace}/${o.metadata?.name}`, verb === "add" ? "low" : "normal");
  const childKey = (o: KubernetesObject) => {
    const key = ownerKey(o);
    if (key) enqueue(key);
  };
  const models = merged(sets.map((s) => s.models));
  // A Secret concerns the models of its namespace that name it.
  const secretKey = (o: KubernetesObject) => {
    const namespace = o.metadata?.namespace;
    for (const m of models.list(namespace)) {
      const spec = (m as { spec?: Pick<WaveletModelSpec, "server" | "tls"> }).spec;
      if (spec?.server && namedSecrets(spec).includes(o.metadata?.name ?? "")) enqueue(`${namespace}/${m.metadata?.name}`);
    }
  };
  type Watched = [string, Informer<KubernetesObject>, (o: KubernetesObject, verb: Verb) => void];
  const all = sets.flatMap(({ namespace, models, replicasets, deployments, pods, services, hpas, pdbs, ingresses, httproutes, secrets }): Watched[] => {
    const where = namespace ? ` in ${namespace}` : "";
    const legacy: Watched[] = options.deployments ? [[`deployments${where}`, deployments as unknown as Informer<KubernetesObject>, childKey]] : [];
    const routes: Watched[] = options.httpRoutes ? [[`httproutes${where}`, httproutes, childKey]] : [];
    return [
      [`waveletmodels${where}`, models, modelKey],
      [`replicasets${where}`, replicasets as unknown as Informer<KubernetesObject>, childKey],
      ...legacy,
      [`pods${where}`, pods as unknown as Informer<KubernetesObject>, childKey],
      [`services${where}`, services as unknown as Informer<KubernetesObject>, childKey],
      [`hpas${where}`, hpas as unknown as Informer<KubernetesObject>, childKey],
      [`pdbs${where}`, pdbs as unknown as Informer<KubernetesObject>, childKey],
      [`ingresses${where}`, ingresses as unknown as Informer<KubernetesObject>, childKey],
      ...routes,
      [`secrets${where}`, secrets, secretKey],
    ];
  });
  /** Watches that are up; one that fails leaves until it is back, so /readyz tells. */
  const started = new Set<string>();
  const errors = new Map<string, number>();
  const attempts = new Map<string, number>();
  const scheduled = new Set<string>();
  let stopping = false;

  /**
   * One start. client-node's informer reports a failed list or watch through its error
   * event and resolves anyway, so success is a start during which no error came.
   */
  const startOnce = async (name: string, informer: Informer<KubernetesObject>): Promise<boolean> => {
    const before = errors.get(name) ?? 0;
    const resolved = await informer.start().then(
      () => true,
      () => false,
    );
    const ok = resolved && (errors.get(name) ?? 0) === before;
    if (ok) {
      started.add(name);
      attempts.set(name, 0);
    }
    return ok;
  };
  /** Start again after a backoff (250 ms doubling to 30 s); at most one restart pending per informer. */
  const scheduleRestart = (name: string, informer: Informer<KubernetesObject>) => {
    if (stopping || scheduled.has(name)) return;
    scheduled.add(name);
    const attempt = attempts.get(name) ?? 0;
    attempts.set(name, attempt + 1);
    void sleep(clock, Math.min(30_000, 250 * 2 ** Math.min(attempt, 7))).then(async () => {
      scheduled.delete(name);
      if (stopping) return;
      if (!(await startOnce(name, informer))) scheduleRestart(name, informer);
    });
  };
  for (const [name, informer, toKey] of all) {
    // First, so the cache keeps the slim object (the handlers get the object it stores).
    for (const verb of ["add", "update"] as const) informer.on(verb, name.startsWith("secrets") ? slimSecret : slim);
    // Updates that change nothing a pass reads queue nothing (relevant.ts).
    const relevant = relevantUpdates(name.split(" ")[0]!);
    informer.on("add", (o) => (relevant.seen(o), toKey(o, "add")));
    informer.on("update", (o) => relevant.update(o) && toKey(o, "update"));
    informer.on("delete", (o) => (relevant.forget(o), toKey(o, "delete")));
    informer.on("error", (err: unknown) => {
      errors.set(name, (errors.get(name) ?? 0) + 1);
      started.delete(name);
      if (stopping) return;
      log.warn(`${name} watch failed; restarting it`, { err: String((err as Error)?.message ?? err) });
      scheduleRestart(name, informer);
    });
  }

  return {
    caches: {
      models,
      replicasets: merged(sets.map((s) => s.replicasets)),
      // Without the migration, none are watched (nor may be: the chart then grants no Deployment rights).
      deployments: options.deployments ? merged(sets.map((s) => s.deployments)) : EMPTY,
      pods: merged(sets.map((s) => s.pods)),
      services: merged(sets.map((s) => s.services)),
      hpas: merged(sets.map((s) => s.hpas)),
      pdbs: merged(sets.map((s) => s.pdbs)),
      ingresses: merged(sets.map((s) => s.ingresses)),
      ...(options.httpRoutes ? { httproutes: merged(sets.map((s) => s.httproutes)) } : {}),
      secrets: merged(sets.map((s) => s.secrets)),
    },
    async start() {
      const failed = (await Promise.all(all.map(async ([name, informer]) => ((await startOnce(name, informer)) ? [] : [name])))).flat();
      if (failed.length) throw new Error(`could not list and watch ${failed.join(", ")} (the warnings above say why)`);
    },
    async stop() {
      stopping = true;
      await Promise.allSettled(all.map(([, informer]) => informer.stop()));
    },
    synced: () => started.size === all.length,
  };
}
