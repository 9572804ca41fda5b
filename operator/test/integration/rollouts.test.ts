import { setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SwitchWatch } from "../../../test-support/kube.js";
import { type Admin, type OperatorProcess, admin, eventReasons, eventReasonsWith, models, operatorNamespace, readyPods, serviceAccountKubeconfig, startOperator, waitFor } from "./harness.js";

/**
 * Rollouts under the conditions the review of issue 8 listed, against a real API server with
 * kwok pods: an abort, a spec change mid-rollout, a lost status, the HPA moving the active
 * colour mid-rollout, a restart between the status write and the switch, and two operators
 * acting at once. The active Service's selector is watched throughout: it may move once,
 * to the new colour, and never back.
 */

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const merge = setHeaderOptions("Content-Type", "application/merge-patch+json");
let a: Admin;
let seq = 0;

const base = (over: Record<string, unknown> = {}) => ({
  bundle: { builtin: "spx-return-1d", digest: digest("a"), version: "1.0.0" },
  replicas: 2,
  rollout: { autoPromote: false, scaleDownDelaySeconds: 1, progressDeadlineSeconds: 60 },
  ...over,
});
const bundle = (c: string) => ({ spec: { bundle: { builtin: "spx-vol-5d", digest: digest(c), version: c } } });

describe("rollouts under stress (issue 8)", () => {
  let ns: string;
  let kubeconfig: string;
  const operators: OperatorProcess[] = [];
  beforeAll(async () => {
    a = admin();
    ns = await operatorNamespace(a, `stress-${Date.now().toString(36)}`);
    kubeconfig = await serviceAccountKubeconfig(a, ns);
    operators.push(await startOperator(kubeconfig, ns));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(operators.map((o) => o.stop()));
  });

  /** A model served by blue, with the active Service watched from then on. */
  const served = async (spec: Record<string, unknown> = base()) => {
    const name = `m${seq++}`;
    const m = models(a, ns);
    await m.create(name, spec);
    await waitFor(`${name} Ready`, async () => (await m.get(name)).status?.phase === "Ready");
    const watch = await new SwitchWatch(a, ns, name).start();
    const phase = async () => (await m.get(name)).status?.rollout?.phase;
    return { name, m, watch, phase, get: () => m.get(name) };
  };

  it("an abort keeps the traffic on blue, scales green to zero and is removed", async () => {
    const { name, m, watch, phase, get } = await served();
    await m.patch(name, bundle("b"));
    await waitFor("AwaitingPromotion", async () => (await phase()) === "AwaitingPromotion");
    await m.patch(name, { metadata: { annotations: { "wavelet.dev/abort": "true" } } });
    await waitFor("Failed", async () => (await phase()) === "Failed");
    await waitFor("green at zero", async () => (await a.apps.readNamespacedReplicaSet({ name: `${name}-green`, namespace: ns })).spec?.replicas === 0);
    const after = await get();
    watch.stop();
    expect(after.metadata.annotations?.["wavelet.dev/abort"]).toBeUndefined();
    expect(after.status?.rollout?.message).toBe("aborted by the wavelet.dev/abort annotation");
    expect(watch.changes.map((c) => c.color)).toEqual(["blue"]);
  }, 60_000);

  it("a spec change mid-rollout restarts it on the same colour; the first new bundle never takes traffic", async () => {
    const { name, m, watch, phase, get } = await served();
    await m.patch(name, bundle("b"));
    await waitFor("AwaitingPromotion on b", async () => (await phase()) === "AwaitingPromotion");
    await m.patch(name, bundle("c"));
    await waitFor("AwaitingPromotion on c", async () => (await get()).status?.previewBundle?.digest === digest("c") && (await phase()) === "AwaitingPromotion");
    await m.patch(name, { metadata: { annotations: { "wavelet.dev/promote": "true" } } });
    await waitFor("c serves", async () => (await get()).status?.activeBundle?.digest === digest("c"));
    await watch.switched(10_000); // recorded as active only once the Service switched: the poll sees it too
    watch.stop();
    expect(watch.changes.map((c) => c.color)).toEqual(["blue", "green"]);
    expect((await eventReasonsWith(a, ns, name, "Promoted")).filter((r) => r === "Promoted")).toHaveLength(1);
  }, 60_000);

  it("a lost status is recovered from the active Service: traffic stays where it was", async () => {
    const { name, m, watch, get } = await served(base({ rollout: { autoPromote: true, scaleDownDelaySeconds: 1, progressDeadlineSeconds: 60 } }));
    await m.patch(name, bundle("b"));
    await waitFor("green serves, blue scaled down", async () => {
      const x = await get();
      return x.status?.activeColor === "green" && !x.status.rollout;
    });
    // Status gone, as after a restore from a backup that had none.
    await a.custom.patchNamespacedCustomObjectStatus({ group: "wavelet.dev", version: "v1alpha1", namespace: ns, plural: "waveletmodels", name, body: { status: null } }, merge);
    await waitFor("StatusRecovered", async () => (await eventReasons(a, ns, name)).includes("StatusRecovered"));
    await waitFor("green recorded as active again", async () => (await get()).status?.activeColor === "green");
    watch.stop();
    expect(watch.changes.map((c) => c.color)).toEqual(["blue", "green"]);
  }, 60_000);

  it("the HPA moving the active colour mid-rollout: the promotion waits until the new colour has as many", async () => {
    const { name, m, watch, phase } = await served(base({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 70 } }));
    await m.patch(name, bundle("b"));
    await waitFor("AwaitingPromotion", async () => (await phase()) === "AwaitingPromotion");
    // What the HPA would do: scale blue through its scale subresource.
    await a.apps.patchNamespacedReplicaSetScale({ name: `${name}-blue`, namespace: ns, body: { spec: { replicas: 4 } } }, merge);
    // The operator scales the preview to follow (promoting now could only act on what it has seen).
    await waitFor("green asked for 4", async () => (await a.apps.readNamespacedReplicaSet({ name: `${name}-green`, namespace: ns })).spec?.replicas === 4);
    expect(await phase()).toBe("AwaitingPromotion");
    await m.patch(name, { metadata: { annotations: { "wavelet.dev/promote": "true" } } });
    const switchedAt = await watch.switched(30_000);
    const green = await a.apps.readNamespacedReplicaSet({ name: `${name}-green`, namespace: ns });
    // Counted from the pods, as the operator counts them (its ReplicaSet's status comes later).
    const ready = await readyPods(a, ns, name, "green");
    watch.stop();
    expect(green.spec?.replicas).toBe(4);
    expect(ready).toBe(4);
    expect(switchedAt).toBeGreaterThan(0);
    expect(watch.changes.map((c) => c.color)).toEqual(["blue", "green"]);
    // The HPA now owns green's count: the operator's applies leave it alone.
    await waitFor("HPA on green", async () => (await a.autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace: ns })).spec?.scaleTargetRef.name === `${name}-green`);
  }, 60_000);

  it("a restart between the status write and the switch: the next operator moves the Service", async () => {
    const { name, m, watch, get } = await served(base({ rollout: { autoPromote: true, scaleDownDelaySeconds: 30, progressDeadlineSeconds: 60 } }));
    await m.patch(name, bundle("b"));
    await waitFor("green recorded as active", async () => (await get()).status?.activeColor === "green");
    // The watch polls: a patch before its poll has seen green would hide the switch from it
    // (CI, 2026-12-06: changes were [blue, green]).
    await waitFor("the watch shows green", async () => watch.current === "green");
    await operators.shift()!.stop();
    // As if the pass that recorded the promotion died before applying the Service.
    await a.core.patchNamespacedService({ name, namespace: ns, body: { spec: { selector: { "wavelet.dev/color": "blue" } } } }, merge);
    await waitFor("the watch shows the patch", async () => watch.current === "blue");
    operators.push(await startOperator(kubeconfig, ns, { POD_NAME: "restarted" }));
    await waitFor("Service on green", async () => watch.current === "green");
    watch.stop();
    expect(watch.changes.map((c) => c.color)).toEqual(["blue", "green", "blue", "green"]);
  }, 60_000);

  it("two operators acting at once (no leader election): each transition happens once", async () => {
    const second = await startOperator(kubeconfig, ns, { POD_NAME: "second", LEADER_ELECTION: "false" });
    const first = await startOperator(kubeconfig, ns, { POD_NAME: "first", LEADER_ELECTION: "false" });
    await Promise.all(operators.splice(0).map((o) => o.stop()));
    operators.push(first, second);
    const { name, m, watch, get } = await served(base({ rollout: { autoPromote: true, scaleDownDelaySeconds: 1, progressDeadlineSeconds: 60 } }));
    await m.patch(name, bundle("b"));
    await waitFor("done on green", async () => {
      const x = await get();
      return x.status?.activeColor === "green" && x.status.phase === "Ready" && !x.status.rollout;
    });
    watch.stop();
    expect(watch.changes.map((c) => c.color)).toEqual(["blue", "green"]);
    const reasons = await eventReasonsWith(a, ns, name, "ScaledDown");
    for (const reason of ["RolloutStarted", "PreviewReady", "Promoted", "ScaledDown"]) expect(reasons.filter((r) => r === reason), reason).toHaveLength(1);
  }, 90_000);
});
