import type { KubernetesObject, V1ReplicaSet, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { WaveletModel } from "../src/api/waveletmodel.js";
import { desiredReplicaSet, templateHash } from "../src/reconcile/replicaset.js";
import { type Harness, harness, settings } from "./fakeapi.js";
import { DIGEST_B, model } from "./fixtures.js";
import { makeCA, makeCert, pkiDir } from "../../test-support/pki.js";

/**
 * The reconciler over a fake API server and caches that lag it (fakeapi.ts): what a pass
 * writes and in which order, and what the next passes do while the caches still show
 * versions older than the pass's own writes.
 */

const served = model();
const next = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B }, rollout: { autoPromote: false } });
const oldHash = templateHash(served, served.spec, settings);
const newHash = templateHash(next, next.spec, settings);
const since = "2026-01-01T00:00:00.000Z";

/** Blue serves the old bundle; the spec asks for the new one (manual promotion). */
function blueServing(h: Harness, status: Partial<NonNullable<WaveletModel["status"]>> = {}, annotations?: Record<string, string>) {
  h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
  const wm = {
    ...next,
    metadata: { ...next.metadata, ...(annotations ? { annotations } : {}) },
    status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: oldHash, lastGoodSpec: served.spec as never, ...status },
  };
  h.seed("WaveletModel", wm as unknown as KubernetesObject);
}

/** Blue serves the spec; two passes and their watch events later, everything is as desired. */
function steadyBlue() {
  const h = harness();
  h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
  h.seed("WaveletModel", { ...served, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: oldHash, lastGoodSpec: served.spec } } as unknown as KubernetesObject);
  return h;
}

async function settle(h: Harness) {
  for (let i = 0; i < 3; i++) {
    await h.pass();
    h.sync();
  }
}

describe("a pass that changes nothing writes nothing (issue 13)", () => {
  it("a steady pass sends no apply, no status, no Event, and says so in the metrics", async () => {
    const h = steadyBlue();
    await settle(h);
    h.writes.length = 0;
    h.preconditions.length = 0;
    const counts = async () => ({
      writeless: (await h.metrics.passWrites.get()).values.find((v) => v.metricName === "wavelet_operator_pass_writes_bucket" && v.labels.le === 0)!.value,
      skipped: Object.fromEntries((await h.metrics.appliesSkipped.get()).values.map((v) => [v.labels.kind, v.value])),
    });
    const before = await counts();
    for (let i = 0; i < 5; i++) await h.pass();
    expect(h.writes).toEqual([]);
    expect(h.preconditions).toEqual([]);
    const after = await counts();
    expect(after.writeless - before.writeless).toBe(5);
    const skipped = Object.fromEntries(Object.entries(after.skipped).map(([kind, n]) => [kind, (n as number) - ((before.skipped[kind] as number | undefined) ?? 0)]));
    expect(skipped).toEqual({ ReplicaSet: 5, Service: 10, PodDisruptionBudget: 5 });
  });

  it("a child someone else changed is applied again, and only that one, after the status fence", async () => {
    const h = steadyBlue();
    await settle(h);
    h.writes.length = 0;
    const active = h.applied("Service/spx") as V1Service;
    h.seed("Service", { ...active, spec: { ...active.spec, selector: { ...active.spec!.selector, "wavelet.dev/color": "green" } } } as KubernetesObject);
    h.preconditions.length = 0;
    await h.pass();
    expect(h.writes).toEqual(["Service/spx"]);
    expect(h.preconditions).toHaveLength(1);
    expect(h.activeSelector()).toBe("blue");
  });

  it("a field the desired object no longer sets is applied away, though every value it does set is unchanged", async () => {
    const h = steadyBlue();
    await settle(h);
    h.writes.length = 0;
    // The cached ReplicaSet as an older operator applied it, with a field this one does not set.
    const blue = h.applied("ReplicaSet/spx-blue") as V1ReplicaSet;
    h.seed("ReplicaSet", { ...blue, metadata: { ...blue.metadata, annotations: { ...blue.metadata!.annotations, "wavelet.dev/applied-hash": "0123456789abcdef" } }, spec: { ...blue.spec!, minReadySeconds: 5 } } as KubernetesObject);
    await h.pass();
    expect(h.writes).toEqual(["ReplicaSet/spx-blue"]);
  });
});

describe("a pass's requests (issue 13)", () => {
  it("reads the children the cache does not have all at once, before the first apply, once each", async () => {
    const h = harness();
    h.seed("WaveletModel", served as unknown as KubernetesObject);
    await h.pass();
    const reads = ["read ReplicaSet/spx-blue", "read Service/spx", "read Service/spx-preview", "read PodDisruptionBudget/spx"];
    expect(h.requests.slice(0, 4)).toEqual(reads);
    expect(h.requests.slice(4).every((r) => r.startsWith("apply"))).toBe(true);
    expect(h.requests.slice(4)).toEqual(reads.map((r) => r.replace("read", "apply")));
  });
});

describe("a pass never acts on a cache older than its own writes", () => {
  it("a manual promotion sticks: the pass that promotes writes twice, and the version between them is not acted on", async () => {
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(next, next.spec, "green", 3, settings));
    blueServing(h, { previewColor: "green", rollout: { phase: "AwaitingPromotion", color: "green", templateHash: newHash, startedAt: since, since } }, { "wavelet.dev/promote": "true" });
    const read = h.model().metadata!.resourceVersion!;

    await h.pass();
    // The annotation cleared, then "Promoting" recorded (conditional on the clear's version),
    // and only then traffic moved.
    expect(h.writes.slice(0, 4)).toEqual(["model", "status", "ReplicaSet/spx-green", "Service/spx"]);
    expect(h.statuses.at(-1)?.rollout?.phase).toBe("Promoting");
    expect(h.preconditions).toEqual([String(Number(read) + 1)]);
    expect(h.activeSelector()).toBe("green");

    // The watch delivers the first write alone: no annotation, the status from before the promotion.
    const { annotations: _, ...metadata } = h.caches.WaveletModel.list()[0]!.metadata!;
    h.caches.WaveletModel.set({ ...h.caches.WaveletModel.list()[0]!, metadata: { ...metadata, resourceVersion: String(Number(read) + 1) } });
    h.writes.length = 0;
    for (let i = 0; i < 10; i++) expect((await h.pass()).requeueAfterMs).toBeGreaterThan(0);
    expect(h.writes).toEqual([]);

    // Then the rest: passes act again, on green; seeing the Service switched, one records green as active.
    h.sync();
    await h.pass();
    expect(h.activeSelector()).toBe("green");
    expect(h.statuses.at(-1)).toMatchObject({ activeColor: "green", rollout: { phase: "ScalingDown" } });
    expect(h.events).toEqual(["Promoted"]);
  });

  it("a rollout starts once: the Deployment it created is waited for, so its Events are not repeated (CI, 2026-11-27)", async () => {
    const h = harness();
    blueServing(h);
    await h.pass();
    expect(h.events).toEqual(["RolloutStarted"]);
    expect(h.writes).toContain("ReplicaSet/spx-green");

    // The model's watch is quicker than the Deployments': status says Deploying, green is not cached yet.
    h.sync("WaveletModel", "Service", "HorizontalPodAutoscaler");
    h.writes.length = 0;
    for (let i = 0; i < 10; i++) expect((await h.pass()).requeueAfterMs).toBeGreaterThan(0);
    expect(h.writes).toEqual([]);

    h.sync();
    await h.pass();
    expect(h.events).toEqual(["RolloutStarted", "PreviewReady", "AwaitingPromotion"]);
    // Each Event counted once in the metric the alerts read, the deadline's at 0 from the start.
    const counted = Object.fromEntries((await h.metrics.events.get()).values.map((v) => [`${v.labels.type} ${v.labels.reason}`, v.value]));
    expect(counted).toEqual({ "Warning ProgressDeadlineExceeded": 0, "Normal RolloutStarted": 1, "Normal PreviewReady": 1, "Normal AwaitingPromotion": 1 });
  });

  it("a pass that read an old version writes nothing: the status write fails first, before Events and children", async () => {
    const h = harness();
    blueServing(h);
    // Someone (a user, a former leader) writes after the cache's version: the pass's read is old.
    h.server.WaveletModel.set({ ...h.model(), metadata: { ...h.model().metadata, resourceVersion: "99" } });
    await expect(h.pass()).rejects.toMatchObject({ code: 409 });
    expect(h.writes).toEqual([]);
    expect(h.events).toEqual([]);
  });

  it("even when its status would not change: before a child is written, the conditional status write is the fence (two operators at once)", async () => {
    const h = steadyBlue();
    await settle(h);
    const steady = h.writes.length;
    // Someone changed the preview Service; another operator moved the model on, and this
    // one's cache has seen the first but not the second.
    const preview = h.applied("Service/spx-preview") as V1Service;
    h.seed("Service", { ...preview, spec: { ...preview.spec, selector: { app: "someone-else" } } } as KubernetesObject);
    h.server.WaveletModel.set({ ...h.model(), metadata: { ...h.model().metadata, resourceVersion: "99" } });
    await expect(h.pass()).rejects.toMatchObject({ code: 409 });
    expect(h.writes.length).toBe(steady);
    expect(h.preconditions.at(-1)).not.toBe("99");
  });

  it("goes ahead after 30 s if the cache never shows a write (the object was deleted meanwhile)", async () => {
    const h = harness();
    blueServing(h);
    await h.pass();
    h.server.ReplicaSet.items.delete("ns/spx-green");
    h.sync();
    expect((await h.pass()).requeueAfterMs).toBeGreaterThan(0);
    h.clock.advance(30_000);
    h.writes.length = 0;
    await h.pass();
    expect(h.warnings.join("\n")).toContain("never showed this operator's writes to ReplicaSet/spx-green");
    expect(h.writes).toContain("ReplicaSet/spx-green");
  });
});

describe("errors reach users (issue 8)", () => {
  it("never adopts an object it does not own: a Service named like the model's is left alone, and the pass says so once", async () => {
    const h = harness();
    blueServing(h);
    // A Service of the user's, not labelled, so not in the operator's cache.
    h.server.Service.set({ apiVersion: "v1", kind: "Service", metadata: { name: "spx", namespace: "ns", resourceVersion: "5" }, spec: { selector: { app: "theirs" } } } as KubernetesObject);
    await expect(h.pass()).rejects.toThrow("Service spx exists and does not belong to this WaveletModel");
    expect((h.applied("Service/spx") as V1Service).spec?.selector).toEqual({ app: "theirs" });
    const degraded = h.statuses.at(-1)!.conditions!.find((c) => c.type === "Degraded");
    expect(degraded).toMatchObject({ status: "True", reason: "ReconcileFailed", message: expect.stringContaining("rename the model or remove that Service") });
    expect(h.statuses.at(-1)!.phase).toBe("Degraded");
    expect(h.events.filter((e) => e === "ReconcileFailed")).toHaveLength(1);

    // The queue retries: the same failure is not announced again.
    h.sync();
    await expect(h.pass()).rejects.toThrow("does not belong");
    expect(h.events.filter((e) => e === "ReconcileFailed")).toHaveLength(1);
  });

  it("a spec it cannot read (a CRD older than the operator) is reported in status and an Event, once", async () => {
    const h = harness();
    h.seed("WaveletModel", { ...(served as unknown as KubernetesObject), spec: { bundle: { builtin: "spx-return-1d" } } } as KubernetesObject);
    await h.pass();
    expect(h.statuses.at(-1)).toMatchObject({ phase: "Degraded", conditions: expect.arrayContaining([expect.objectContaining({ type: "Degraded", reason: "InvalidSpec" })]) });
    h.sync();
    await h.pass();
    expect(h.events).toEqual(["InvalidSpec"]);
  });
});

describe("state survives status loss (issue 8)", () => {
  const activeService = (color: string) =>
    ({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "spx", namespace: "ns", ownerReferences: [{ apiVersion: "wavelet.dev/v1alpha1", kind: "WaveletModel", name: "spx", uid: "uid-1", controller: true }] },
      spec: { selector: { "wavelet.dev/color": color } },
    }) as KubernetesObject;

  it("the live active Service says which colour serves: traffic stays on green, and the rollout goes to blue", async () => {
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "green", 3, settings));
    h.seed("Service", activeService("green"));
    h.seed("WaveletModel", next as unknown as KubernetesObject); // no status at all
    await h.pass();
    expect(h.events).toEqual(["StatusRecovered", "RolloutStarted"]);
    expect(h.activeSelector()).toBe("green");
    expect(h.writes).not.toContain("ReplicaSet/spx-green"); // what green serves is not known: left as it is
    expect(h.writes).toContain("ReplicaSet/spx-blue");
    expect(h.statuses.at(-1)).toMatchObject({ activeColor: "green", rollout: { phase: "Deploying", color: "blue" } });
  });

  it("a colour with no ready pods is not taken for the serving one", async () => {
    const h = harness();
    const green = desiredReplicaSet(served, served.spec, "green", 3, settings);
    h.server.ReplicaSet.set({ ...green, metadata: { ...green.metadata, resourceVersion: "3" } });
    h.caches.ReplicaSet.set({ ...green, metadata: { ...green.metadata, resourceVersion: "3" }, status: { readyReplicas: 0 } } as KubernetesObject);
    h.seed("WaveletModel", next as unknown as KubernetesObject);
    h.seed("Service", activeService("green"));
    await h.pass();
    expect(h.events).toEqual(["Deploying"]);
  });
});

describe("the HPA owns the replicas of the colour it scales (issue 8)", () => {
  const autoscaled = model({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 8, targetCPUUtilizationPercentage: 60 } });
  const hash = templateHash(autoscaled, autoscaled.spec, settings);
  const steady = (managedFields: object[]) => {
    const h = harness();
    const blue = desiredReplicaSet(autoscaled, autoscaled.spec, "blue", 5, settings);
    h.seed("ReplicaSet", { ...blue, metadata: { ...blue.metadata, managedFields } } as KubernetesObject);
    h.seed("WaveletModel", { ...autoscaled, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: hash, lastGoodSpec: autoscaled.spec } } as unknown as KubernetesObject);
    return h;
  };

  it("once the HPA has set spec.replicas, the operator's apply leaves it out", async () => {
    const h = steady([
      { manager: "wavelet-operator", operation: "Apply", fieldsV1: { "f:spec": { "f:replicas": {}, "f:template": {} } } },
      { manager: "kube-controller-manager", operation: "Update", subresource: "scale", fieldsV1: { "f:spec": { "f:replicas": {} } } },
    ]);
    await h.pass();
    expect((h.sent.get("ReplicaSet/spx-blue") as V1ReplicaSet).spec).not.toHaveProperty("replicas");
  });

  it("a scale the cache does not show yet is not undone: the count is read afresh (integration test, 2026-11-27)", async () => {
    const h = steady([{ manager: "wavelet-operator", operation: "Apply", fieldsV1: { "f:spec": { "f:replicas": {} } } }]);
    const live = h.server.ReplicaSet.get("spx-blue", "ns") as V1ReplicaSet;
    h.server.ReplicaSet.set({ ...live, spec: { ...live.spec!, replicas: 7 } } as KubernetesObject);
    await h.pass();
    expect((h.applied("ReplicaSet/spx-blue") as V1ReplicaSet).spec?.replicas).toBe(7);
  });

  it("a scale between the fresh read and the apply fails the apply (409) instead of being undone (integration test, 2026-11-27)", async () => {
    const h = steady([{ manager: "wavelet-operator", operation: "Apply", fieldsV1: { "f:spec": { "f:replicas": {} } } }]);
    h.onRead((o) => {
      if (o.metadata?.name !== "spx-blue") return;
      const live = h.server.ReplicaSet.get("spx-blue", "ns") as V1ReplicaSet;
      h.server.ReplicaSet.set({ ...live, metadata: { ...live.metadata, resourceVersion: "500" }, spec: { ...live.spec!, replicas: 6 } } as KubernetesObject);
    });
    await expect(h.pass()).rejects.toMatchObject({ code: 409 });
    expect((h.server.ReplicaSet.get("spx-blue", "ns") as V1ReplicaSet).spec?.replicas).toBe(6);
  });

  it("before it has, the operator keeps the current count", async () => {
    const h = steady([{ manager: "wavelet-operator", operation: "Apply", fieldsV1: { "f:spec": { "f:replicas": {} } } }]);
    await h.pass();
    expect((h.applied("ReplicaSet/spx-blue") as V1ReplicaSet).spec?.replicas).toBe(5);
  });
});

/** Green serves the new spec since `since`; blue, the old colour, is in its scale-down delay. */
function greenPromoted(): Harness {
  const h = harness();
  h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
  h.seed("ReplicaSet", desiredReplicaSet(next, next.spec, "green", 3, settings));
  const status = { activeColor: "green", previewColor: "green", activeTemplateHash: newHash, lastGoodSpec: next.spec, rollout: { phase: "ScalingDown", color: "blue", templateHash: newHash, startedAt: since, since } };
  h.seed("WaveletModel", { ...next, status } as unknown as KubernetesObject);
  return h;
}

describe("scale-down waits for the endpoints (issue 8)", () => {
  it("the old colour keeps its pods while the active Service's EndpointSlices list them", async () => {
    const h = greenPromoted();
    h.clock.advance(31_000); // past the 30 s delay
    const [green, blue] = ["spx-green", "spx-blue"].map((rs) => h.podsOfRs(rs)[0]!.metadata!.name!);
    h.route([green!, blue!]);
    expect((await h.pass()).requeueAfterMs).toBe(1000);
    expect(h.writes).not.toContain("ReplicaSet/spx-blue");
    h.sync();
    h.route([green!]);
    await h.pass();
    expect((h.applied("ReplicaSet/spx-blue") as V1ReplicaSet).spec?.replicas).toBe(0);
    expect(h.events).toEqual(["ScaledDown"]);
  });
});

describe("API key rotation rolls the pods, blue-green (issue 8)", () => {
  it("a new version of the Secret changes the template: a rollout to the idle colour, the active one untouched", async () => {
    const h = harness();
    const keyed = model({ server: { apiKeySecretRef: { name: "keys" } } });
    h.secrets.set("keys", { resourceVersion: "7", data: { "api-key": "k1" } });
    const inputs = { secretsHash: undefined as string | undefined };
    // Serve it first, then rotate.
    h.seed("WaveletModel", keyed as unknown as KubernetesObject);
    await h.pass();
    h.sync();
    await h.pass();
    h.sync();
    expect(h.events).toEqual(["Deploying", "Deployed"]);
    const blue = h.applied("ReplicaSet/spx-blue") as V1ReplicaSet;
    inputs.secretsHash = blue.spec!.template!.metadata!.annotations!["wavelet.dev/secrets-hash"];
    expect(inputs.secretsHash).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(blue)).not.toContain("k1");

    h.secrets.set("keys", { resourceVersion: "8", data: { "api-key": "k2" } });
    h.writes.length = 0;
    await h.pass();
    expect(h.events.at(-1)).toBe("RolloutStarted");
    expect(h.writes).not.toContain("ReplicaSet/spx-blue");
    const green = h.applied("ReplicaSet/spx-green") as V1ReplicaSet;
    expect(green.spec!.template!.metadata!.annotations!["wavelet.dev/secrets-hash"]).not.toBe(inputs.secretsHash);
  });
});

describe("traffic moves before a colour goes to zero (issue 8)", () => {
  it("an abort while promoting puts the Service back on blue before green is scaled to zero", async () => {
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(next, next.spec, "green", 3, settings));
    blueServing(h, { previewColor: "green", rollout: { phase: "Promoting", color: "green", templateHash: newHash, startedAt: since, since, message: "auto-promoted" } }, { "wavelet.dev/abort": "true" });
    await h.pass();
    const order = h.writes.filter((w) => w === "Service/spx" || w === "ReplicaSet/spx-green");
    expect(order).toEqual(["Service/spx", "ReplicaSet/spx-green"]);
    expect(h.activeSelector()).toBe("blue");
    expect((h.applied("ReplicaSet/spx-green") as V1ReplicaSet).spec?.replicas).toBe(0);
    expect(h.events).toContain("RolloutAborted");
  });
});

describe("a rollout under autoscaling starts at the count the API server has (CI, 2026-11-27)", () => {
  it("blue scaled to 4 a moment ago, the cache still at 2: green is asked for 4", async () => {
    const h = harness();
    const autoscaled = model({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 8, targetCPUUtilizationPercentage: 60 } });
    const blue = desiredReplicaSet(autoscaled, autoscaled.spec, "blue", 2, settings);
    h.seed("ReplicaSet", blue);
    const status = { activeColor: "blue", previewColor: "blue", activeTemplateHash: templateHash(autoscaled, autoscaled.spec, settings), lastGoodSpec: autoscaled.spec };
    const changed = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B }, replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 8, targetCPUUtilizationPercentage: 60 } });
    h.seed("WaveletModel", { ...changed, status } as unknown as KubernetesObject);
    h.server.ReplicaSet.set({ ...h.server.ReplicaSet.get("spx-blue", "ns")!, spec: { ...blue.spec!, replicas: 4 } } as KubernetesObject);
    await h.pass();
    expect((h.applied("ReplicaSet/spx-green") as V1ReplicaSet).spec?.replicas).toBe(4);
  });
});

describe("ReplicaSets: the idle colour re-templated, an older operator's Deployments retired (issue 13)", () => {
  const mid = model({ bundle: { builtin: "spx-vol-5d", digest: `sha256:${"c".repeat(64)}` }, rollout: { autoPromote: false } });
  const midHash = templateHash(mid, mid.spec, settings);

  it("the idle colour's pods of an older template are deleted once the cache shows the new template", async () => {
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(mid, mid.spec, "green", 3, settings));
    blueServing(h, { previewColor: "green", rollout: { phase: "AwaitingPromotion", color: "green", templateHash: midHash, startedAt: since, since } });
    await h.pass();
    expect(h.writes).toContain("ReplicaSet/spx-green");
    expect(h.writes.filter((w) => w.startsWith("delete"))).toEqual([]);
    // The ReplicaSets' writes reach the cache, green's new template; its pods are still the old ones.
    for (const rs of ["ReplicaSet/spx-blue", "ReplicaSet/spx-green"]) h.caches.ReplicaSet.set(h.applied(rs)!);
    h.sync("WaveletModel", "Service", "PodDisruptionBudget");
    h.writes.length = 0;
    const old = h.podsOfRs("spx-green").map((p) => `delete Pod/${p.metadata!.name}`);
    expect(old).toHaveLength(3);
    await h.pass();
    expect(h.writes.filter((w) => w.startsWith("delete"))).toEqual(old);
  });

  it("an idle Deployment goes at once; the serving one once the colour's ReplicaSet has every replica; another owner's never", async () => {
    const h = steadyBlue();
    const legacy = (name: string, uid: string) =>
      h.seed("Deployment", {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, namespace: "ns", ownerReferences: [{ apiVersion: "wavelet.dev/v1alpha1", kind: "WaveletModel", name: "spx", uid, controller: true }] },
      });
    legacy("spx-blue", "uid-1");
    legacy("spx-green", "uid-1");
    h.pods.items.clear(); // blue's ReplicaSet has no pods yet: the old Deployment's serve
    await h.pass();
    expect(h.writes.filter((w) => w.startsWith("delete"))).toEqual(["delete Deployment/spx-green"]);
    h.sync();
    h.writes.length = 0;
    await h.pass();
    expect(h.writes).toEqual(["status", "delete Deployment/spx-blue"]); // status: blue's replicas now ready

    const other = steadyBlue();
    other.seed("Deployment", { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "spx-green", namespace: "ns", ownerReferences: [{ apiVersion: "v1", kind: "X", name: "x", uid: "uid-2", controller: true }] } });
    await settle(other);
    expect(other.writes.filter((w) => w.startsWith("delete"))).toEqual([]);
  });
});

describe("what else the review of 2026-12-07 found (issue 21)", () => {
  it("passes read no Secret from the API server: their versions come from the metadata cache; only analysis reads a key", async () => {
    const h = harness();
    const keyed = model({ server: { apiKeySecretRef: { name: "keys" } } });
    h.secrets.set("keys", { resourceVersion: "7", data: { "api-key": "k1" } });
    h.seed("WaveletModel", keyed as unknown as KubernetesObject);
    await h.settle(3);
    expect(h.statuses.at(-1)?.phase).toBe("Ready");
    for (let i = 0; i < 5; i++) await h.pass();
    expect(h.secretReads).toEqual([]);
  });

  it("an EndpointSlice list that fails while the old colour waits to scale down makes the model Degraded, with one Event", async () => {
    const h = greenPromoted();
    h.clock.advance(31_000);
    h.broken.routedPods = Object.assign(new Error("endpointslices.discovery.k8s.io is forbidden"), { code: 403 });
    await expect(h.pass()).rejects.toThrow("forbidden");
    expect(h.statuses.at(-1)!.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "ReconcileFailed" });
    expect(h.events).toEqual(["ReconcileFailed"]);
    expect((h.applied("ReplicaSet/spx-blue") as V1ReplicaSet).spec?.replicas).toBe(3);
  });

  it("the pass that records a promotion keeps the count the HPA gave the new colour meanwhile", async () => {
    const auto = { replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 } };
    const old = model(auto);
    const nextAuto = model({ ...auto, bundle: { builtin: "spx-return-1d", digest: DIGEST_B } });
    const [oldAuto, newAuto] = [old, nextAuto].map((m) => templateHash(m, m.spec, settings));
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(old, old.spec, "blue", 3, settings));
    const green = desiredReplicaSet(nextAuto, nextAuto.spec, "green", 3, settings);
    h.seed("ReplicaSet", green);
    const hpaScaled = [{ manager: "kube-controller-manager", operation: "Update", subresource: "scale", fieldsV1: { "f:spec": { "f:replicas": {} } } }];
    // The Promoting pass moved the Service and the HPA to green; the HPA scaled green to 5 since.
    const live = h.server.ReplicaSet.get("spx-green", "ns") as V1ReplicaSet;
    h.server.ReplicaSet.set({ ...live, metadata: { ...live.metadata, resourceVersion: "600", managedFields: hpaScaled }, spec: { ...live.spec!, replicas: 5 } } as KubernetesObject);
    h.seed("Service", { apiVersion: "v1", kind: "Service", metadata: { name: "spx", namespace: "ns", ownerReferences: [{ apiVersion: "wavelet.dev/v1alpha1", kind: "WaveletModel", name: "spx", uid: "uid-1", controller: true }], labels: { "wavelet.dev/model": "spx" } }, spec: { selector: { "wavelet.dev/color": "green" } } } as KubernetesObject);
    h.seed("WaveletModel", { ...nextAuto, status: { activeColor: "blue", previewColor: "green", activeTemplateHash: oldAuto, lastGoodSpec: old.spec, rollout: { phase: "Promoting", color: "green", templateHash: newAuto, startedAt: since, since } } } as unknown as KubernetesObject);
    await h.pass();
    expect(h.statuses.at(-1)).toMatchObject({ activeColor: "green", rollout: { phase: "ScalingDown" } });
    expect((h.sent.get("ReplicaSet/spx-green") as V1ReplicaSet | undefined)?.spec?.replicas).toBeUndefined();
    expect((h.server.ReplicaSet.get("spx-green", "ns") as V1ReplicaSet).spec?.replicas).toBe(5);
  });
});

describe("HTTPS from spec.tls (issue 26)", () => {
  const dir = pkiDir();
  const ca = makeCA(dir, "model-ca");
  const leaf = makeCert(dir, ca, "api", { cn: "api.example.com", dns: ["api.example.com"] });
  const renewed = makeCert(dir, ca, "api-renewed", { cn: "api.example.com", dns: ["api.example.com"] });
  const tlsSecret = (resourceVersion: string, pair = leaf, key = pair.key) => ({ resourceVersion, type: "kubernetes.io/tls", data: { "tls.crt": pair.cert, "tls.key": key, "ca.crt": ca.cert } });
  const tlsModel = model({ tls: { secretName: "spx-tls" } });
  const conditionOf = (h: Harness, type: string) => h.statuses.at(-1)!.conditions!.find((c) => c.type === type);
  const appProtocol = (h: Harness, name: string) => (h.applied(`Service/${name}`) as V1Service).spec!.ports![0]!.appProtocol;

  it("a first deployment whose Secret is missing creates no pods: Degraded=TLSSecretInvalid and one Warning Event; once the Secret exists, it deploys", async () => {
    const h = harness();
    h.seed("WaveletModel", tlsModel as unknown as KubernetesObject);
    await h.settle(3);
    expect(h.server.ReplicaSet.list()).toEqual([]);
    expect(conditionOf(h, "Degraded")).toMatchObject({ status: "True", reason: "TLSSecretInvalid", message: expect.stringContaining("spec.tls: Secret spx-tls does not exist") });
    expect(conditionOf(h, "Ready")).toMatchObject({ status: "False", reason: "TLSSecretInvalid" });
    expect(h.events).toEqual(["TLSSecretInvalid"]);

    h.secrets.set("spx-tls", tlsSecret("5"));
    await h.settle(3);
    expect(h.statuses.at(-1)).toMatchObject({ phase: "Ready", activeColor: "blue", endpoint: "https://spx.ns.svc:80", previewEndpoint: "https://spx-preview.ns.svc:80" });
    expect(conditionOf(h, "Degraded")).toMatchObject({ status: "False" });
    expect(appProtocol(h, "spx")).toBe("https");
  });

  it("blue serves: a spec whose Secret is invalid starts no rollout and leaves blue alone; a valid version starts it", async () => {
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    h.secrets.set("spx-tls", { ...tlsSecret("5"), type: "Opaque" });
    h.seed("WaveletModel", { ...tlsModel, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: oldHash, lastGoodSpec: served.spec } } as unknown as KubernetesObject);
    await h.settle(3);
    expect(h.events).toEqual(["TLSSecretInvalid"]);
    expect(h.server.ReplicaSet.get("spx-green", "ns")).toBeUndefined();
    expect(h.applied("ReplicaSet/spx-blue")!.metadata!.annotations!["wavelet.dev/template-hash"]).toBe(oldHash);
    expect(h.statuses.at(-1)).toMatchObject({ activeColor: "blue", phase: "Degraded" });
    expect(h.statuses.at(-1)!.rollout).toBeUndefined();
    expect(conditionOf(h, "Degraded")!.message).toContain("is of type Opaque, not kubernetes.io/tls");
    expect(h.activeSelector()).toBe("blue");

    h.secrets.set("spx-tls", tlsSecret("6"));
    await h.pass();
    expect(h.events.at(-1)).toBe("RolloutStarted");
    expect(h.server.ReplicaSet.get("spx-green", "ns")).toBeDefined();
    // Until the switch, blue answers over HTTP: the Services say what the colour they select speaks.
    expect(appProtocol(h, "spx")).toBeUndefined();
    expect(appProtocol(h, "spx-preview")).toBe("https");
    expect(h.statuses.at(-1)).toMatchObject({ endpoint: "http://spx.ns.svc:80", previewEndpoint: "https://spx-preview.ns.svc:80" });
  });

  it("an active colour whose Secret goes bad keeps serving: nothing rolls out or is rewritten; a renewed Secret rolls nothing out either", async () => {
    const h = harness();
    h.secrets.set("spx-tls", tlsSecret("5"));
    h.seed("WaveletModel", tlsModel as unknown as KubernetesObject);
    await h.settle(3);
    expect(h.statuses.at(-1)?.phase).toBe("Ready");
    const blue = h.applied("ReplicaSet/spx-blue")!.metadata!.resourceVersion;
    h.writes.length = 0;

    // A key that is not the certificate's: the running pods keep the pair they loaded.
    h.secrets.set("spx-tls", tlsSecret("6", leaf, renewed.key));
    await h.settle(3);
    expect(h.writes).toEqual(["status", "event TLSSecretInvalid"]);
    expect(conditionOf(h, "Degraded")).toMatchObject({ status: "True", reason: "TLSSecretInvalid", message: expect.stringContaining("has a tls.key that is not the private key of its tls.crt") });
    expect(h.statuses.at(-1)).toMatchObject({ activeColor: "blue" });

    // Renewed: checked again, Ready again; the template hash has no Secret version in it.
    h.writes.length = 0;
    h.secrets.set("spx-tls", tlsSecret("7", renewed));
    await h.settle(3);
    expect(h.writes).toEqual(["status"]);
    expect(h.statuses.at(-1)?.phase).toBe("Ready");
    expect(h.events.filter((e) => e === "RolloutStarted")).toEqual([]);
    expect(h.applied("ReplicaSet/spx-blue")!.metadata!.resourceVersion).toBe(blue);
    // Read once per version, not once per pass.
    expect(h.secretReads).toEqual(["spx-tls", "spx-tls", "spx-tls"]);
  });

  it("analysis asks the colours over the scheme each serves, trusting the Secret's certificates", async () => {
    const h = harness();
    h.secrets.set("spx-tls", tlsSecret("5"));
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    const analysed = model({ tls: { secretName: "spx-tls" }, rollout: { analysis: { enabled: true } } });
    h.seed("WaveletModel", { ...analysed, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: oldHash, lastGoodSpec: served.spec } } as unknown as KubernetesObject);
    await h.settle(4);
    expect(h.analyzerCalls[0]).toMatchObject({ preview: "https://spx-preview.ns.svc:80", active: "http://spx.ns.svc:80", ca: ca.cert });
  });
});

describe("routes from outside the cluster (issue 26)", () => {
  const route = { parentRefs: [{ name: "public" }], hostnames: ["spx.example.com"], previewHostnames: ["preview.spx.example.com"] };
  const ingress = { className: "nginx", hosts: ["spx.example.com"] };
  const routed = model({ route, ingress });
  const hostnames = (h: Harness, name: string) => (h.applied(`HTTPRoute/${name}`) as { spec?: { hostnames?: string[] } } | undefined)?.spec?.hostnames;

  it("makes the HTTPRoutes and the Ingress with the Services, follows the spec's changes, and deletes its own when the spec drops them", async () => {
    const h = harness();
    h.seed("WaveletModel", routed as unknown as KubernetesObject);
    await h.settle(3);
    expect(h.statuses.at(-1)?.phase).toBe("Ready");
    expect(hostnames(h, "spx")).toEqual(["spx.example.com"]);
    expect(hostnames(h, "spx-preview")).toEqual(["preview.spx.example.com"]);
    expect(h.applied("Ingress/spx")).toBeDefined();

    const changed = model({ route: { ...route, hostnames: ["api.example.com"], previewHostnames: undefined }, ingress });
    h.seed("WaveletModel", { ...h.model(), spec: changed.spec } as KubernetesObject);
    h.writes.length = 0;
    await h.settle(2);
    expect(hostnames(h, "spx")).toEqual(["api.example.com"]);
    expect(h.applied("HTTPRoute/spx-preview")).toBeUndefined();
    expect(h.writes.filter((w) => !w.startsWith("status"))).toEqual(["HTTPRoute/spx", "delete HTTPRoute/spx-preview"]);

    h.seed("WaveletModel", { ...h.model(), spec: model().spec } as KubernetesObject);
    await h.settle(2);
    expect(h.server.HTTPRoute.list()).toEqual([]);
    expect(h.server.Ingress.list()).toEqual([]);
    expect(h.events.filter((e) => e !== "Deploying" && e !== "Deployed")).toEqual([]);
  });

  it("never adopts an HTTPRoute it does not own, nor deletes one when its spec has none", async () => {
    const h = harness();
    const theirs = { apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", metadata: { name: "spx", namespace: "ns", resourceVersion: "5" }, spec: { hostnames: ["theirs.example.com"] } };
    h.seed("HTTPRoute", theirs as KubernetesObject);
    h.seed("WaveletModel", model() as unknown as KubernetesObject);
    await h.settle(2);
    expect(hostnames(h, "spx")).toEqual(["theirs.example.com"]);

    h.seed("WaveletModel", { ...h.model(), spec: routed.spec } as KubernetesObject);
    await expect(h.pass()).rejects.toThrow("HTTPRoute spx exists and does not belong to this WaveletModel");
    expect(hostnames(h, "spx")).toEqual(["theirs.example.com"]);
    expect(h.statuses.at(-1)!.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "ReconcileFailed" });
  });

  it("on a cluster without the Gateway API: Degraded=GatewayAPIMissing with one Warning Event, no route, everything else made", async () => {
    const h = harness({ gatewayApi: false });
    h.seed("WaveletModel", routed as unknown as KubernetesObject);
    await h.settle(4);
    expect(h.writes.filter((w) => w.startsWith("HTTPRoute"))).toEqual([]);
    expect(h.applied("Ingress/spx")).toBeDefined();
    expect(h.statuses.at(-1)).toMatchObject({ activeColor: "blue", phase: "Degraded" });
    expect(h.statuses.at(-1)!.conditions!.find((c) => c.type === "Degraded")).toMatchObject({
      status: "True",
      reason: "GatewayAPIMissing",
      message: expect.stringContaining("install the Gateway API CRDs (standard channel v1.x)"),
    });
    expect(h.events.filter((e) => e === "GatewayAPIMissing")).toHaveLength(1);
  });

  it("a spec problem and a failed pass at once: each said in its condition, neither announced again", async () => {
    const h = harness({ gatewayApi: false });
    h.seed("Service", { apiVersion: "v1", kind: "Service", metadata: { name: "spx", namespace: "ns", resourceVersion: "5" }, spec: {} } as KubernetesObject);
    h.seed("WaveletModel", routed as unknown as KubernetesObject);
    for (let i = 0; i < 3; i++) {
      await h.pass().catch(() => undefined);
      h.sync();
    }
    const conditions = h.statuses.at(-1)!.conditions!;
    expect(conditions.find((c) => c.type === "Degraded")).toMatchObject({ reason: "GatewayAPIMissing" });
    expect(conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "ReconcileFailed" });
    expect(h.events.filter((e) => e === "GatewayAPIMissing" || e === "ReconcileFailed")).toEqual(["GatewayAPIMissing", "ReconcileFailed"]);
  });
});
