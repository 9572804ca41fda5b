import { describe, expect, it } from "vitest";
import type { WaveletModel, WaveletModelStatus } from "../src/api/waveletmodel.js";
import { type Observation, decide } from "../src/reconcile/bluegreen.js";
import { buildStatus } from "../src/reconcile/status.js";
import { DIGEST_B, color, model } from "./fixtures.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const OLD = "hash-old";
const NEW = "hash-new";

/** A model whose blue colour serves `OLD`, now asked for `spec` (by default a new bundle). */
function serving(spec: Record<string, unknown> = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }, status: WaveletModelStatus = {}, annotations?: Record<string, string>) {
  const old = model();
  const wm = model(spec, { status: { activeColor: "blue", activeTemplateHash: OLD, lastGoodSpec: old.spec as never, ...status } });
  if (annotations) wm.metadata.annotations = annotations;
  return { wm, old };
}

function observe(wm: WaveletModel, colors: Observation["colors"], now = T0, extra: Partial<Observation> = {}): Observation {
  const activeSpec = wm.status?.lastGoodSpec ? (wm.status.lastGoodSpec as never) : undefined;
  return { wm, now, desiredHash: NEW, activeSpec, activeRendersAs: activeSpec && OLD, colors, ...extra };
}

describe("first deployment", () => {
  it("creates blue and becomes Ready when it is available", () => {
    const wm = model();
    const starting = decide({ wm, now: T0, desiredHash: NEW, activeSpec: undefined, activeRendersAs: undefined, colors: {} });
    expect(starting.colors.blue).toEqual({ spec: wm.spec, replicas: 3 });
    expect(starting.colors.green).toBe("keep");
    expect(starting.status.rollout).toMatchObject({ phase: "Deploying", color: "blue" });
    expect(starting.events.map((e) => e.reason)).toEqual(["Deploying"]);

    const done = decide({ wm, now: T0 + 5000, desiredHash: NEW, activeSpec: undefined, activeRendersAs: undefined, colors: { blue: color(NEW, 3) } });
    expect(done.status).toMatchObject({ activeColor: "blue", activeTemplateHash: NEW, lastGoodSpec: wm.spec });
    expect(done.status.rollout).toBeUndefined();
    expect(done.events.map((e) => e.reason)).toEqual(["Deployed"]);
  });
});

describe("a steady model", () => {
  it("re-applies the active colour from the spec it serves and changes nothing else", () => {
    const { wm, old } = serving({});
    const plan = decide(observe(wm, { blue: color(OLD, 3) }, T0, { desiredHash: OLD }));
    expect(plan.colors).toEqual({ blue: { spec: old.spec, replicas: 3 }, green: "keep" });
    expect(plan.active).toBe("blue");
    expect(plan.events).toEqual([]);
    expect(plan.requeueAfterMs).toBeUndefined();
  });

  it("applies a new replica count at once, without a rollout", () => {
    const { wm } = serving({ replicas: 5 });
    const plan = decide(observe(wm, { blue: color(OLD, 3) }, T0, { desiredHash: OLD }));
    expect(plan.colors.blue).toMatchObject({ replicas: 5 });
    expect(plan.status.rollout).toBeUndefined();
  });
});

describe("a bundle change", () => {
  it("deploys the idle colour at the active colour's current replicas, not the HPA minimum", () => {
    const autoscaled = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 } };
    const { wm } = serving(autoscaled);
    const plan = decide(observe(wm, { blue: color(OLD, 7) }));
    expect(plan.colors.green).toEqual({ spec: wm.spec, replicas: 7 });
    expect(plan.colors.blue).toMatchObject({ replicas: 7 });
    expect(plan.active).toBe("blue");
    expect(plan.preview).toBe("green");
    expect(plan.status.rollout).toMatchObject({ phase: "Deploying", color: "green", templateHash: NEW, since: iso(T0) });
    expect(plan.events.map((e) => e.reason)).toEqual(["RolloutStarted"]);
  });

  it("keeps the traffic on blue while green is not fully available", () => {
    const { wm } = serving(undefined, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 2) }, T0 + 10_000));
    expect(plan.active).toBe("blue");
    expect(plan.events).toEqual([]);
    expect(plan.requeueAfterMs).toBe(600_000 - 10_000);
  });

  it("does not count pods of an older template as available", () => {
    const { wm } = serving(undefined, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color("something-else", 3) }, T0 + 1000));
    expect(plan.active).toBe("blue");
  });

  it("switches traffic when green is available, keeps blue for the delay, then scales it to zero", () => {
    const deploying = serving(undefined, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    // First "Promoting" is recorded and the Services move; blue is still the active colour in status.
    const promoting = decide(observe(deploying.wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 19_000));
    expect(promoting.active).toBe("green");
    expect(promoting.colors.blue).toBe("keep");
    expect(promoting.status).toMatchObject({ activeColor: "blue", rollout: { phase: "Promoting", color: "green", message: "auto-promoted" } });
    expect(promoting.events.map((e) => e.reason)).toEqual(["PreviewReady"]);
    const switching = serving(undefined, { rollout: promoting.status.rollout! }).wm;
    // Until the cache shows the Service on green, the pass keeps applying the switch.
    const notYet = decide({ ...observe(switching, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 19_500), activeServiceColor: "blue" });
    expect(notYet.active).toBe("green");
    expect(notYet.status.activeColor).toBe("blue");
    expect(notYet.events).toEqual([]);
    const promoted = decide({ ...observe(switching, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 20_000), activeServiceColor: "green" });
    expect(promoted.active).toBe("green");
    expect(promoted.colors.blue).toBe("keep");
    expect(promoted.status).toMatchObject({ activeColor: "green", activeTemplateHash: NEW, lastGoodSpec: deploying.wm.spec });
    expect(promoted.status.rollout).toMatchObject({ phase: "ScalingDown", color: "blue", since: iso(T0 + 20_000) });
    expect(promoted.events.map((e) => e.reason)).toEqual(["Promoted"]);
    expect(promoted.events[0]!.message).toContain("(auto-promoted)");
    expect(promoted.requeueAfterMs).toBe(30_000);

    const after = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }, { status: { ...promoted.status } });
    const waiting = decide(observe(after, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 40_000));
    expect(waiting.colors.blue).toBe("keep");
    expect(waiting.requeueAfterMs).toBe(10_000);
    const scaled = decide(observe(after, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 50_001));
    expect(scaled.colors.blue).toEqual({ spec: after.spec, replicas: 0 });
    expect(scaled.status.rollout).toBeUndefined();
    expect(scaled.events.map((e) => e.reason)).toEqual(["ScaledDown"]);
  });

  it("fails at the deadline: blue keeps the traffic, green goes to zero, and it is not retried", () => {
    const { wm, old } = serving(undefined, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    const failed = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 1) }, T0 + 600_001));
    expect(failed.active).toBe("blue");
    expect(failed.colors.green).toEqual({ spec: wm.spec, replicas: 0 });
    expect(failed.status).toMatchObject({ activeColor: "blue", failedTemplateHash: NEW, lastGoodSpec: old.spec });
    expect(failed.status.rollout).toMatchObject({ phase: "Failed", message: "green did not become available within 600s" });
    expect(failed.events[0]).toMatchObject({ type: "Warning", reason: "ProgressDeadlineExceeded" });

    const again = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }, { status: failed.status });
    const later = decide(observe(again, { blue: color(OLD, 3), green: color(NEW, 0, 0) }, T0 + 700_000));
    expect(later.active).toBe("blue");
    expect(later.colors.green).toMatchObject({ replicas: 0 });
    expect(later.events).toEqual([]);
    // A different spec is a new attempt.
    const next = decide({ ...observe(again, { blue: color(OLD, 3) }, T0 + 800_000), desiredHash: "hash-newer" });
    expect(next.status.rollout).toMatchObject({ phase: "Deploying", templateHash: "hash-newer" });
  });

  it("rolls back to the last good spec on request", () => {
    const { wm, old } = serving(undefined, { failedTemplateHash: NEW }, { "wavelet.dev/rollback": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 3) }));
    expect(plan.rollbackSpec).toEqual(old.spec);
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/rollback"]);
    expect(plan.events.map((e) => e.reason)).toEqual(["RolledBack"]);
  });

  it("cancels a rollout when the spec returns to what the active colour serves", () => {
    const { wm } = serving({}, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 1) }, T0, { desiredHash: OLD }));
    expect(plan.colors.green).toMatchObject({ replicas: 0 });
    expect(plan.status.rollout).toBeUndefined();
    expect(plan.events.map((e) => e.reason)).toEqual(["RolloutCancelled"]);
  });
});

describe("manual promotion, abort and analysis", () => {
  const manual = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, rollout: { autoPromote: false } };
  const deploying = { rollout: { phase: "Deploying" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0) } };

  it("waits for the promote annotation when autoPromote is off", () => {
    const { wm } = serving(manual, deploying);
    const waiting = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 1000));
    expect(waiting.active).toBe("blue");
    expect(waiting.status.rollout?.phase).toBe("AwaitingPromotion");
    expect(waiting.events.map((e) => e.reason)).toEqual(["PreviewReady", "AwaitingPromotion"]);
    // No deadline while a person decides.
    const asked = serving(manual, { rollout: waiting.status.rollout! }, { "wavelet.dev/promote": "true" }).wm;
    const promoted = decide(observe(asked, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 10_000_000));
    expect(promoted.active).toBe("green");
    expect(promoted.clearAnnotations).toEqual(["wavelet.dev/promote"]);
  });

  it("aborts on the abort annotation", () => {
    const { wm } = serving(manual, deploying, { "wavelet.dev/abort": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 1000));
    expect(plan.active).toBe("blue");
    expect(plan.status.rollout).toMatchObject({ phase: "Failed", message: "aborted by the wavelet.dev/abort annotation" });
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/abort"]);
  });

  it("analyzes before promoting, and a failed analysis keeps the old colour", () => {
    const analyzed = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, rollout: { analysis: { enabled: true } } };
    const { wm } = serving(analyzed, deploying);
    const start = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 1000));
    expect(start.status.rollout?.phase).toBe("Analyzing");
    expect(start.requeueAfterMs).toBe(0);
    const analyzing = serving(analyzed, { rollout: start.status.rollout! }).wm;
    const passed = decide(observe(analyzing, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 2000, { analysis: { result: "pass", message: "ok" } }));
    expect(passed.active).toBe("green");
    expect(passed.status.rollout).toMatchObject({ phase: "Promoting", message: "analysis passed" });
    expect(passed.events.map((e) => e.reason)).toEqual(["AnalysisPassed"]);
    // One failed run is tolerated (failureLimit 1): the next run decides.
    const once = decide(observe(analyzing, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 2000, { analysis: { result: "fail", message: "p99 too high" } }));
    expect(once.active).toBe("blue");
    expect(once.status.rollout).toMatchObject({ phase: "Analyzing", analysis: { runs: 1, failures: 1, message: "p99 too high" } });
    expect(once.events).toMatchObject([{ type: "Warning", reason: "AnalysisRunFailed" }]);
    const again = serving(analyzed, { rollout: once.status.rollout! }).wm;
    const failed = decide(observe(again, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 3000, { analysis: { result: "fail", message: "p99 too high" } }));
    expect(failed.active).toBe("blue");
    expect(failed.status.rollout).toMatchObject({ phase: "Failed", message: "p99 too high (2 of 2 runs failed)" });
  });

  it("an analysis that does not pass by the deadline fails the rollout", () => {
    const analyzed = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, rollout: { analysis: { enabled: true }, progressDeadlineSeconds: 60 } };
    const analyzing = serving(analyzed, { rollout: { phase: "Analyzing", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } }).wm;
    const running = decide(observe(analyzing, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 30_000));
    expect(running.status.rollout?.phase).toBe("Analyzing");
    expect(running.requeueAfterMs).toBe(30_000);
    const late = decide(observe(analyzing, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 60_001));
    expect(late.status.rollout).toMatchObject({ phase: "Failed", message: "analysis did not pass within 60s" });
    expect(late.events).toMatchObject([{ type: "Warning", reason: "AnalysisDeadlineExceeded" }]);
  });
});

describe("analysis while the colours move (issue 21)", () => {
  const auto = { replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 } };
  const analyzed = { ...auto, bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, rollout: { analysis: { enabled: true }, progressDeadlineSeconds: 60 } };
  const analyzing = serving(analyzed, { rollout: { phase: "Analyzing", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } }).wm;

  it("a passed verdict waits for the preview to catch up with the active colour's new count, then promotes", () => {
    // The HPA moved blue to 4; green has its 3 and a fourth on the way.
    const short = decide(observe(analyzing, { blue: color(OLD, 4), green: color(NEW, 4, 3) }, T0 + 10_000, { analysis: { result: "pass", message: "ok" } }));
    expect(short.active).toBe("blue");
    expect(short.status.rollout?.phase).toBe("Analyzing");
    expect(short.colors.green).toEqual({ spec: analyzing.spec, replicas: 4 });
    expect(short.events).toEqual([]);
    const caughtUp = decide(observe(analyzing, { blue: color(OLD, 4), green: color(NEW, 4) }, T0 + 20_000, { analysis: { result: "pass", message: "ok" } }));
    expect(caughtUp.active).toBe("green");
    expect(caughtUp.events.map((e) => e.reason)).toEqual(["AnalysisPassed"]);
    // ...within the phase's deadline.
    const late = decide(observe(analyzing, { blue: color(OLD, 4), green: color(NEW, 4, 3) }, T0 + 60_001, { analysis: { result: "pass", message: "ok" } }));
    expect(late.status.rollout).toMatchObject({ phase: "Failed" });
    expect(late.events.map((e) => e.reason)).toEqual(["ProgressDeadlineExceeded"]);
  });

  it("no pod of the preview available is a lost preview; a preview with no ReplicaSet is deployed again", () => {
    const lost = decide(observe(analyzing, { blue: color(OLD, 3), green: color(NEW, 3, 0) }, T0 + 1000));
    expect(lost.events.map((e) => e.reason)).toEqual(["PreviewLost"]);
    const gone = decide(observe(analyzing, { blue: color(OLD, 3) }, T0 + 1000));
    expect(gone.status.rollout).toMatchObject({ phase: "Deploying", color: "green", startedAt: iso(T0), since: iso(T0 + 1000) });
    expect(gone.colors.green).toEqual({ spec: analyzing.spec, replicas: 3 });
    expect(gone.events).toEqual([]);
  });

  it("an older operator's Deployment gives the active colour's count until its ReplicaSet exists", () => {
    const { wm } = serving({ ...auto, bundle: { builtin: "spx-return-1d", digest: `sha256:${"a".repeat(64)}` } });
    const plan = decide(observe(wm, {}, T0, { desiredHash: OLD, legacyReplicas: { blue: 8 } }));
    expect(plan.colors.blue).toMatchObject({ replicas: 8 });
  });
});

describe("status", () => {
  it("reports conditions with observedGeneration, the phase, colours, bundles and endpoint", () => {
    const { wm } = serving(undefined, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    wm.metadata.generation = 4;
    const o = observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 1) }, T0 + 1000);
    const status = buildStatus(o, decide(o));
    expect(status).toMatchObject({ observedGeneration: 4, phase: "Progressing", activeColor: "blue", previewColor: "green", replicas: 3, readyReplicas: 3 });
    expect(status.endpoint).toBe("http://spx.ns.svc:80");
    expect(status.previewBundle?.digest).toBe(DIGEST_B);
    const byType = Object.fromEntries(status.conditions!.map((c) => [c.type, c]));
    // Blue still serves, but this generation's bundle is not rolled out: not Ready (not done).
    expect(byType.Ready).toMatchObject({ status: "False", reason: "Deploying", observedGeneration: 4 });
    expect(byType.Progressing).toMatchObject({ status: "True", reason: "Deploying" });
    expect(byType.Degraded).toMatchObject({ status: "False" });
    // Unchanged conditions keep their transition time.
    const again = buildStatus({ ...o, wm: { ...wm, status }, now: T0 + 60_000 }, decide({ ...o, wm: { ...wm, status }, now: T0 + 60_000 }));
    expect(again.conditions![0]!.lastTransitionTime).toBe(status.conditions![0]!.lastTransitionTime);
  });

  it("is Degraded after a failed rollout while the old colour still serves", () => {
    const { wm } = serving(undefined, { rollout: { phase: "Deploying", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    const o = observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 0) }, T0 + 700_000);
    const status = buildStatus(o, decide(o));
    expect(status.phase).toBe("Degraded");
    expect(status.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "RolloutFailed" });
    expect(status.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "RolloutFailed" });
  });

  it("is Ready once the active colour serves this generation's template, even while the old one scales down", () => {
    const { wm } = serving(undefined, { rollout: { phase: "AwaitingPromotion", color: "green", templateHash: NEW, startedAt: iso(T0), since: iso(T0) } });
    wm.metadata.annotations = { "wavelet.dev/promote": "true" };
    const o = observe(wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 1000);
    const promoting = buildStatus(o, decide(o));
    // Not Ready while the Service is being switched: Ready means the new colour has the traffic.
    expect(promoting).toMatchObject({ activeColor: "blue", rollout: { phase: "Promoting" } });
    expect(promoting.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "False" });
    const next = { ...observe(serving(undefined, promoting).wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 2000), activeServiceColor: "green" };
    const promoted = buildStatus(next, decide(next));
    expect(promoted).toMatchObject({ activeColor: "green", rollout: { phase: "ScalingDown" } });
    expect(promoted.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "True", reason: "ActiveAvailable" });
    expect(promoted.conditions!.find((c) => c.type === "Progressing")).toMatchObject({ status: "True", reason: "ScalingDown" });
  });
});

describe("promote and abort are one-shot (issue 8)", () => {
  const manual = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, rollout: { autoPromote: false } };

  it("a promote left over from a failed rollout is removed, so it cannot promote the next one", () => {
    const failed = { failedTemplateHash: NEW, rollout: { phase: "Failed" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0), message: "x" } };
    const { wm } = serving(manual, failed, { "wavelet.dev/promote": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 0, 0) }, T0 + 1000));
    expect(plan.active).toBe("blue");
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/promote"]);
    expect(plan.events.map((e) => e.reason)).toEqual(["PromoteIgnored"]);
  });

  it("an abort while nothing rolls out is removed, so it cannot kill the next rollout", () => {
    const { wm } = serving({}, {}, { "wavelet.dev/abort": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 3) }, T0, { desiredHash: OLD }));
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/abort"]);
    expect(plan.events).toMatchObject([{ reason: "AbortIgnored", message: "wavelet.dev/abort removed: no rollout is under way; blue serves the spec" }]);
    expect(plan.status.rollout).toBeUndefined();
  });

  it("a promote given while the preview is still deploying waits for it, then switches", () => {
    const deploying = { rollout: { phase: "Deploying" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0) } };
    const { wm } = serving(manual, deploying, { "wavelet.dev/promote": "true" });
    const early = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 1) }, T0 + 1000));
    expect(early.active).toBe("blue");
    expect(early.clearAnnotations).toEqual([]);
    const ready = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3) }, T0 + 2000));
    expect(ready.active).toBe("green");
    expect(ready.clearAnnotations).toEqual(["wavelet.dev/promote"]);
  });
});

describe("promotion waits for the active colour's current count (issue 8)", () => {
  const autoscaled = { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 } };
  const deploying = { rollout: { phase: "Deploying" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0) } };

  it("does not switch to a preview of 3 after the HPA took blue to 6; it scales the preview to 6 first", () => {
    const { wm } = serving(autoscaled, deploying);
    const plan = decide(observe(wm, { blue: color(OLD, 6), green: color(NEW, 3) }, T0 + 1000));
    expect(plan.active).toBe("blue");
    expect(plan.colors.green).toMatchObject({ replicas: 6 });
    const caught = decide(observe(wm, { blue: color(OLD, 6), green: color(NEW, 6) }, T0 + 2000));
    expect(caught.active).toBe("green");
  });

  it("awaiting promotion, HPA activity does not toggle the phase; the promote waits for the count", () => {
    const awaiting = { rollout: { phase: "AwaitingPromotion" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0) } };
    const { wm } = serving({ ...autoscaled, rollout: { autoPromote: false } }, awaiting, { "wavelet.dev/promote": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 5), green: color(NEW, 3) }, T0 + 1000));
    expect(plan.active).toBe("blue");
    expect(plan.status.rollout).toMatchObject({ phase: "AwaitingPromotion", since: iso(T0) });
    expect(plan.events).toEqual([]);
    expect(plan.clearAnnotations).toEqual([]);
  });

  it("replicas: 0 never promotes an unverified bundle: the preview gets one pod, which must be available", () => {
    const { wm } = serving({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, replicas: 0 }, deploying);
    const unverified = decide(observe(wm, { blue: color(OLD, 0), green: color(NEW, 0) }, T0 + 1000));
    expect(unverified.active).toBe("blue");
    expect(unverified.colors.green).toMatchObject({ replicas: 1 });
    const verified = decide(observe(wm, { blue: color(OLD, 0), green: color(NEW, 1) }, T0 + 2000));
    expect(verified.active).toBe("green");
  });
});

describe("lastGoodSpec (issue 8)", () => {
  it("follows edits that change no template, so a later rollback keeps them", () => {
    const { wm } = serving({ replicas: 5, service: { type: "NodePort", port: 8080 } });
    const plan = decide(observe(wm, { blue: color(OLD, 3) }, T0, { desiredHash: OLD }));
    expect(plan.status.lastGoodSpec).toEqual(wm.spec);
    expect(plan.colors.blue).toEqual({ spec: wm.spec, replicas: 5 });
  });
});

describe("operator upgrades never roll active pods in place (issue 8)", () => {
  it("a new server image re-renders the spec: blue is left as it was rendered, green gets the new render", () => {
    // Same spec, but this operator renders it as NEW (its SERVER_IMAGE changed).
    const { wm } = serving({});
    const plan = decide(observe(wm, { blue: color(OLD, 3) }, T0, { desiredHash: NEW, activeRendersAs: NEW }));
    expect(plan.colors.blue).toBe("keep");
    expect(plan.colors.green).toEqual({ spec: wm.spec, replicas: 3 });
    expect(plan.events.map((e) => e.reason)).toEqual(["RolloutStarted"]);
  });

  it("re-creates the active colour if it was deleted, from the spec it serves", () => {
    const { wm, old } = serving({});
    const plan = decide(observe(wm, {}, T0, { desiredHash: NEW, activeRendersAs: NEW }));
    expect(plan.colors.blue).toMatchObject({ spec: old.spec });
  });
});

describe("the old colour outlives the switch (issue 8)", () => {
  const scalingDown = { activeColor: "green" as const, activeTemplateHash: NEW, rollout: { phase: "ScalingDown" as const, color: "blue" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0) } };
  const colors = { blue: color(OLD, 3), green: color(NEW, 3) };

  it("is not scaled down while the active Service still routes to it, even after the delay", () => {
    const wm = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }, { status: { ...scalingDown, lastGoodSpec: model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }).spec as never } });
    const routed = decide({ ...observe(wm, colors, T0 + 31_000, { desiredHash: NEW, activeRendersAs: NEW }), oldColorRouted: true });
    expect(routed.colors.blue).toBe("keep");
    expect(routed.requeueAfterMs).toBe(1000);
    expect(routed.events).toEqual([]);
    const gone = decide({ ...observe(wm, colors, T0 + 32_000, { desiredHash: NEW, activeRendersAs: NEW }), oldColorRouted: false });
    expect(gone.colors.blue).toMatchObject({ replicas: 0 });
    expect(gone.events.map((e) => e.reason)).toEqual(["ScaledDown"]);
  });

  it("a new spec during the scale-down waits until it ends, then rolls out on the old colour", () => {
    const newer = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B } }, { status: { ...scalingDown, lastGoodSpec: model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }).spec as never } });
    const during = decide(observe(newer, colors, T0 + 10_000, { desiredHash: "hash-newer", activeRendersAs: NEW }));
    expect(during.colors.blue).toBe("keep");
    expect(during.status.rollout).toMatchObject({ phase: "ScalingDown" });
    expect(during.requeueAfterMs).toBe(20_000);
    expect(during.events).toEqual([]);
    const after = decide({ ...observe(newer, colors, T0 + 30_000, { desiredHash: "hash-newer", activeRendersAs: NEW }), oldColorRouted: false });
    expect(after.events.map((e) => e.reason)).toEqual(["ScaledDown", "RolloutStarted"]);
    expect(after.colors.blue).toMatchObject({ spec: newer.spec, replicas: 3 });
    expect(after.active).toBe("green");
  });
});

describe("wavelet.dev/retry (issue 8)", () => {
  const failed = { failedTemplateHash: NEW, rollout: { phase: "Failed" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0), message: "x" } };

  it("tries a failed template again", () => {
    const { wm } = serving(undefined, failed, { "wavelet.dev/retry": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 0, 0) }, T0 + 1000));
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/retry"]);
    expect(plan.status.failedTemplateHash).toBeUndefined();
    expect(plan.status.rollout).toMatchObject({ phase: "Deploying", color: "green", since: iso(T0 + 1000) });
    expect(plan.colors.green).toMatchObject({ replicas: 3 });
    expect(plan.events.map((e) => e.reason)).toEqual(["RolloutStarted"]);
  });

  it("is removed when nothing has failed, so it cannot retry a later failure unasked", () => {
    const deploying = { rollout: { phase: "Deploying" as const, color: "green" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0) } };
    const { wm } = serving(undefined, deploying, { "wavelet.dev/retry": "true" });
    const plan = decide(observe(wm, { blue: color(OLD, 3), green: color(NEW, 3, 1) }, T0 + 1000));
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/retry"]);
    expect(plan.events.map((e) => e.reason)).toEqual(["RetryIgnored"]);
  });
});

describe("status endpoints outside the cluster (issue 8)", () => {
  it("a NodePort Service's port, a LoadBalancer's address once it has one", () => {
    const nodePort = serving({ service: { type: "NodePort", port: 8080 } }).wm;
    const o = { ...observe(nodePort, { blue: color(OLD, 3) }, T0, { desiredHash: OLD }), activeServiceExternal: { nodePort: 31234 } };
    expect(buildStatus(o, decide(o))).toMatchObject({ endpoint: "http://spx.ns.svc:8080", nodePort: 31234 });
    const lb = serving({ service: { type: "LoadBalancer", port: 80 } }).wm;
    const pending = { ...observe(lb, { blue: color(OLD, 3) }, T0, { desiredHash: OLD }), activeServiceExternal: {} };
    expect(buildStatus(pending, decide(pending)).externalEndpoint).toBeUndefined();
    const assigned = { ...pending, activeServiceExternal: { loadBalancer: "203.0.113.7" } };
    expect(buildStatus(assigned, decide(assigned)).externalEndpoint).toBe("http://203.0.113.7:80");
  });
});

describe("abort and rollback during the scale-down delay (issue 8)", () => {
  // Green took the traffic 5 s ago; blue (OLD) still has all its pods.
  const previous = model();
  const promotedStatus = {
    activeColor: "green" as const,
    activeTemplateHash: NEW,
    lastGoodSpec: model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }).spec as never,
    rollout: { phase: "ScalingDown" as const, color: "blue" as const, templateHash: NEW, startedAt: iso(T0), since: iso(T0), previousSpec: previous.spec as never },
  };
  const colors = { blue: color(OLD, 3), green: color(NEW, 3) };
  const at = (wm: WaveletModel, extra: Partial<Observation> = {}) => ({ ...observe(wm, colors, T0 + 5000, { desiredHash: NEW, activeRendersAs: NEW, previousSpec: previous.spec }), ...extra });

  it("an abort takes the traffic back to blue at once and marks the new template failed", () => {
    const wm = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }, { status: promotedStatus });
    wm.metadata.annotations = { "wavelet.dev/abort": "true" };
    const plan = decide(at(wm));
    expect(plan.active).toBe("blue");
    expect(plan.colors).toEqual({ blue: "keep", green: { spec: wm.spec, replicas: 0 } });
    expect(plan.status).toMatchObject({ activeColor: "blue", activeTemplateHash: OLD, lastGoodSpec: previous.spec, failedTemplateHash: NEW, rollout: { phase: "Failed", color: "green" } });
    expect(plan.clearAnnotations).toEqual(["wavelet.dev/abort"]);
    expect(plan.events.map((e) => e.reason)).toEqual(["RolloutAborted"]);
  });

  it("a rollback puts blue's spec back, and the rollout to blue (still up) switches without waiting for the delay", () => {
    const wm = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } }, { status: promotedStatus });
    wm.metadata.annotations = { "wavelet.dev/rollback": "true" };
    const asked = decide(at(wm));
    expect(asked.rollbackSpec).toEqual(previous.spec);
    expect(asked.events.map((e) => e.reason)).toEqual(["RolledBack"]);
    // The next pass: the spec is blue's again.
    const back = model({}, { status: promotedStatus });
    const plan = decide(at(back, { desiredHash: OLD }));
    expect(plan.events.map((e) => e.reason)).toEqual(["RolloutStarted", "PreviewReady"]);
    expect(plan.status.rollout).toMatchObject({ phase: "Promoting", color: "blue" });
    expect(plan.active).toBe("blue");
  });
});
