import type { KubernetesObject, ObjectCache, V1Pod, V1ReplicaSet, V1Service } from "@kubernetes/client-node";
import type { WaveletModel } from "../src/api/waveletmodel.js";
import type { Caches } from "../src/controller/informers.js";
import { createMetrics } from "../src/metrics.js";
import { AnalysisRuns, type AnalysisTargets } from "../src/reconcile/analysis.js";
import type { AnalysisVerdict } from "../src/reconcile/bluegreen.js";
import { canonical } from "../src/reconcile/canonical.js";
import { TEMPLATE_HASH } from "../src/api/labels.js";
import { Reconciler } from "../src/reconcile/reconciler.js";
import type { Writer } from "../src/reconcile/pass.js";
import { FakeClock } from "./fixtures.js";

/**
 * A fake API server and the operator's caches of it, which lag it until sync(): what a pass
 * writes and in which order, and what the next passes do while the caches still show versions
 * older than the pass's own writes. Its ReplicaSet controller behaves like the real one: it
 * never replaces pods when the template changes; it only adds pods of the current template up
 * to spec.replicas (named as the API server's generator names them) and removes surplus ones.
 * Pods become ready unless the test says otherwise for their template (readyByHash).
 */

export const settings = { defaultServerImage: "wavelet-server:test" };
const KINDS = ["WaveletModel", "ReplicaSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment", "Ingress", "HTTPRoute"] as const;
export type Kind = (typeof KINDS)[number];

export class FakeCache<T extends KubernetesObject> implements ObjectCache<T> {
  readonly items = new Map<string, T>();
  get(name: string, namespace?: string): T | undefined {
    return this.items.get(`${namespace}/${name}`);
  }
  list(): T[] {
    return [...this.items.values()];
  }
  set(o: T): void {
    this.items.set(`${o.metadata!.namespace}/${o.metadata!.name}`, o);
  }
}

const conflict = () => Object.assign(new Error("Conflict"), { code: 409 });

/** The API server's SimpleNameGenerator: the base cut to 58 characters, then 5 random ones. */
export const generatedName = (base: string, n: number) => base.slice(0, 58) + n.toString(36).padStart(5, "0");

export interface HarnessOptions {
  /** The model's name (the key the passes reconcile). */
  name?: string;
  analyzer?: (wm: WaveletModel, targets: AnalysisTargets) => Promise<AnalysisVerdict>;
  /** The cluster serves the Gateway API's HTTPRoutes (default: yes). */
  gatewayApi?: boolean;
}

export function harness({ name = "spx", analyzer = async () => ({ result: "pass", message: "" }), gatewayApi = true }: HarnessOptions = {}) {
  const caches = Object.fromEntries(KINDS.map((k) => [k, new FakeCache()])) as Record<Kind, FakeCache<KubernetesObject>>;
  /** The API server's objects, by kind then "namespace/name". */
  const server = Object.fromEntries(KINDS.map((k) => [k, new FakeCache()])) as Record<Kind, FakeCache<KubernetesObject>>;
  const serverPods = new FakeCache<V1Pod>();
  const pods = new FakeCache<V1Pod>();
  /** Whether pods of a template hash become ready (default: yes). */
  const readyByHash = new Map<string, boolean>();
  let version = 10;
  let podSeq = 0;
  const store = (kind: Kind, o: KubernetesObject) => {
    const rv = String(++version);
    // A uid as the API server gives one at create (pods name their ReplicaSet's).
    const uid = server[kind].get(o.metadata!.name!, o.metadata!.namespace)?.metadata?.uid ?? o.metadata?.uid ?? `uid-${kind}-${o.metadata!.name}`;
    server[kind].set({ ...o, metadata: { ...o.metadata, uid, resourceVersion: rv } });
    return rv;
  };
  const model = () => server.WaveletModel.list()[0]!;
  /** Every write in order: "Kind/name", "delete Kind/name", "status", "model", "event <reason>". */
  const writes: string[] = [];
  /** Reads and applies of children, in the order they were sent. */
  const requests: string[] = [];
  /** The last object applied under each "Kind/name", as sent (before the server merged it). */
  const sent = new Map<string, KubernetesObject>();
  const statuses: NonNullable<WaveletModel["status"]>[] = [];
  const preconditions: string[] = [];
  const events: string[] = [];
  const warnings: string[] = [];
  const analyzerCalls: AnalysisTargets[] = [];
  let routed: string[] = [];
  /** Runs after each read: what someone else does right then. */
  let afterRead: (o: KubernetesObject) => void = () => undefined;
  let failApply: (o: KubernetesObject) => boolean = () => false;
  /** Reads of EndpointSlices that fail, with this error. */
  const broken: { routedPods?: Error } = {};
  /** The Secrets of the namespace (Opaque unless a type is given); the operator's metadata cache of them is always current here. */
  const secrets = new Map<string, { resourceVersion: string; type?: string; data: Record<string, string> }>();
  const secretsCache: ObjectCache<KubernetesObject> = {
    get: (name) => {
      const found = secrets.get(name);
      return found && { metadata: { name, namespace: "ns", resourceVersion: found.resourceVersion } };
    },
    list: () => [...secrets.entries()].map(([name, { resourceVersion }]) => ({ metadata: { name, namespace: "ns", resourceVersion } })),
  };
  /** Secrets read from the API server (their data), by name. */
  const secretReads: string[] = [];
  const writer: Writer = {
    read: async (o) => {
      requests.push(`read ${o.kind}/${o.metadata!.name}`);
      const found = server[o.kind as Kind].get(o.metadata!.name!, o.metadata!.namespace);
      afterRead(o);
      return found;
    },
    apply: async (o) => {
      if (failApply(o)) throw Object.assign(new Error("Internal error"), { code: 500 });
      const existing = server[o.kind as Kind].get(o.metadata!.name!, o.metadata!.namespace);
      const rv = o.metadata?.resourceVersion;
      if (rv && existing?.metadata?.resourceVersion !== rv) throw conflict();
      writes.push(`${o.kind}/${o.metadata!.name}`);
      requests.push(`apply ${o.kind}/${o.metadata!.name}`);
      sent.set(`${o.kind}/${o.metadata!.name}`, o);
      // Server-side apply: a field the applied object leaves out keeps its value (replicas left to the HPA).
      const merged =
        o.kind === "ReplicaSet" && existing && (o as V1ReplicaSet).spec?.replicas === undefined
          ? { ...o, spec: { ...(o as V1ReplicaSet).spec!, replicas: (existing as V1ReplicaSet).spec?.replicas } }
          : o;
      return store(o.kind as Kind, merged);
    },
    deleteIfPresent: async (o) => {
      writes.push(`delete ${o.kind}/${o.metadata!.name}`);
      if (o.kind === "Pod") {
        const p = serverPods.get(o.metadata!.name!, o.metadata!.namespace);
        if (p) serverPods.set({ ...p, metadata: { ...p.metadata, deletionTimestamp: new Date() } });
      } else server[o.kind as Kind]?.items.delete(`${o.metadata!.namespace}/${o.metadata!.name}`);
    },
    routedPods: async () => {
      if (broken.routedPods) throw broken.routedPods;
      return routed;
    },
    secret: async (_ns, name) => {
      secretReads.push(name);
      const found = secrets.get(name);
      return found && { type: "Opaque", ...found };
    },
    applyStatus: async (_wm, status, rv) => {
      preconditions.push(rv);
      if (model().metadata!.resourceVersion !== rv) throw conflict();
      // As the API server does: a write that changes nothing makes no new version.
      if (canonical((model() as { status?: unknown }).status ?? {}) === canonical(status)) return rv;
      writes.push("status");
      statuses.push(status);
      return store("WaveletModel", { ...model(), status } as KubernetesObject);
    },
    updateModel: async (raw, change) => {
      if (model().metadata!.resourceVersion !== raw.metadata!.resourceVersion) throw conflict();
      writes.push("model");
      const annotations = { ...raw.metadata!.annotations };
      for (const a of change.clearAnnotations) delete annotations[a];
      return store("WaveletModel", { ...raw, metadata: { ...raw.metadata, annotations }, ...(change.spec ? { spec: change.spec } : {}) });
    },
    event: async (_wm, e) => void (writes.push(`event ${e.reason}`), events.push(e.reason)),
  };
  const clock = new FakeClock();
  const metrics = createMetrics();
  const reconciler = new Reconciler({
    caches: {
      models: caches.WaveletModel,
      replicasets: caches.ReplicaSet,
      deployments: caches.Deployment,
      pods,
      services: caches.Service,
      hpas: caches.HorizontalPodAutoscaler,
      pdbs: caches.PodDisruptionBudget,
      ingresses: caches.Ingress,
      ...(gatewayApi ? { httproutes: caches.HTTPRoute } : {}),
      secrets: secretsCache,
    } as unknown as Caches,
    writer,
    clock,
    settings,
    analyses: new AnalysisRuns(async (wm, targets) => (analyzerCalls.push(targets), analyzer(wm, targets)), () => undefined),
    metrics,
    log: { warn: (msg: string) => void warnings.push(msg), info: () => undefined },
  });

  const newPod = (rs: V1ReplicaSet, hash: string, ready: boolean): V1Pod => ({
    metadata: {
      name: generatedName(`${rs.metadata!.name}-`, ++podSeq),
      namespace: rs.metadata!.namespace,
      uid: `uid-pod-${podSeq}`,
      labels: rs.spec!.template!.metadata!.labels,
      annotations: { ...rs.spec!.template!.metadata!.annotations, [TEMPLATE_HASH]: hash },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: rs.metadata!.name!, uid: rs.metadata!.uid!, controller: true }],
    },
    status: { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  });
  /** The ReplicaSet controller: removes deleted pods, adds pods of the current template up to replicas, removes surplus; never re-templates. */
  const rsController = () => {
    for (const p of serverPods.list()) if (p.metadata?.deletionTimestamp) serverPods.items.delete(`${p.metadata.namespace}/${p.metadata.name}`);
    for (const rs of server.ReplicaSet.list() as V1ReplicaSet[]) {
      const owned = serverPods.list().filter((p) => p.metadata?.ownerReferences?.some((r) => r.uid === rs.metadata!.uid));
      const want = rs.spec!.replicas ?? 1;
      for (const p of owned.slice(want)) serverPods.items.delete(`${p.metadata!.namespace}/${p.metadata!.name}`);
      const hash = rs.spec!.template!.metadata!.annotations![TEMPLATE_HASH]!;
      for (let i = owned.length; i < want; i++) {
        const p = newPod(rs, hash, readyByHash.get(hash) !== false);
        serverPods.set(p);
      }
    }
    // Pods of ReplicaSets that are gone are garbage-collected.
    const uids = new Set(server.ReplicaSet.list().map((rs) => rs.metadata!.uid));
    for (const p of serverPods.list()) if (!p.metadata!.ownerReferences!.some((r) => uids.has(r.uid))) serverPods.items.delete(`${p.metadata!.namespace}/${p.metadata!.name}`);
    // Readiness follows the template (a test may change its mind about one).
    for (const p of serverPods.list()) {
      const ready = readyByHash.get(p.metadata!.annotations![TEMPLATE_HASH]!) !== false;
      serverPods.set({ ...p, status: { ...p.status, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] } });
    }
  };
  /**
   * The watches deliver what the server has for these kinds (all of them by default); with
   * the ReplicaSets, the ReplicaSet controller acts first and the pods are delivered too.
   */
  const sync = (...kinds: Kind[]) => {
    const all = !kinds.length;
    for (const kind of all ? KINDS : kinds) {
      caches[kind].items.clear();
      for (const o of server[kind].list()) caches[kind].set(o);
    }
    if (!all && !kinds.includes("ReplicaSet")) return;
    rsController();
    for (const kind of ["ReplicaSet"] as const) {
      caches[kind].items.clear();
      for (const o of server[kind].list()) caches[kind].set(o);
    }
    syncPods();
  };
  const syncPods = () => {
    pods.items.clear();
    for (const p of serverPods.list()) pods.set(p);
  };
  /** An object as both the server and the cache have it. */
  const seed = (kind: Kind, o: KubernetesObject) => {
    store(kind, o);
    sync(kind);
  };
  /** Pods of a given template under a ReplicaSet, as a real ReplicaSet keeps them after a re-template. */
  const seedPods = (rsName: string, hash: string, n: number, ready: boolean) => {
    const rs = server.ReplicaSet.get(rsName, "ns") as V1ReplicaSet;
    const owned = serverPods.list().filter((p) => p.metadata?.ownerReferences?.some((r) => r.uid === rs.metadata!.uid));
    for (const p of owned) serverPods.items.delete(`${p.metadata!.namespace}/${p.metadata!.name}`);
    for (let i = 0; i < n; i++) serverPods.set(newPod(rs, hash, ready));
    syncPods();
  };
  const pass = () => reconciler.reconcile(`ns/${name}`);
  /** Passes, each followed by the watches catching up and the ReplicaSet controller acting. */
  const settle = async (n = 4) => {
    for (let i = 0; i < n; i++) {
      await pass().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 0));
      sync();
    }
  };
  const applied = (ref: string) => server[ref.split("/")[0] as Kind].get(ref.split("/")[1]!, "ns");
  const selector = (from: FakeCache<KubernetesObject>) => (from.get(name, "ns") as V1Service | undefined)?.spec?.selector?.["wavelet.dev/color"];
  /** The pods a ReplicaSet controls, not being deleted. */
  const podsOfRs = (rs: string) => {
    const uid = server.ReplicaSet.get(rs, "ns")?.metadata?.uid;
    return serverPods.list().filter((p) => p.metadata!.ownerReferences!.some((r) => r.uid === uid) && !p.metadata?.deletionTimestamp);
  };
  return {
    caches,
    server,
    pods,
    serverPods,
    readyByHash,
    requests,
    sent,
    writes,
    statuses,
    preconditions,
    events,
    warnings,
    analyzerCalls,
    secrets,
    secretReads,
    clock,
    metrics,
    pass,
    settle,
    sync,
    seed,
    seedPods,
    model,
    applied,
    podsOfRs,
    activeSelector: () => selector(server.Service),
    route: (names: string[]) => void (routed = names),
    onRead: (fn: (o: KubernetesObject) => void) => void (afterRead = fn),
    failApplyWhen: (fn: (o: KubernetesObject) => boolean) => void (failApply = fn),
    broken,
  };
}

export type Harness = ReturnType<typeof harness>;
