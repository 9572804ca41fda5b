import { createHash } from "node:crypto";
import type { KubernetesObject, ObjectCache, V1Pod, V1ReplicaSet, V1Service } from "@kubernetes/client-node";
import {
  COLORS,
  type Color,
  type WaveletModel,
  type WaveletModelSpec,
  type WaveletModelStatus,
  waveletModel,
  waveletModelSpec,
  secretRefs,
  waveletModelStatus,
} from "../api/waveletmodel.js";
import type { ReconcileResult } from "../controller/controller.js";
import { type EventRecord, firstKey, statusCode } from "../kube/client.js";
import type { AnalysisRuns } from "./analysis.js";
import { type ColorState, decide, type Observation, type Plan, type SpecProblem, servedSpec } from "./bluegreen.js";
import { colorState, podsOf } from "./colorstate.js";
import { Expectations } from "./expectations.js";
import { activeReplicas, desiredHpa } from "./hpa.js";
import { desiredPdb } from "./pdb.js";
import { desiredHttpRoutes, desiredIngress } from "./routes.js";
import { FIELD_MANAGER, LABELS, TEMPLATE_HASH, podReady } from "../api/labels.js";
import { podMetricsUrl } from "../api/metrics.js";
import { activeServiceName, hpaName, previewServiceName, replicaSetName } from "./names.js";
import { HTTPROUTE_API_VERSION } from "../api/gatewayapi.js";
import { recoverStatus } from "./recover.js";
import { type PodSettings, type TemplateInputs, desiredReplicaSet, stalePods, templateHash } from "./replicaset.js";
import { desiredServices, endpoint } from "./service.js";
import { buildStatus, failureOf, failureStatus, problemReported } from "./status.js";
import { tlsSecretProblem, trustAnchor } from "./tls.js";
import { servingColors } from "./serving.js";
import { ChildFailed, controlledBy, Pass, type PassDeps } from "./pass.js";
import { applyIsNoop, stamped } from "./unchanged.js";

/**
 * One reconcile pass for one WaveletModel, by key: read the model and its children from the
 * informer caches, decide (bluegreen.ts), write the status once (conditionally), record the
 * events, then apply the desired children. A pass that would change nothing writes nothing
 * (unchanged.ts). Between passes it remembers only the versions its own writes made obsolete
 * (expectations.ts); everything else is read again.
 */

// How soon to look again while the cache has not yet shown this operator's own last write.
const CATCH_UP_MS = 200;

export interface ReconcilerDeps extends PassDeps {
  settings: PodSettings;
  analyses: AnalysisRuns;
}

export class Reconciler {
  private readonly expectations = new Expectations();
  /** By model: its TLS Secret as last checked ("name@resourceVersion") and what was wrong with it. */
  private readonly tlsChecked = new Map<string, { secret: string; problem: string | undefined }>();

  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split("/") as [string, string];
    const raw = this.deps.caches.models.get(name, namespace);
    // Deleted: owner references let the garbage collector remove the children.
    if (!raw || raw.metadata?.deletionTimestamp) {
      this.expectations.forget(key);
      this.deps.analyses.forget(key);
      this.tlsChecked.delete(key);
      return {};
    }
    const pass = new Pass(this.deps, this.expectations, key, raw);
    if (pass.behind()) return { requeueAfterMs: CATCH_UP_MS };
    try {
      return await this.decideAndWrite(pass, key, raw);
    } finally {
      this.deps.metrics.passWrites.observe(pass.writes);
    }
  }

  private async decideAndWrite(pass: Pass, key: string, raw: KubernetesObject): Promise<ReconcileResult> {
    const { caches, clock } = this.deps;
    const { namespace, name } = raw.metadata as { namespace: string; name: string };
    const parsed = waveletModel.omit({ status: true }).safeParse(raw);
    if (!parsed.success) {
      // The CRD rejects invalid specs; this only happens with a CRD older than the operator.
      await pass.reportInvalidSpec(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
      return {};
    }
    // An unreadable status is a lost one: recovered below from the live objects.
    const status = waveletModelStatus.safeParse((raw as { status?: unknown }).status ?? {});
    let wm: WaveletModel = { ...parsed.data, status: status.success ? status.data : undefined };
    const now = clock.now();
    const colors: Partial<Record<Color, ColorState>> = {};
    const pods = caches.pods.list(namespace);
    const state = (rs: V1ReplicaSet | undefined) => colorState(rs, rs ? podsOf(rs, pods) : []);
    for (const color of COLORS) {
      const found = state(caches.replicasets.get(replicaSetName(wm, color), namespace));
      if (found) colors[color] = found;
    }
    const recovered = recoverStatus(wm.status, caches.services.get(activeServiceName(wm), namespace), colors);
    if (recovered) wm = { ...wm, status: { ...wm.status, ...recovered.status } };
    const activeService = caches.services.get(activeServiceName(wm), namespace);
    const serving = servingColors(wm.status, activeService?.spec?.selector?.[LABELS.color]);
    const inputs = this.templateInputs(namespace);
    let observed: { observation: Observation; live: Partial<Record<Color, V1ReplicaSet>> };
    try {
      observed = await this.observe(pass, key, wm, now, { colors, pods, state, activeService, inputs });
    } catch (error) {
      // Reads from the API server (not the caches) can fail before there is a plan: said in
      // status and one Event like a failed write.
      if (statusCode(error) === 409) throw error;
      await this.reportFailure(pass, wm, error, now);
      throw error;
    }
    const { observation, live } = observed;
    const plan = decide(observation);
    if (recovered) plan.events.unshift(recovered.event);
    for (const problem of observation.problems ?? []) {
      if (!problemReported(pass.status, problem)) plan.events.push({ type: "Warning", reason: problem.reason, message: problem.message });
    }

    // A failure reported by an earlier pass stays reported until a pass gets through.
    const reported = failureOf(pass.status);
    try {
      if (plan.rollbackSpec || plan.clearAnnotations.length) {
        await pass.guard(`WaveletModel/${name}`, () => pass.updateModel({ clearAnnotations: plan.clearAnnotations, ...(plan.rollbackSpec ? { spec: plan.rollbackSpec } : {}) }));
        // A rollback changes the spec: the resulting watch event starts the next pass from it.
        if (plan.rollbackSpec) {
          await this.record(pass, wm, plan.events, now);
          return {};
        }
      }
      // The decision is recorded before anything moves: the status write is conditional on the
      // version this pass read, so a pass that decided from an old version changes nothing.
      await pass.writeStatus(wm, buildStatus(observation, plan, reported));
      // Events and children after it, side by side: each waits for the status write (the fence).
      await allInOrder([this.record(pass, wm, plan.events, now), this.applyChildren(pass, wm, plan, inputs, live, pods, serving)]);
      await this.retireDeployments(pass, wm, colors, serving);
    } catch (error) {
      if (statusCode(error) === 409) throw error;
      await this.reportFailure(pass, wm, error, now, (failure) => buildStatus(observation, plan, failure));
      throw error;
    }
    if (reported) await pass.writeStatus(wm, buildStatus(observation, plan));
    this.observeRollout(wm, plan.events, now);
    return plan.requeueAfterMs === undefined ? {} : { requeueAfterMs: plan.requeueAfterMs };
  }

  /**
   * What the decision needs besides the caches: the live counts of the colours the HPA scales,
   * the template hashes, the old colour's endpoints once its scale-down delay is over, and
   * the verdict of the analysis run (started here when there is none).
   */
  private async observe(
    pass: Pass,
    key: string,
    wm: WaveletModel,
    now: number,
    seen: {
      colors: Partial<Record<Color, ColorState>>;
      pods: readonly V1Pod[];
      state: (rs: V1ReplicaSet | undefined) => ColorState | undefined;
      activeService: V1Service | undefined;
      inputs: (spec: WaveletModelSpec) => TemplateInputs;
    },
  ): Promise<{ observation: Observation; live: Partial<Record<Color, V1ReplicaSet>> }> {
    const { settings } = this.deps;
    const { colors, pods, activeService, inputs } = seen;
    const { name, namespace } = wm.metadata;
    const live = await this.readLive(pass, wm, colors, seen.state);
    const lastGood = waveletModelSpec.safeParse(wm.status?.lastGoodSpec);
    const activeSpec = lastGood.success ? lastGood.data : undefined;
    const previous = waveletModelSpec.safeParse(wm.status?.rollout?.previousSpec);
    const ingress = activeService?.status?.loadBalancer?.ingress?.[0];
    const observation: Observation = {
      wm,
      now,
      ...(previous.success ? { previousSpec: previous.data } : {}),
      desiredHash: templateHash(wm, wm.spec, settings, inputs(wm.spec)),
      activeSpec,
      activeRendersAs: activeSpec && templateHash(wm, activeSpec, settings, inputs(activeSpec)),
      colors,
      legacyReplicas: this.legacyReplicas(wm, colors),
      activeServiceColor: activeService?.spec?.selector?.[LABELS.color],
      activeServiceExternal: { nodePort: activeService?.spec?.ports?.[0]?.nodePort, loadBalancer: ingress?.ip ?? ingress?.hostname },
      problems: await this.specProblems(key, wm),
    };
    const rollout = wm.status?.rollout;
    const ofColor = (p: V1Pod, color: string | undefined) => p.metadata?.labels?.[LABELS.model] === name && p.metadata.labels[LABELS.color] === color;
    if (rollout?.phase === "ScalingDown" && now >= Date.parse(rollout.since) + wm.spec.rollout.scaleDownDelaySeconds * 1000) {
      const routed = new Set(await this.deps.writer.routedPods(activeServiceName(wm), namespace));
      // By the pods' labels, not their names (generated names are cut short for long model
      // names): the old colour's pods, of its ReplicaSet or of an older operator's Deployment.
      observation.oldColorRouted = pods.some((p) => routed.has(p.metadata!.name!) && ofColor(p, rollout.color));
    }
    if (rollout?.phase === "Analyzing") {
      // The preview's ready pods of the new template, each read on its metrics port.
      const previewMetrics = pods
        .filter((p) => ofColor(p, wm.status?.previewColor) && p.metadata?.annotations?.[TEMPLATE_HASH] === rollout.templateHash && podReady(p))
        .flatMap((p) => podMetricsUrl(p) ?? []);
      const targets = async () => ({
        preview: endpoint(wm, previewServiceName(wm)),
        active: endpoint(wm, activeServiceName(wm), activeSpec),
        previewMetrics,
        apiKey: await this.key(wm, wm.spec.server.apiKeySecretRef),
        metricsKey: await this.key(wm, wm.spec.server.metricsApiKeySecretRef),
        // The preview's trust; the active colour's for a rollout that turns TLS off.
        ca: await this.trust(wm, wm.spec.tls ?? activeSpec?.tls),
      });
      observation.analysis = this.deps.analyses.poll(key, `${rollout.templateHash}#${rollout.analysis?.runs ?? 0}`, wm, targets);
    } else {
      // A verdict belongs to one analysis: a retry, or a rollout back at Deploying, runs anew.
      this.deps.analyses.forget(key);
    }
    return { observation, live };
  }

  /**
   * What the spec asks for that cannot be served: a TLS Secret the pods could not serve with
   * (read from the API server once per version the Secrets' metadata cache shows), routes on
   * a cluster without the Gateway API (none are made there; everything else is).
   */
  private async specProblems(key: string, wm: WaveletModel): Promise<SpecProblem[]> {
    const problems: SpecProblem[] = [];
    const tls = wm.spec.tls;
    const tlsProblem = tls && (await this.tlsProblem(key, wm.metadata.namespace, tls.secretName));
    if (tlsProblem) {
      const message = `spec.tls: Secret ${tls.secretName} ${tlsProblem}; no rollout to this spec starts until it is fixed (running pods keep the certificate they loaded)`;
      problems.push({ reason: "TLSSecretInvalid", message, holdsRollout: true });
    }
    if (wm.spec.route && !this.deps.caches.httproutes) {
      const message = "spec.route: this cluster does not serve gateway.networking.k8s.io/v1 HTTPRoutes; install the Gateway API CRDs (standard channel v1.x), then restart the operator";
      problems.push({ reason: "GatewayAPIMissing", message });
    }
    return problems;
  }

  private async tlsProblem(key: string, namespace: string, name: string): Promise<string | undefined> {
    const version = this.deps.caches.secrets.get(name, namespace)?.metadata?.resourceVersion;
    if (!version) return tlsSecretProblem(undefined);
    const checked = this.tlsChecked.get(key);
    if (checked?.secret === `${name}@${version}`) return checked.problem;
    const secret = await this.deps.writer.secret(namespace, name);
    const problem = tlsSecretProblem(secret);
    this.tlsChecked.set(key, { secret: `${name}@${secret?.resourceVersion ?? version}`, problem });
    return problem;
  }

  /** The certificates analysis trusts for a colour serving `tls` (reconcile/tls.ts). */
  private async trust(wm: WaveletModel, tls: WaveletModelSpec["tls"]): Promise<string | undefined> {
    if (!tls) return undefined;
    const ca = trustAnchor(await this.deps.writer.secret(wm.metadata.namespace, tls.secretName));
    if (!ca) throw new Error(`Secret ${tls.secretName} holds no certificate to verify the colours' HTTPS with`);
    return ca;
  }

  /** A key the server takes, from the Secret `ref` names, for analysis. */
  private async key(wm: WaveletModel, ref: { name: string; key: string } | undefined): Promise<string | undefined> {
    return ref ? firstKey(await this.deps.writer.secret(wm.metadata.namespace, ref.name), ref.key) : undefined;
  }

  /**
   * Under autoscaling the count of the colour the HPA scales moves under the operator (the
   * HPA, or a person scaling it): read afresh, for the rollout's size and so an apply never
   * undoes a scale the cache does not show yet. That is the active colour, and during a
   * promotion also the new one (the HPA moved to it with the Service).
   */
  private async readLive(
    pass: Pass,
    wm: WaveletModel,
    colors: Partial<Record<Color, ColorState>>,
    state: (rs: V1ReplicaSet | undefined) => ColorState | undefined,
  ): Promise<Partial<Record<Color, V1ReplicaSet>>> {
    const live: Partial<Record<Color, V1ReplicaSet>> = {};
    if (!wm.spec.autoscaling) return live;
    const rollout = wm.status?.rollout;
    const scaled = new Set([wm.status?.activeColor, rollout?.phase === "Promoting" ? rollout.color : undefined]);
    for (const color of COLORS) {
      if (!scaled.has(color) || !colors[color]) continue;
      const found = (await pass.read({ apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: replicaSetName(wm, color), namespace: wm.metadata.namespace } })) as V1ReplicaSet | undefined;
      live[color] = found;
      const counted = state(found);
      if (counted) colors[color] = counted;
    }
    return live;
  }

  /** The replica count of each of this model's Deployments of an older operator, for colours with no ReplicaSet yet. */
  private legacyReplicas(wm: WaveletModel, colors: Partial<Record<Color, ColorState>>): Partial<Record<Color, number>> {
    const counts: Partial<Record<Color, number>> = {};
    for (const color of COLORS) {
      const old = this.deps.caches.deployments.get(replicaSetName(wm, color), wm.metadata.namespace);
      if (!colors[color] && old && controlledBy(old, wm.metadata.uid)) counts[color] = old.spec?.replicas ?? 1;
    }
    return counts;
  }

  /**
   * A pass that failed says so in status (Degraded, ReconcileFailed) and in one Event, not only
   * in a log, until the failure changes or goes away. `status` builds the status around the
   * failure when the pass got as far as a plan; before that, the last status is kept.
   */
  private async reportFailure(pass: Pass, wm: WaveletModel, error: unknown, now: number, status?: (failure: string) => WaveletModelStatus): Promise<void> {
    const failure = error instanceof ChildFailed ? error.message : `${(error as Error)?.message ?? error}`;
    const reported = failureOf(pass.status);
    const next = status ? status(failure) : failureStatus(wm.status, wm.metadata.generation, "ReconcileFailed", failure, now);
    await pass.writeStatus(wm, next).catch(() => undefined);
    if (failure !== reported) await this.record(pass, wm, [{ type: "Warning", reason: "ReconcileFailed", message: failure }], now);
  }

  /**
   * The TemplateInputs of each spec: a hash of the versions of the Secrets its pods read (the
   * version, not the value: the hash is visible to anyone who can read the ReplicaSet), from the
   * Secrets' metadata cache, whose every new version queues the models naming it.
   */
  private templateInputs(namespace: string): (spec: WaveletModelSpec) => TemplateInputs {
    return (spec) => {
      const used = [...new Set(secretRefs(spec).map((r) => r.name))].sort();
      if (!used.length) return {};
      const versions = used.map((n) => `${n}@${this.deps.caches.secrets.get(n, namespace)?.metadata?.resourceVersion ?? "missing"}`);
      return { secretsHash: createHash("sha256").update(versions.join(",")).digest("hex").slice(0, 16) };
    };
  }

  private async applyChildren(
    pass: Pass,
    wm: WaveletModel,
    plan: Plan,
    inputs: (spec: WaveletModelSpec) => TemplateInputs,
    live: Partial<Record<Color, V1ReplicaSet>>,
    pods: readonly V1Pod[],
    serving: Set<Color>,
  ): Promise<void> {
    const { caches, settings } = this.deps;
    const namespace = wm.metadata.namespace;
    const hpa = desiredHpa(wm, plan.active);
    const services = desiredServices(wm, plan.active, plan.preview, (color) => servedSpec(wm, plan, color));
    const pdb = desiredPdb(wm, plan.active);
    const routes = caches.httproutes ? desiredHttpRoutes(wm) : [];
    const ingress = desiredIngress(wm);
    const optional = [...(hpa ? [hpa] : []), ...routes, ...(ingress ? [ingress] : [])];
    const replicaSets = COLORS.filter((c) => plan.colors[c] !== "keep").map((c) => ({ apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: replicaSetName(wm, c), namespace } }));
    // Children the cache does not have are read first (whose are they?): all at once, not step by step.
    pass.prefetch([...replicaSets, ...services, pdb, ...optional]);
    const replicaSet = async (color: Color) => {
      const target = plan.colors[color];
      if (target === "keep") return;
      const desired = (replicas: number | undefined) => desiredReplicaSet(wm, target.spec, color, replicas, settings, inputs(target.spec));
      // The colour the HPA scales, as read afresh: once another manager (the HPA) has set the
      // count, it is left out and stays theirs; until then the apply is conditional on the
      // version read, so a scale in between fails it (409, the pass reads again) instead of
      // being undone.
      const scaled = live[color];
      if (hpa && color === plan.active && scaled) {
        const ours = !replicasSetByOthers(scaled);
        const object = desired(ours ? activeReplicas(wm, scaled.spec?.replicas) : undefined);
        if (ours) object.metadata!.resourceVersion = scaled.metadata?.resourceVersion;
        return pass.apply(object);
      }
      const object = desired(target.replicas);
      await pass.apply(object);
      // A re-templated colour that serves no traffic: its pods of the older template go, the
      // ReplicaSet makes new ones. Once the cache shows the new template (so, most likely, the
      // ReplicaSet controller's does too, and it does not make one more of the old).
      const cached = caches.replicasets.get(object.metadata!.name!, namespace);
      const guarded = serving.has(color) || (serving.size > 0 && color === plan.active);
      if (!cached || guarded || !applyIsNoop(stamped(object), cached)) return;
      await allInOrder(stalePods(object, podsOf(cached, pods)).map((pod) => pass.delete({ apiVersion: "v1", kind: "Pod", metadata: { name: pod.metadata!.name!, namespace } })));
    };
    // Three steps, each one's writes concurrent: the colours that keep or gain pods; then
    // what routes traffic to them; then the colours going to zero, once traffic has left.
    const zero = (color: Color) => plan.colors[color] !== "keep" && (plan.colors[color] as { replicas: number }).replicas === 0;
    await allInOrder(COLORS.filter((c) => !zero(c)).map(replicaSet));
    await allInOrder([
      ...services.map((service) => pass.apply(service)),
      pass.apply(pdb),
      ...optional.map((child) => pass.apply(child)),
      ...this.dropped(wm, optional).map((child) => pass.delete(child)),
    ]);
    await allInOrder(COLORS.filter(zero).map(replicaSet));
  }

  /**
   * The children the spec may ask for or not (an HPA, routes, an Ingress) that it does not ask
   * for now: those of them this model owns, to delete (never another owner's of the same name).
   */
  private dropped(wm: WaveletModel, wanted: KubernetesObject[]): KubernetesObject[] {
    const { caches } = this.deps;
    const namespace = wm.metadata.namespace;
    const candidates: [string, string, string, ObjectCache<KubernetesObject> | undefined][] = [
      ["autoscaling/v2", "HorizontalPodAutoscaler", hpaName(wm), caches.hpas],
      [HTTPROUTE_API_VERSION, "HTTPRoute", activeServiceName(wm), caches.httproutes],
      [HTTPROUTE_API_VERSION, "HTTPRoute", previewServiceName(wm), caches.httproutes],
      ["networking.k8s.io/v1", "Ingress", activeServiceName(wm), caches.ingresses],
    ];
    const kept = new Set(wanted.map((o) => `${o.kind}/${o.metadata!.name}`));
    return candidates
      .filter(([, kind, name, cache]) => {
        const found = kept.has(`${kind}/${name}`) ? undefined : cache?.get(name, namespace);
        return found && controlledBy(found, wm.metadata.uid);
      })
      .map(([apiVersion, kind, name]) => ({ apiVersion, kind, metadata: { name, namespace } }));
  }

  /**
   * Deployments of an operator from before ReplicaSets (same name and pod labels as a colour's
   * ReplicaSet): one that serves no traffic is deleted at once; one that does (servingColors)
   * once the colour's ReplicaSet has every replica available, so the Services always have
   * ready pods to select.
   */
  private async retireDeployments(pass: Pass, wm: WaveletModel, colors: Partial<Record<Color, ColorState>>, serving: Set<Color>): Promise<void> {
    const namespace = wm.metadata.namespace;
    const retire = COLORS.filter((color) => {
      const old = this.deps.caches.deployments.get(replicaSetName(wm, color), namespace);
      if (!old || !controlledBy(old, wm.metadata.uid)) return false;
      const state = colors[color];
      return !serving.has(color) || (!!state && state.rolledOut && state.availableReplicas >= state.specReplicas);
    });
    await allInOrder(retire.map((color) => pass.delete({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: replicaSetName(wm, color), namespace } })));
  }

  private async record(pass: Pass, wm: WaveletModel, events: EventRecord[], now: number): Promise<void> {
    // An Event says what a pass decided: only a pass that still holds the model's version may.
    if (events.length) await pass.fence();
    for (const e of events) {
      pass.writes++;
      this.deps.metrics.events.inc({ type: e.type, reason: e.reason });
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

/**
 * Concurrent writes; when several fail, the error of the first in list order, not the first to
 * arrive: the reported failure (status, one Event) must not change from pass to pass with timing.
 */
async function allInOrder(writes: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(writes)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}


/** Another field manager (the HPA, through the scale subresource) has set spec.replicas. */
function replicasSetByOthers(d: V1ReplicaSet): boolean {
  return !!d.metadata?.managedFields?.some((m) => m.manager !== FIELD_MANAGER && (m.fieldsV1 as { "f:spec"?: { "f:replicas"?: unknown } } | undefined)?.["f:spec"]?.["f:replicas"] !== undefined);
}
