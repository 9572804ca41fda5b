import type { KubernetesObject, ObjectCache, V1Deployment } from "@kubernetes/client-node";
import { COLORS, type Color, type WaveletModel, waveletModel, waveletModelSpec } from "../api/waveletmodel.js";
import type { Clock } from "../controller/clock.js";
import type { ReconcileResult } from "../controller/controller.js";
import type { Caches } from "../controller/informers.js";
import type { EventRecord } from "../kube/client.js";
import type { Metrics } from "../metrics.js";
import type { Analyzer } from "./analysis.js";
import { type ColorState, decide, type Observation } from "./bluegreen.js";
import { ABSENT, Expectations } from "./expectations.js";
import { type DeploymentSettings, desiredDeployment, templateHash } from "./deployment.js";
import { desiredHpa } from "./hpa.js";
import { TEMPLATE_HASH, deploymentName, hpaName, previewServiceName } from "./names.js";
import { desiredServices, endpoint } from "./service.js";
import { buildStatus, sameStatus } from "./status.js";

/**
 * One reconcile pass for one WaveletModel, by key: read the model and its children from the
 * informer caches, decide (bluegreen.ts), write the status once (conditionally), record the
 * events, then apply the desired children. Between passes it remembers only the versions
 * its own writes made obsolete (expectations.ts); everything else is read again.
 */

/** The writes a pass makes (KubeClient in production, a recorder in tests). */
export interface Writer {
  apply(object: KubernetesObject): Promise<string | undefined>;
  deleteIfPresent(object: KubernetesObject): Promise<void>;
  /** Each write answers the resourceVersion the object has afterwards. */
  /** Conditional on the model still being at `resourceVersion` (409 otherwise). */
  applyStatus(wm: WaveletModel, status: NonNullable<WaveletModel["status"]>, resourceVersion: string): Promise<string | undefined>;
  updateModel(raw: KubernetesObject, change: { clearAnnotations: string[]; spec?: WaveletModel["spec"] }): Promise<string | undefined>;
  event(wm: WaveletModel, e: EventRecord, now: Date): Promise<void>;
}

// How soon to look again while the cache has not yet shown this operator's own last write.
const CATCH_UP_MS = 200;

export interface ReconcilerDeps {
  caches: Caches;
  writer: Writer;
  clock: Clock;
  settings: DeploymentSettings;
  analyzer: Analyzer;
  metrics: Metrics;
  log: { warn: (msg: string, extra?: unknown) => void; info: (msg: string, extra?: unknown) => void };
}

function colorState(d: V1Deployment | undefined): ColorState | undefined {
  if (!d) return undefined;
  const replicas = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const seen = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
  return {
    templateHash: d.metadata?.annotations?.[TEMPLATE_HASH],
    specReplicas: replicas,
    readyReplicas: s.readyReplicas ?? 0,
    availableReplicas: s.availableReplicas ?? 0,
    rolledOut: seen && (s.updatedReplicas ?? 0) >= replicas && (s.replicas ?? 0) <= replicas,
  };
}

export class Reconciler {
  private readonly expectations = new Expectations();

  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const { caches, writer, clock, settings } = this.deps;
    const [namespace, name] = key.split("/") as [string, string];
    const raw = caches.models.get(name, namespace);
    // Deleted: owner references let the garbage collector remove the children.
    if (!raw || raw.metadata?.deletionTimestamp) {
      this.expectations.forget(key);
      return {};
    }
    const cache: Record<string, ObjectCache<KubernetesObject>> = {
      WaveletModel: caches.models,
      Deployment: caches.deployments,
      Service: caches.services,
      HorizontalPodAutoscaler: caches.hpas,
    };
    const cached = (ref: string) => {
      const [kind, objectName] = ref.split("/") as [string, string];
      return cache[kind]?.get(objectName, namespace)?.metadata?.resourceVersion ?? ABSENT;
    };
    const timedOut = (refs: string[]) => this.deps.log.warn(`${key}: the cache never showed this operator's writes to ${refs.join(", ")}; going ahead`);
    if (this.expectations.behind(key, cached, clock.now(), timedOut)) return { requeueAfterMs: CATCH_UP_MS };

    const modelRef = `WaveletModel/${name}`;
    let modelVersion = cached(modelRef);
    const wroteModel = (after: string | undefined) => {
      this.expectations.wrote(key, modelRef, modelVersion, after, clock.now());
      modelVersion = after ?? modelVersion;
    };
    const apply = async (object: KubernetesObject) => {
      const ref = `${object.kind}/${object.metadata!.name}`;
      this.expectations.wrote(key, ref, cached(ref), await writer.apply(object), clock.now());
      this.deps.metrics.applies.inc({ kind: object.kind! });
    };
    const parsed = waveletModel.safeParse(raw);
    if (!parsed.success) {
      // The CRD rejects invalid specs; this only happens with a CRD older than the operator.
      this.deps.log.warn(`${key}: cannot read spec: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      return {};
    }
    const wm = parsed.data;
    const now = clock.now();
    const lastGood = waveletModelSpec.safeParse(wm.status?.lastGoodSpec);
    const colors: Partial<Record<Color, ColorState>> = {};
    for (const color of COLORS) {
      const state = colorState(caches.deployments.get(deploymentName(wm, color), namespace));
      if (state) colors[color] = state;
    }
    const observation: Observation = {
      wm,
      now,
      desiredHash: templateHash(wm, wm.spec, settings),
      activeSpec: lastGood.success ? lastGood.data : undefined,
      colors,
    };
    if (wm.status?.rollout?.phase === "Analyzing") {
      observation.analysis = await this.deps.analyzer(wm, { preview: endpoint(wm, previewServiceName(wm)), active: endpoint(wm) });
    }
    const plan = decide(observation);

    if (plan.rollbackSpec || plan.clearAnnotations.length) {
      wroteModel(await writer.updateModel(raw, { clearAnnotations: plan.clearAnnotations, ...(plan.rollbackSpec ? { spec: plan.rollbackSpec } : {}) }));
      // A rollback changes the spec: the resulting watch event starts the next pass from it.
      if (plan.rollbackSpec) {
        await this.record(wm, plan.events, now);
        return {};
      }
    }

    // The decision is recorded before anything moves: the status write is conditional on the
    // version this pass read, so a pass that decided from an old version changes nothing.
    const status = buildStatus(observation, plan);
    if (!sameStatus(wm.status, status)) wroteModel(await writer.applyStatus(wm, status, modelVersion));
    await this.record(wm, plan.events, now);

    for (const color of COLORS) {
      const target = plan.colors[color];
      if (target === "keep") continue;
      await apply(desiredDeployment(wm, target.spec, color, target.replicas, settings));
    }
    for (const service of desiredServices(wm, plan.active, plan.preview)) await apply(service);
    const hpa = desiredHpa(wm, plan.active);
    if (hpa) {
      await apply(hpa);
    } else if (caches.hpas.get(hpaName(wm), namespace)) {
      await writer.deleteIfPresent({ apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", metadata: { name: hpaName(wm), namespace } });
    }
    this.observeRollout(wm, plan.events, now);
    return plan.requeueAfterMs === undefined ? {} : { requeueAfterMs: plan.requeueAfterMs };
  }

  private async record(wm: WaveletModel, events: EventRecord[], now: number): Promise<void> {
    for (const e of events) {
      this.deps.log.info(`${wm.metadata.namespace}/${wm.metadata.name}: ${e.reason}: ${e.message}`);
      // An event that cannot be written must not fail the pass that already changed the cluster.
      await this.deps.writer.event(wm, e, new Date(now)).catch((err: unknown) => this.deps.log.warn("event not recorded", { err: String(err) }));
    }
  }

  private observeRollout(wm: WaveletModel, events: EventRecord[], now: number): void {
    const started = wm.status?.rollout?.startedAt;
    if (!started) return;
    const seconds = (now - Date.parse(started)) / 1000;
    for (const e of events) {
      if (e.reason === "Promoted") this.deps.metrics.rolloutSeconds.observe({ result: "promoted" }, seconds);
      if (e.type === "Warning") this.deps.metrics.rolloutSeconds.observe({ result: "failed" }, seconds);
    }
  }
}
