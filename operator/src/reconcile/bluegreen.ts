import {
  ANNOTATIONS,
  type Color,
  type RolloutStatus,
  type WaveletModel,
  type WaveletModelSpec,
  type WaveletModelStatus,
} from "../api/waveletmodel.js";
import { activeReplicas } from "./hpa.js";
import { otherColor } from "./names.js";

/**
 * The blue-green decision, a pure function of what is observed (DESIGN §5):
 *
 * 1. A new template goes to the idle colour, scaled to the active colour's current replicas.
 * 2. When that colour is fully available with the new template (and analysis, if enabled,
 *    passed), the active Service and the HPA switch to it, automatically or on the
 *    wavelet.dev/promote annotation: "Promoting" is recorded first, the new colour becomes
 *    the active one in status once the Service selects it.
 * 3. The old colour keeps its pods for scaleDownDelaySeconds, then goes to zero.
 * 4. A rollout that misses its deadline, fails analysis or is aborted leaves the traffic on
 *    the old colour, scales the new one to zero and is not retried until the spec changes;
 *    status keeps the last good spec, and wavelet.dev/rollback=true puts it back.
 *
 * Everything needed to resume lives in the status the previous pass wrote, so a restarted
 * operator continues where the last one stopped.
 */

export interface ColorState {
  templateHash: string | undefined;
  specReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  /** No pod of another template is left, nor more pods than asked for (colorstate.ts). */
  rolledOut: boolean;
}

export type AnalysisVerdict = { result: "pass" | "fail"; message: string };

/** Something the spec asks for that the operator cannot provide, reported as Degraded with its reason (status.ts). */
export interface SpecProblem {
  reason: "TLSSecretInvalid" | "GatewayAPIMissing";
  message: string;
  /** Pods of the desired template could not serve: no rollout to it starts. */
  holdsRollout?: boolean;
}

export interface Observation {
  wm: WaveletModel;
  now: number;
  desiredHash: string;
  /** The spec the active colour serves (status.lastGoodSpec), when there is an active colour. */
  activeSpec: WaveletModelSpec | undefined;
  /**
   * The template hash activeSpec renders to now. It differs from status.activeTemplateHash
   * after an operator upgrade or a new server image: the active colour is then left as it
   * was rendered, and the change reaches it only through a rollout.
   */
  activeRendersAs: string | undefined;
  /**
   * Deployments of an operator from before ReplicaSets, by colour: their replica count (what
   * the HPA last chose), for a colour whose ReplicaSet does not exist yet. The ReplicaSet
   * that replaces the serving one starts at that count, not at the HPA's minimum.
   */
  legacyReplicas?: Partial<Record<Color, number>>;
  /** While scaling down: the spec the old colour serves (status.rollout.previousSpec). */
  previousSpec?: WaveletModelSpec;
  /** While scaling down: the active Service's EndpointSlices still list pods of the old colour. */
  oldColorRouted?: boolean;
  /** The colour the active Service selects, as the cache shows it (Promoting waits for the switch). */
  activeServiceColor?: string;
  /** Where the active Service is reached from outside: its node port, its load balancer. */
  activeServiceExternal?: { nodePort?: number; loadBalancer?: string };
  colors: Partial<Record<Color, ColorState>>;
  /** When status says Analyzing: the verdict of the run status has not counted yet, once it has finished. */
  analysis?: AnalysisVerdict;
  problems?: SpecProblem[];
}

/** What to apply for one colour; "keep" leaves its ReplicaSet as it is (or absent). */
export type ColorPlan = { spec: WaveletModelSpec; replicas: number } | "keep";

export interface PlanEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export interface Plan {
  colors: Record<Color, ColorPlan>;
  active: Color;
  preview: Color;
  status: Pick<WaveletModelStatus, "activeColor" | "previewColor" | "activeTemplateHash" | "lastGoodSpec" | "rollout" | "failedTemplateHash">;
  events: PlanEvent[];
  /** Come back by then even if nothing changes (deadlines, scale-down delay, analysis). */
  requeueAfterMs?: number;
  clearAnnotations: string[];
  /** The wavelet.dev/rollback annotation asked to put this spec back. */
  rollbackSpec?: WaveletModelSpec;
}

const iso = (ms: number) => new Date(ms).toISOString();
const isSet = (wm: WaveletModel, annotation: string) => ["true", "yes", "1"].includes((wm.metadata.annotations?.[annotation] ?? "").toLowerCase());

/**
 * The spec the pods of `color` serve once `plan` is applied: the active colour's last good
 * spec, any other colour the desired one (what the Services' protocol and the endpoints follow).
 */
export function servedSpec(wm: WaveletModel, plan: Plan, color: Color): WaveletModelSpec {
  const lastGood = plan.status.lastGoodSpec as unknown as WaveletModelSpec | undefined;
  return color === plan.status.activeColor && lastGood ? lastGood : wm.spec;
}

/**
 * Colour `color` runs template `hash` on every replica it should have, and at least
 * `replicas` of them are available (the active colour's current count: the HPA may have
 * moved it since the idle colour was scaled).
 */
function ready(state: ColorState | undefined, hash: string, replicas = 0): boolean {
  return !!state && state.templateHash === hash && state.rolledOut && state.availableReplicas >= Math.max(state.specReplicas, replicas);
}

/**
 * promote, abort and retry are one-shot: promote and abort concern the rollout under way,
 * retry a failed one. Set when there is none such, they are removed with an Event saying
 * so, never left to act on the next rollout.
 */
const ONE_SHOT = { [ANNOTATIONS.promote]: "PromoteIgnored", [ANNOTATIONS.abort]: "AbortIgnored", [ANNOTATIONS.retry]: "RetryIgnored" } as const;

function ignoreStaleAnnotations(
  wm: WaveletModel,
  why: string,
  events: PlanEvent[],
  clearAnnotations: string[],
  which: (keyof typeof ONE_SHOT)[] = [ANNOTATIONS.promote, ANNOTATIONS.abort, ANNOTATIONS.retry],
): void {
  for (const annotation of which) {
    const reason = ONE_SHOT[annotation];
    if (!(annotation in (wm.metadata.annotations ?? {}))) continue;
    clearAnnotations.push(annotation);
    events.push({ type: "Normal", reason, message: `${annotation} removed: ${why}` });
  }
}

export function decide(o: Observation): Plan {
  const { wm, now, desiredHash } = o;
  const status = wm.status ?? {};
  const rollout = status.rollout;
  const deadlineMs = wm.spec.rollout.progressDeadlineSeconds * 1000;
  const events: PlanEvent[] = [];
  const clearAnnotations: string[] = [];
  // A rollout of the desired template that began (before its pods stopped being able to serve) goes on to its verdict.
  const underWay = !!rollout && rollout.templateHash === desiredHash && rollout.phase !== "ScalingDown" && rollout.phase !== "Failed";
  const held = !underWay && !!o.problems?.some((p) => p.holdsRollout);

  // First deployment: blue, no traffic to protect.
  if (!status.activeColor || !status.activeTemplateHash) {
    ignoreStaleAnnotations(wm, "nothing serves yet, so there is nothing to switch from", events, clearAnnotations);
    const replicas = activeReplicas(wm, o.colors.blue?.specReplicas);
    const plan: Plan = {
      colors: { blue: { spec: wm.spec, replicas }, green: "keep" },
      active: "blue",
      preview: "blue",
      status: {},
      events,
      clearAnnotations,
    };
    if (ready(o.colors.blue, desiredHash)) {
      events.push({ type: "Normal", reason: "Deployed", message: `blue serves bundle ${wm.spec.bundle.digest}` });
      plan.status = { activeColor: "blue", previewColor: "blue", activeTemplateHash: desiredHash, lastGoodSpec: wm.spec as never };
      return plan;
    }
    if (held) {
      plan.colors.blue = "keep";
      return plan;
    }
    const since = rollout?.templateHash === desiredHash ? rollout.since : iso(now);
    if (!rollout || rollout.templateHash !== desiredHash) events.push({ type: "Normal", reason: "Deploying", message: "creating blue" });
    const overdue = now - Date.parse(since) > deadlineMs;
    plan.status = {
      rollout: {
        phase: overdue ? "Failed" : "Deploying",
        color: "blue",
        templateHash: desiredHash,
        startedAt: since,
        since,
        ...(overdue ? { message: `blue did not become available within ${wm.spec.rollout.progressDeadlineSeconds}s` } : {}),
      },
    };
    // With nothing else to serve, keep waiting for blue even past the deadline.
    plan.requeueAfterMs = overdue ? 10_000 : Math.max(1000, Date.parse(since) + deadlineMs - now);
    if (overdue && rollout?.phase !== "Failed") events.push({ type: "Warning", reason: "ProgressDeadlineExceeded", message: plan.status.rollout!.message! });
    return plan;
  }

  const active = status.activeColor;
  const idle = otherColor(active);
  const activeHash = status.activeTemplateHash;
  const activeState = o.colors[active];
  const replicasNow = activeReplicas(wm, activeState?.specReplicas ?? o.legacyReplicas?.[active]);
  // The active colour is re-applied only as it was rendered (or re-created if it is gone).
  // Without a recorded spec (status was lost) it is left exactly as it is.
  const reapply = !!o.activeSpec && (o.activeRendersAs === activeHash || !activeState);
  const plan: Plan = {
    colors: { [active]: reapply ? { spec: o.activeSpec!, replicas: replicasNow } : "keep", [idle]: "keep" } as Record<Color, ColorPlan>,
    active,
    preview: active,
    status: { activeColor: active, previewColor: active, activeTemplateHash: activeHash, lastGoodSpec: o.activeSpec as never, failedTemplateHash: status.failedTemplateHash },
    events,
    clearAnnotations,
  };
  const scaleIdleToZero = () => {
    if (o.colors[idle]) plan.colors[idle] = { spec: wm.spec, replicas: 0 };
  };

  if (isSet(wm, ANNOTATIONS.rollback) && !(rollout?.phase === "ScalingDown" && desiredHash === activeHash)) {
    clearAnnotations.push(ANNOTATIONS.rollback);
    if (desiredHash !== activeHash && o.activeSpec) {
      plan.rollbackSpec = o.activeSpec;
      events.push({ type: "Normal", reason: "RolledBack", message: `spec returned to the one ${active} serves (bundle ${o.activeSpec.bundle.digest})` });
    } else if (desiredHash !== activeHash) {
      events.push({ type: "Warning", reason: "RollbackUnavailable", message: `no spec is recorded for what ${active} serves (status was lost); set the spec by hand` });
    }
  }

  // While the old colour still has every pod (the scale-down delay after a promotion), an
  // abort or a rollback takes the traffic back to it at once: a rollback by putting its
  // spec back (the rollout to a colour that is already up switches right away), an abort
  // by switching back and marking the new template failed.
  const scalingDown = rollout?.phase === "ScalingDown" ? rollout : undefined;
  const oldUp = !!scalingDown && !!o.previousSpec && !!o.colors[idle]?.templateHash && ready(o.colors[idle], o.colors[idle]!.templateHash!, 1);
  if (scalingDown && oldUp && desiredHash === activeHash) {
    if (isSet(wm, ANNOTATIONS.abort)) {
      clearAnnotations.push(ANNOTATIONS.abort);
      events.push({ type: "Warning", reason: "RolloutAborted", message: `aborted during the scale-down delay: ${idle} serves again` });
      plan.active = idle;
      plan.preview = idle;
      plan.colors[active] = { spec: wm.spec, replicas: 0 };
      plan.colors[idle] = "keep";
      plan.status = {
        activeColor: idle,
        previewColor: idle,
        activeTemplateHash: o.colors[idle]!.templateHash,
        lastGoodSpec: o.previousSpec as never,
        failedTemplateHash: desiredHash,
        rollout: { phase: "Failed", color: active, templateHash: desiredHash, startedAt: scalingDown.startedAt, since: iso(now), message: "aborted after the switch" },
      };
      return plan;
    }
    if (isSet(wm, ANNOTATIONS.rollback) && !clearAnnotations.includes(ANNOTATIONS.rollback)) {
      clearAnnotations.push(ANNOTATIONS.rollback);
      plan.rollbackSpec = o.previousSpec;
      events.push({ type: "Normal", reason: "RolledBack", message: `spec returned to the one ${idle} still serves (bundle ${o.previousSpec!.bundle.digest})` });
      return plan;
    }
  }

  // The spec is what the active colour already serves: steady state. Edits that change no
  // template (replicas, port, autoscaling) are the last good spec from now on.
  const steady = desiredHash === activeHash;
  if (steady) {
    ignoreStaleAnnotations(wm, `no rollout is under way; ${active} serves the spec`, events, clearAnnotations);
    plan.colors[active] = { spec: wm.spec, replicas: replicasNow };
    plan.status.lastGoodSpec = wm.spec as never;
    plan.status.failedTemplateHash = undefined;
    if (rollout && rollout.phase !== "ScalingDown" && rollout.phase !== "Failed") {
      events.push({ type: "Normal", reason: "RolloutCancelled", message: `the spec went back to what ${active} serves` });
    }
  }

  // The old colour keeps its pods for the scale-down delay, and after it until the active
  // Service no longer routes to them. A new spec meanwhile waits: its rollout would
  // re-template those very pods.
  if (rollout?.phase === "ScalingDown") {
    const due = Date.parse(rollout.since) + wm.spec.rollout.scaleDownDelaySeconds * 1000;
    // ...unless the new spec is what those pods run (a rollback): nothing to re-template.
    const backToOld = oldUp && desiredHash === o.colors[idle]!.templateHash;
    if ((now < due || o.oldColorRouted) && !backToOld) {
      plan.status.rollout = rollout;
      plan.requeueAfterMs = now < due ? due - now : 1000;
      return plan;
    }
    if (!backToOld) events.push({ type: "Normal", reason: "ScaledDown", message: `${idle} scaled to zero after ${wm.spec.rollout.scaleDownDelaySeconds}s` });
  }
  if (steady) {
    scaleIdleToZero();
    return plan;
  }

  // A template that already failed: keep serving the old one until the spec changes, or
  // wavelet.dev/retry asks for another attempt (after a fix outside the spec: a pushed image,
  // a Secret, a quota).
  if (desiredHash === status.failedTemplateHash) {
    if (isSet(wm, ANNOTATIONS.retry)) {
      clearAnnotations.push(ANNOTATIONS.retry);
      plan.status.failedTemplateHash = undefined;
    } else {
      ignoreStaleAnnotations(wm, "this spec's rollout failed; change the spec, or annotate wavelet.dev/retry=true to try again", events, clearAnnotations);
      plan.status.rollout = rollout?.phase === "Failed" ? rollout : undefined;
      scaleIdleToZero();
      return plan;
    }
  }

  if (!clearAnnotations.includes(ANNOTATIONS.retry)) ignoreStaleAnnotations(wm, "nothing has failed", events, clearAnnotations, [ANNOTATIONS.retry]);

  // Pods that could not serve are not deployed: the active colour keeps the traffic, and
  // what fixes the problem (a new version of the Secret) queues the model again.
  if (held) {
    plan.status.rollout = undefined;
    scaleIdleToZero();
    return plan;
  }

  // Roll out the desired template on the idle colour.
  let current: RolloutStatus;
  if (rollout && underWay) {
    current = rollout;
  } else {
    current = { phase: "Deploying", color: idle, templateHash: desiredHash, startedAt: iso(now), since: iso(now) };
    events.push({ type: "Normal", reason: "RolloutStarted", message: `deploying bundle ${wm.spec.bundle.digest} on ${idle} with ${replicasNow} replicas` });
  }
  // Scaled to zero, the new bundle still gets one pod: nothing is promoted unverified.
  const previewReplicas = Math.max(1, replicasNow);
  plan.colors[idle] = { spec: wm.spec, replicas: previewReplicas };
  plan.preview = idle;
  plan.status.previewColor = idle;
  plan.status.rollout = current;

  const fail = (reason: string, message: string): Plan => {
    events.push({ type: "Warning", reason, message: `${message}; ${active} keeps the traffic` });
    plan.colors[idle] = { spec: wm.spec, replicas: 0 };
    plan.preview = active;
    plan.status.previewColor = active;
    plan.status.failedTemplateHash = desiredHash;
    plan.status.rollout = { phase: "Failed", color: idle, templateHash: desiredHash, startedAt: current.startedAt, since: iso(now), message };
    return plan;
  };
  // The switch takes two passes. This one records "Promoting" (conditionally: a pass working
  // from an old version writes nothing) and then moves the Services and the HPA; the next one,
  // once the cache shows the active Service on the new colour, records it as active (Ready
  // from then on) and starts the scale-down delay.
  const promote = (how: string): Plan => {
    plan.status.rollout = { ...current, phase: "Promoting", since: iso(now), message: how };
    return switchTraffic();
  };
  const switchTraffic = (): Plan => {
    plan.active = idle;
    plan.preview = idle;
    // The old colour keeps its pods (untouched) until the scale-down delay has passed.
    plan.colors[active] = "keep";
    plan.requeueAfterMs = 1000;
    return plan;
  };
  const promoted = (): Plan => {
    events.push({ type: "Normal", reason: "Promoted", message: `${idle} now serves bundle ${wm.spec.bundle.digest} (${current.message ?? "promoted"})` });
    switchTraffic();
    plan.status = {
      activeColor: idle,
      previewColor: idle,
      activeTemplateHash: desiredHash,
      lastGoodSpec: wm.spec as never,
      failedTemplateHash: undefined,
      rollout: {
        phase: "ScalingDown",
        color: active,
        templateHash: desiredHash,
        startedAt: current.startedAt,
        since: iso(now),
        ...(o.activeSpec ? { previousSpec: o.activeSpec as never } : {}),
      },
    };
    plan.requeueAfterMs = wm.spec.rollout.scaleDownDelaySeconds * 1000;
    return plan;
  };

  if (isSet(wm, ANNOTATIONS.abort)) {
    clearAnnotations.push(ANNOTATIONS.abort);
    return fail("RolloutAborted", "aborted by the wavelet.dev/abort annotation");
  }
  const promoteAsked = isSet(wm, ANNOTATIONS.promote);
  const previewReady = ready(o.colors[idle], desiredHash, previewReplicas);
  const phaseStarted = Date.parse(current.since);
  const overdue = now - phaseStarted > deadlineMs;

  switch (current.phase) {
    case "Deploying":
      if (!previewReady) {
        if (overdue) return fail("ProgressDeadlineExceeded", `${idle} did not become available within ${wm.spec.rollout.progressDeadlineSeconds}s`);
        plan.requeueAfterMs = phaseStarted + deadlineMs - now;
        return plan;
      }
      events.push({ type: "Normal", reason: "PreviewReady", message: `${idle} is available with the new bundle` });
      if (wm.spec.rollout.analysis.enabled) {
        plan.status.rollout = { ...current, phase: "Analyzing", since: iso(now) };
        plan.requeueAfterMs = 0;
        return plan;
      }
      if (wm.spec.rollout.autoPromote || promoteAsked) {
        if (promoteAsked) clearAnnotations.push(ANNOTATIONS.promote);
        return promote(promoteAsked ? "promoted by annotation" : "auto-promoted");
      }
      plan.status.rollout = { ...current, phase: "AwaitingPromotion", since: iso(now) };
      events.push({ type: "Normal", reason: "AwaitingPromotion", message: `annotate ${ANNOTATIONS.promote}=true to switch traffic to ${idle}` });
      return plan;

    case "Analyzing": {
      // Its ReplicaSet is gone (deleted, or the preview was an older operator's Deployment):
      // deployed again, and analysed again once available.
      if (!o.colors[idle]) {
        plan.status.rollout = { phase: "Deploying", color: idle, templateHash: desiredHash, startedAt: current.startedAt, since: iso(now) };
        plan.requeueAfterMs = deadlineMs;
        return plan;
      }
      // Not one pod of the new template available: lost. Fewer than asked for is not: the HPA
      // moving the active colour rescales the preview (AwaitingPromotion tolerates it too).
      if (!o.colors[idle]!.availableReplicas) return fail("PreviewLost", `${idle} stopped being available during analysis`);
      if (!o.analysis) {
        if (overdue) return fail("AnalysisDeadlineExceeded", `analysis did not pass within ${wm.spec.rollout.progressDeadlineSeconds}s`);
        // The run's end queues the model again; this is the deadline.
        plan.requeueAfterMs = phaseStarted + deadlineMs - now;
        return plan;
      }
      const runs = (current.analysis?.runs ?? 0) + 1;
      if (o.analysis.result === "fail") {
        const failures = (current.analysis?.failures ?? 0) + 1;
        if (failures > wm.spec.rollout.analysis.failureLimit) return fail("AnalysisFailed", `${o.analysis.message} (${failures} of ${runs} runs failed)`);
        // A transient failure: another run, within the same deadline.
        events.push({ type: "Warning", reason: "AnalysisRunFailed", message: `run ${runs}: ${o.analysis.message}` });
        plan.status.rollout = { ...current, analysis: { runs, failures, message: o.analysis.message } };
        plan.requeueAfterMs = 0;
        return plan;
      }
      // Passed: taken once the preview has caught up with the active colour's count (the
      // verdict waits for it, unrecorded, in the analysis run).
      if (!previewReady) {
        if (overdue) return fail("ProgressDeadlineExceeded", `${idle} did not catch up with ${active}'s ${replicasNow} replicas within ${wm.spec.rollout.progressDeadlineSeconds}s`);
        plan.requeueAfterMs = phaseStarted + deadlineMs - now;
        return plan;
      }
      events.push({ type: "Normal", reason: "AnalysisPassed", message: o.analysis.message });
      if (wm.spec.rollout.autoPromote || promoteAsked) {
        if (promoteAsked) clearAnnotations.push(ANNOTATIONS.promote);
        return promote("analysis passed");
      }
      plan.status.rollout = { ...current, phase: "AwaitingPromotion", since: iso(now), analysis: { runs, failures: current.analysis?.failures ?? 0, message: o.analysis.message } };
      return plan;
    }

    case "AwaitingPromotion":
      // The HPA moving the active colour rescales the preview: the phase stays, the switch
      // (annotation or not) waits until the preview has caught up.
      if (!previewReady) return plan;
      if (promoteAsked) {
        clearAnnotations.push(ANNOTATIONS.promote);
        return promote("promoted by annotation");
      }
      return plan;

    case "Promoting":
      return o.activeServiceColor === idle ? promoted() : switchTraffic();

    default:
      return plan;
  }
}
