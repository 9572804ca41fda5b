import type { KubernetesObject, V1Deployment } from "@kubernetes/client-node";
import { COLORS, type Color, type WaveletModel, waveletModel, waveletModelSpec } from "../api/waveletmodel.js";
import type { Clock } from "../controller/clock.js";
import type { ReconcileResult } from "../controller/controller.js";
import type { Caches } from "../controller/informers.js";
import type { EventRecord } from "../kube/client.js";
import type { Metrics } from "../metrics.js";
import type { Analyzer } from "./analysis.js";
import { type ColorState, decide, type Observation } from "./bluegreen.js";
import { type DeploymentSettings, desiredDeployment, templateHash } from "./deployment.js";
import { desiredHpa } from "./hpa.js";
import { TEMPLATE_HASH, deploymentName, hpaName, previewServiceName } from "./names.js";
import { desiredServices, endpoint } from "./service.js";
import { buildStatus, sameStatus } from "./status.js";

/**
 * One reconcile pass for one WaveletModel, by key: read the model and its children from the
 * informer caches, decide (bluegreen.ts), apply the desired children, record events, and
 * write the status once. Nothing here remembers anything between passes.
 */

/** The writes a pass makes (KubeClient in production, a recorder in tests). */
export interface Writer {
  apply<T extends KubernetesObject>(object: T): Promise<unknown>;
  deleteIfPresent(object: KubernetesObject): Promise<void>;
  /** Each write answers the resourceVersion the object has afterwards. */
  applyStatus(wm: WaveletModel, status: NonNullable<WaveletModel["status"]>): Promise<string | undefined>;
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
  /**
   * The resourceVersions each model went through up to this operator's last write to it:
   * the one a pass read, and those its own earlier writes made (a promotion clears the
   * annotation, then records the switch in status). While the cache shows any of them, a
   * pass would decide from a state older than its own writes (and, say, point the Service
   * back at the old colour), so it waits for the watch to catch up. A write that changed
   * nothing (same version after) is not waited for.
   */
  private readonly stale = new Map<string, Set<string>>();

  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const { caches, writer, clock, settings } = this.deps;
    const [namespace, name] = key.split("/") as [string, string];
    const raw = caches.models.get(name, namespace);
    // Deleted: owner references let the garbage collector remove the children.
    if (!raw || raw.metadata?.deletionTimestamp) {
      this.stale.delete(key);
      return {};
    }
    const seen = raw.metadata?.resourceVersion;
    if (seen !== undefined && this.stale.get(key)?.has(seen)) return { requeueAfterMs: CATCH_UP_MS };
    this.stale.delete(key);
    let current = seen;
    // Each write makes the version before it stale.
    const wrote = (after: string | undefined) => {
      if (current === undefined || after === undefined || after === current) return;
      const versions = this.stale.get(key) ?? new Set<string>();
      this.stale.set(key, versions.add(current));
      current = after;
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
      wrote(await writer.updateModel(raw, { clearAnnotations: plan.clearAnnotations, ...(plan.rollbackSpec ? { spec: plan.rollbackSpec } : {}) }));
      // A rollback changes the spec: the resulting watch event starts the next pass from it.
      if (plan.rollbackSpec) {
        await this.record(wm, plan.events, now);
        return {};
      }
    }

    for (const color of COLORS) {
      const target = plan.colors[color];
      if (target === "keep") continue;
      await writer.apply(desiredDeployment(wm, target.spec, color, target.replicas, settings));
      this.deps.metrics.applies.inc({ kind: "Deployment" });
    }
    for (const service of desiredServices(wm, plan.active, plan.preview)) {
      await writer.apply(service);
      this.deps.metrics.applies.inc({ kind: "Service" });
    }
    const hpa = desiredHpa(wm, plan.active);
    if (hpa) {
      await writer.apply(hpa);
      this.deps.metrics.applies.inc({ kind: "HorizontalPodAutoscaler" });
    } else if (caches.hpas.get(hpaName(wm), namespace)) {
      await writer.deleteIfPresent({ apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", metadata: { name: hpaName(wm), namespace } });
    }

    await this.record(wm, plan.events, now);
    const status = buildStatus(observation, plan);
    if (!sameStatus(wm.status, status)) wrote(await writer.applyStatus(wm, status));
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
