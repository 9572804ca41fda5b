import type { Condition, WaveletModelSpec, WaveletModelStatus } from "../api/waveletmodel.js";
import { type Observation, type Plan, type SpecProblem, servedSpec } from "./bluegreen.js";
import { canonical } from "./canonical.js";
import { activeServiceName, previewServiceName } from "./names.js";
import { endpoint, scheme } from "./service.js";

/**
 * The status a reconcile pass writes (once per pass): conditions with observedGeneration,
 * a phase for kubectl, the colours, bundles, replicas and endpoints. A condition keeps its
 * lastTransitionTime while its status stays the same.
 */

function bundleRef(spec: WaveletModelSpec | undefined) {
  if (!spec) return undefined;
  const source = spec.bundle.image ?? `builtin:${spec.bundle.builtin}`;
  return { digest: spec.bundle.digest, source, ...(spec.bundle.version ? { version: spec.bundle.version } : {}) };
}

function condition(
  previous: Condition[] | undefined,
  type: string,
  value: boolean,
  reason: string,
  message: string,
  now: string,
  generation: number | undefined,
): Condition {
  const status = value ? "True" : "False";
  const before = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    reason,
    message,
    lastTransitionTime: before && before.status === status ? before.lastTransitionTime : now,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}

/** `failure`: why this pass could not do its work (applying a child, ownership), for Degraded. */
export function buildStatus(o: Observation, plan: Plan, failure?: string): WaveletModelStatus {
  const { wm } = o;
  const now = new Date(o.now).toISOString();
  const generation = wm.metadata.generation;
  const previous = wm.status?.conditions;
  const rollout = plan.status.rollout;
  const activeColor = plan.status.activeColor;
  const activeState = activeColor ? o.colors[activeColor] : undefined;
  const activeReady = !!activeState && activeState.templateHash === plan.status.activeTemplateHash && activeState.availableReplicas >= activeState.specReplicas;
  const failed = rollout?.phase === "Failed";
  const progressing = !!rollout && !failed;
  const lastGood = plan.status.lastGoodSpec as unknown as WaveletModelSpec | undefined;
  // Ready means done (kubectl wait, kstatus, Flux and Argo CD read it so): the active colour
  // serves this generation's template. A rollout waiting, failed or under way is not Ready.
  const current = plan.status.activeTemplateHash === o.desiredHash;
  // ...and nothing keeps the operator from doing its work (a Service it cannot create, a TLS Secret it cannot serve).
  const problems = o.problems ?? [];
  const ready = activeReady && current && failure === undefined && !problems.length;
  const serving = `${activeColor} serves ${lastGood ? `bundle ${lastGood.bundle.digest}` : "an unrecorded bundle"}`;
  const notReady: [string, string] = failure !== undefined
    ? ["ReconcileFailed", failure]
    : problems.length
    ? [problems[0]!.reason, problemsMessage(problems)]
    : !activeColor
    ? ["NotDeployed", "no colour is serving yet"]
    : !activeReady
      ? ["ActiveUnavailable", `${activeColor} is not fully available`]
      : failed
        ? ["RolloutFailed", `${serving}; the rollout of bundle ${wm.spec.bundle.digest} failed: ${rollout!.message ?? "see events"}`]
        : [rollout?.phase ?? "RolloutPending", `${serving}; bundle ${wm.spec.bundle.digest} is ${rollout ? `${rollout.phase} on ${rollout.color}` : "not rolled out yet"}`];

  const conditions = [
    condition(previous, "Ready", ready, ready ? "ActiveAvailable" : notReady[0], ready ? serving : notReady[1], now, generation),
    condition(
      previous,
      "Progressing",
      progressing,
      progressing ? rollout!.phase : "Idle",
      progressing ? `${rollout!.phase} ${rollout!.color}${rollout!.message ? `: ${rollout!.message}` : ""}` : "no rollout in progress",
      now,
      generation,
    ),
    // The spec's problems before a pass's failure: each stays said in one condition or the
    // other while both last (failureOf reads Ready), so neither is announced again.
    degradedCondition(previous, now, generation, [
      [problems.length > 0, problems[0]?.reason ?? "", problemsMessage(problems)],
      [failure !== undefined, "ReconcileFailed", failure ?? ""],
      [failed, "RolloutFailed", rollout?.message ?? "rollout failed"],
      [!!activeColor && !activeReady, "ActiveUnavailable", `${activeColor} is not fully available`],
    ]),
  ];
  const degraded = conditions[2]!.status === "True";
  return {
    observedGeneration: generation,
    phase: degraded ? "Degraded" : progressing ? "Progressing" : ready ? "Ready" : "Pending",
    conditions,
    ...plan.status,
    previewColor: plan.preview,
    activeBundle: bundleRef(lastGood),
    previewBundle: bundleRef(plan.preview === activeColor ? lastGood : wm.spec),
    replicas: activeState?.specReplicas ?? 0,
    readyReplicas: activeState?.readyReplicas ?? 0,
    ...(activeColor
      ? { endpoint: endpoint(wm, activeServiceName(wm), servedSpec(wm, plan, plan.active)), previewEndpoint: endpoint(wm, previewServiceName(wm), servedSpec(wm, plan, plan.preview)) }
      : {}),
    ...externalEndpoints(o, servedSpec(wm, plan, plan.active)),
  };
}

function externalEndpoints(o: Observation, served: WaveletModelSpec): Pick<WaveletModelStatus, "nodePort" | "externalEndpoint"> {
  const { type, port } = o.wm.spec.service;
  const external = o.activeServiceExternal ?? {};
  if (type === "NodePort" && external.nodePort) return { nodePort: external.nodePort };
  if (type === "LoadBalancer" && external.loadBalancer) return { externalEndpoint: `${scheme(served)}://${external.loadBalancer}:${port}` };
  return {};
}

const problemsMessage = (problems: SpecProblem[]) => problems.map((p) => p.message).join("; ");

/** Degraded, from the first of `causes` that holds ([holds, reason, message]), else AsExpected. */
function degradedCondition(previous: Condition[] | undefined, now: string, generation: number | undefined, causes: [boolean, string, string][]): Condition {
  const cause = causes.find(([holds]) => holds);
  return condition(previous, "Degraded", !!cause, cause?.[1] ?? "AsExpected", cause?.[2] ?? "serving as specified", now, generation);
}

/**
 * The status of a model the operator could not decide about: its spec unreadable (a CRD older
 * than the operator let it in: InvalidSpec), or a read from the API server failed before the
 * pass had a plan (ReconcileFailed). Everything else as it was, not Ready, Degraded with the reason.
 */
export function failureStatus(previous: WaveletModelStatus | undefined, generation: number | undefined, reason: string, message: string, now: number): WaveletModelStatus {
  const at = new Date(now).toISOString();
  const others = (previous?.conditions ?? []).filter((c) => c.type !== "Ready" && c.type !== "Degraded");
  return {
    ...previous,
    observedGeneration: generation,
    phase: "Degraded",
    conditions: [
      condition(previous?.conditions, "Ready", false, reason, message, at, generation),
      ...others,
      degradedCondition(previous?.conditions, at, generation, [[true, reason, message]]),
    ],
  };
}

/** The message of the condition `type` when it is `value` for `reason`. */
const reportedBy = (status: WaveletModelStatus | undefined, type: string, value: string, reason: string) =>
  status?.conditions?.find((c) => c.type === type && c.status === value && c.reason === reason)?.message;
const degradedBy = (status: WaveletModelStatus | undefined, reason: string) => reportedBy(status, "Degraded", "True", reason);

/** The pass failure a status reports (buildStatus's `failure`: Ready says it first), to tell a new one from one already reported. */
export const failureOf = (status: WaveletModelStatus | undefined) => reportedBy(status, "Ready", "False", "ReconcileFailed");

/** Whether a status already reports `problem` (Degraded says the spec's problems first). */
export const problemReported = (status: WaveletModelStatus | undefined, problem: SpecProblem) =>
  !!status?.conditions?.some((c) => c.type === "Degraded" && c.status === "True" && c.message.includes(problem.message));

/** The invalid-spec message a status reports. */
export const invalidSpecOf = (status: WaveletModelStatus | undefined) => degradedBy(status, "InvalidSpec");
