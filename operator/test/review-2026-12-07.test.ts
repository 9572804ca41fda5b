import type { KubernetesObject, V1ReplicaSet } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { TEMPLATE_HASH } from "../src/api/labels.js";
import type { AnalysisVerdict } from "../src/reconcile/bluegreen.js";
import { desiredReplicaSet, templateHash } from "../src/reconcile/replicaset.js";
import { harness as fakeApi, settings } from "./fakeapi.js";
import { DIGEST_B, FakeClock, model } from "./fixtures.js";

/**
 * The reproductions of the operator review of 2026-12-07 (issue 21), over the fake API server
 * whose ReplicaSet controller behaves like the real one (fakeapi.ts). Each failed before its fix.
 */

const harness = (name = "spx", analyzer?: () => Promise<AnalysisVerdict>) => fakeApi({ name, ...(analyzer ? { analyzer } : {}) });

const owner = { apiVersion: "wavelet.dev/v1alpha1", kind: "WaveletModel", name: "spx", uid: "uid-1", controller: true };

// ---------------------------------------------------------------------------------------------

describe("R1: a first deployment whose spec is fixed while its pods exist never completes", () => {
  it("blue re-templated while it still has pods of the broken template: those pods are replaced", async () => {
    // The user's first spec has a wrong digest: its pods never become ready.
    const broken = model();
    const fixed = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B } });
    const brokenHash = templateHash(broken, broken.spec, settings);
    const fixedHash = templateHash(fixed, fixed.spec, settings);
    const h = harness();
    h.readyByHash.set(brokenHash, false);
    h.seed("ReplicaSet", desiredReplicaSet(broken, broken.spec, "blue", 3, settings));
    h.seedPods("spx-blue", brokenHash, 3, false);
    const since = new Date(h.clock.now()).toISOString();
    // Status as the operator left it: Deploying blue (no active colour yet). The user fixes the spec.
    h.seed("WaveletModel", { ...fixed, status: { rollout: { phase: "Deploying", color: "blue", templateHash: brokenHash, startedAt: since, since } } } as unknown as KubernetesObject);

    await h.settle(6);
    h.clock.advance(11 * 60_000); // past the progress deadline
    await h.settle(6);

    const rs = h.server.ReplicaSet.get("spx-blue", "ns") as V1ReplicaSet;
    const hashes = h.podsOfRs("spx-blue").map((p) => p.metadata!.annotations![TEMPLATE_HASH]);
    // What the cluster looks like now: blue's ReplicaSet has the fixed template, its pods are all the broken one.
    console.log("R1 rs template:", rs.metadata!.annotations![TEMPLATE_HASH] === fixedHash ? "fixed" : "broken", "pods:", hashes.map((x) => (x === fixedHash ? "fixed" : "broken")), "pod deletes:", h.writes.filter((w) => w.startsWith("delete Pod")).length, "last phase:", h.statuses.at(-1)?.rollout?.phase, "activeColor:", h.statuses.at(-1)?.activeColor);
    expect(hashes.every((x) => x === fixedHash)).toBe(true);
    expect(h.statuses.at(-1)?.activeColor).toBe("blue");
  });
});

describe("R2: analysis verdicts are reused by a retried rollout of the same template", () => {
  const analysed = (failureLimit: number, autoPromote: boolean) => {
    const served = model();
    const next = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B }, rollout: { autoPromote, analysis: { enabled: true, failureLimit } } });
    return { served, next, oldHash: templateHash(served, served.spec, settings), newHash: templateHash(next, next.spec, settings) };
  };

  it("failureLimit 0: the retry after a failed analysis fails again at once, without running analysis", async () => {
    const { served, next, oldHash } = analysed(0, true);
    let n = 0;
    const h = harness("spx", async () => (++n === 1 ? { result: "fail", message: "wrong answers (image tag since re-pushed)" } : { result: "pass", message: "ok" }));
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    h.seed("WaveletModel", { ...next, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: oldHash, lastGoodSpec: served.spec } } as unknown as KubernetesObject);
    await h.settle(8);
    expect(h.statuses.at(-1)?.rollout?.phase).toBe("Failed");
    expect(h.analyzerCalls.length).toBe(1);

    // The fix is outside the spec (a re-pushed image); the user asks for another attempt.
    const m = h.model();
    h.seed("WaveletModel", { ...m, metadata: { ...m.metadata, annotations: { "wavelet.dev/retry": "true" } } });
    await h.settle(10);
    console.log("R2a events:", h.events.join(" "), "| analyzer calls:", h.analyzerCalls.length, "| phase:", h.statuses.at(-1)?.rollout?.phase);
    expect(h.analyzerCalls.length).toBe(2);
    expect(h.statuses.at(-1)?.activeColor).toBe("green");
  });

  it("pass, abort, retry: the new pods are never analysed, the old verdict lets them through", async () => {
    const { served, next, oldHash } = analysed(1, false);
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    h.seed("WaveletModel", { ...next, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: oldHash, lastGoodSpec: served.spec } } as unknown as KubernetesObject);
    await h.settle(8);
    expect(h.statuses.at(-1)?.rollout?.phase).toBe("AwaitingPromotion");
    let m = h.model();
    h.seed("WaveletModel", { ...m, metadata: { ...m.metadata, annotations: { "wavelet.dev/abort": "true" } } });
    await h.settle(4);
    expect(h.statuses.at(-1)?.rollout?.phase).toBe("Failed");
    m = h.model();
    h.seed("WaveletModel", { ...m, metadata: { ...m.metadata, annotations: { "wavelet.dev/retry": "true" } } });
    await h.settle(8);
    console.log("R2b events:", h.events.join(" "), "| analyzer calls:", h.analyzerCalls.length, "| phase:", h.statuses.at(-1)?.rollout?.phase);
    expect(h.statuses.at(-1)?.rollout?.phase).toBe("AwaitingPromotion");
    expect(h.analyzerCalls.length).toBe(2); // the retried pods were analysed
  });
});

describe("R3: upgrade from Deployments", () => {
  const legacyDeployment = (color: string, replicas: number) =>
    ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: `spx-${color}`, namespace: "ns", labels: { "app.kubernetes.io/managed-by": "wavelet-operator", "wavelet.dev/model": "spx" }, ownerReferences: [owner] },
      spec: { replicas },
    }) as KubernetesObject;

  it("autoscaled: the serving Deployment at 8 replicas (HPA) is replaced by a ReplicaSet of minReplicas", async () => {
    const auto = model({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 } });
    const hash = templateHash(auto, auto.spec, settings);
    const h = harness();
    h.seed("Deployment", legacyDeployment("blue", 8));
    h.seed("WaveletModel", { ...auto, status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: hash, lastGoodSpec: auto.spec } } as unknown as KubernetesObject);
    await h.settle(3);
    const rs = h.server.ReplicaSet.get("spx-blue", "ns") as V1ReplicaSet;
    console.log("R3a ReplicaSet spx-blue replicas:", rs.spec?.replicas, "| Deployment retired:", h.writes.includes("delete Deployment/spx-blue"));
    // Serving capacity before: 8 pods. After the Deployment is retired: rs.spec.replicas.
    expect(rs.spec?.replicas).toBeGreaterThanOrEqual(8);
  });

  it("during Promoting: the Deployment the active Service selects is deleted before its ReplicaSet has a pod", async () => {
    const served = model();
    const next = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B } });
    const oldHash = templateHash(served, served.spec, settings);
    const newHash = templateHash(next, next.spec, settings);
    const since = new Date(h0()).toISOString();
    const h = harness();
    h.seed("Deployment", legacyDeployment("blue", 3));
    h.seed("Deployment", legacyDeployment("green", 3));
    // The previous operator switched the Service to green and recorded Promoting, then was replaced.
    h.seed("Service", { apiVersion: "v1", kind: "Service", metadata: { name: "spx", namespace: "ns", ownerReferences: [owner], labels: { "wavelet.dev/model": "spx" } }, spec: { selector: { "app.kubernetes.io/instance": "spx", "wavelet.dev/model": "spx", "wavelet.dev/color": "green" } } } as KubernetesObject);
    h.seed("WaveletModel", { ...next, status: { activeColor: "blue", previewColor: "green", activeTemplateHash: oldHash, lastGoodSpec: served.spec, rollout: { phase: "Promoting", color: "green", templateHash: newHash, startedAt: since, since } } } as unknown as KubernetesObject);
    await h.pass();
    const greenPods = h.serverPods.list().filter((p) => p.metadata!.name!.startsWith("spx-green-")).length;
    console.log("R3b writes:", h.writes.join(", "), "| Service selects:", h.activeSelector(), "| green RS pods at that moment:", greenPods);
    expect(h.writes).not.toContain("delete Deployment/spx-green");
  });

  it("during Analyzing: the rollout fails with PreviewLost at once (the preview was a Deployment)", async () => {
    const served = model();
    const next = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B }, rollout: { analysis: { enabled: true } } });
    const oldHash = templateHash(served, served.spec, settings);
    const newHash = templateHash(next, next.spec, settings);
    const since = new Date(h0()).toISOString();
    const h = harness();
    h.seed("Deployment", legacyDeployment("blue", 3));
    h.seed("Deployment", legacyDeployment("green", 3));
    h.seed("WaveletModel", { ...next, status: { activeColor: "blue", previewColor: "green", activeTemplateHash: oldHash, lastGoodSpec: served.spec, rollout: { phase: "Analyzing", color: "green", templateHash: newHash, startedAt: since, since } } } as unknown as KubernetesObject);
    await h.pass();
    console.log("R3c events:", h.events.join(" "), "| phase:", h.statuses.at(-1)?.rollout?.phase);
    expect(h.statuses.at(-1)?.rollout?.phase).not.toBe("Failed");
  });
});

describe("R4: stale-pod deletion acts on a colour the active Service still selects", () => {
  it("Promoting (Service on green), a new spec, the Service write fails once: green's serving pods are deleted and re-created from the unvalidated template", async () => {
    const served = model();
    const mid = model({ bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } });
    const latest = model({ bundle: { builtin: "spx-return-1d", digest: `sha256:${"c".repeat(64)}` } });
    const oldHash = templateHash(served, served.spec, settings);
    const midHash = templateHash(mid, mid.spec, settings);
    const latestHash = templateHash(latest, latest.spec, settings);
    const since = new Date(h0()).toISOString();
    const h = harness();
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    h.seed("ReplicaSet", desiredReplicaSet(mid, mid.spec, "green", 3, settings));
    h.seed("Service", { apiVersion: "v1", kind: "Service", metadata: { name: "spx", namespace: "ns", ownerReferences: [owner], labels: { "wavelet.dev/model": "spx" } }, spec: { selector: { "app.kubernetes.io/instance": "spx", "wavelet.dev/model": "spx", "wavelet.dev/color": "green" } } } as KubernetesObject);
    h.seed("WaveletModel", { ...latest, status: { activeColor: "blue", previewColor: "green", activeTemplateHash: oldHash, lastGoodSpec: served.spec, rollout: { phase: "Promoting", color: "green", templateHash: midHash, startedAt: since, since } } } as unknown as KubernetesObject);
    // The active Service's write fails (a webhook timeout, a 500, a quota) for a while.
    h.failApplyWhen((o) => o.kind === "Service" && o.metadata!.name === "spx");
    await h.settle(3);
    const greenHashes = h.podsOfRs("spx-green").map((p) => (p.metadata!.annotations![TEMPLATE_HASH] === latestHash ? "latest(unvalidated)" : "mid"));
    console.log("R4 Service selects:", h.activeSelector(), "| green pods now:", greenHashes, "| pod deletes:", h.writes.filter((w) => w.startsWith("delete Pod")).length);
    expect(h.writes.filter((w) => w.startsWith("delete Pod"))).toEqual([]);
  });
});

describe("R5: long model names: the old colour's pods are not recognised in the EndpointSlices", () => {
  it("a 55-character name (the CRD allows it): pod names are cut to 58 characters + 5, so startsWith(`${rs}-`) never matches", async () => {
    const name = `m${"x".repeat(54)}`;
    const served = model({}, { metadata: { name, namespace: "ns", uid: "uid-1", generation: 1, resourceVersion: "1" } } as never);
    const next = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B } }, { metadata: { name, namespace: "ns", uid: "uid-1", generation: 1, resourceVersion: "1" } } as never);
    const newHash = templateHash(next, next.spec, settings);
    const since = new Date(h0()).toISOString();
    const h = harness(name);
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    h.seed("ReplicaSet", desiredReplicaSet(next, next.spec, "green", 3, settings));
    h.seed("WaveletModel", { ...next, status: { activeColor: "green", previewColor: "green", activeTemplateHash: newHash, lastGoodSpec: next.spec, rollout: { phase: "ScalingDown", color: "blue", templateHash: newHash, startedAt: since, since } } } as unknown as KubernetesObject);
    h.clock.advance(31_000);
    // One of blue's pods, named by the API server's generator (the base cut to 58 characters).
    const podName = h.podsOfRs(`${name}-blue`)[0]!.metadata!.name!;
    expect(podName.startsWith(`${name}-blue-`)).toBe(false);
    h.route([podName]);
    await h.pass();
    const blue = h.server.ReplicaSet.get(`${name}-blue`, "ns") as V1ReplicaSet;
    console.log("R5 routed old pod:", podName, podName.length, "| blue replicas after pass:", blue.spec?.replicas);
    expect(blue.spec?.replicas).toBe(3); // still routed: must not be scaled down yet
  });
});

function h0() {
  return new FakeClock().now();
}

describe("R6: under autoscaling, the HPA moving the active colour during analysis fails the rollout", () => {
  it("blue scaled 3 → 4 by the HPA while green is Analyzing: PreviewLost, the rollout is Failed", async () => {
    const auto = { replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 } };
    const served = model(auto);
    const next = model({ ...auto, bundle: { builtin: "spx-return-1d", digest: DIGEST_B }, rollout: { analysis: { enabled: true } } });
    const oldHash = templateHash(served, served.spec, settings);
    const newHash = templateHash(next, next.spec, settings);
    const since = new Date(h0()).toISOString();
    // The analyzer takes a while (it waits up to 30 s for the preview, then sends its requests).
    const h = harness("spx", () => new Promise(() => undefined));
    h.seed("ReplicaSet", desiredReplicaSet(served, served.spec, "blue", 3, settings));
    h.seed("ReplicaSet", desiredReplicaSet(next, next.spec, "green", 3, settings));
    h.seed("WaveletModel", { ...next, status: { activeColor: "blue", previewColor: "green", activeTemplateHash: oldHash, lastGoodSpec: served.spec, rollout: { phase: "Analyzing", color: "green", templateHash: newHash, startedAt: since, since } } } as unknown as KubernetesObject);
    await h.pass();
    expect(h.events).toEqual([]);
    // The HPA scales blue to 4 (scale subresource): the live read sees it.
    const blue = h.server.ReplicaSet.get("spx-blue", "ns") as V1ReplicaSet;
    h.server.ReplicaSet.set({ ...blue, metadata: { ...blue.metadata, resourceVersion: "900" }, spec: { ...blue.spec!, replicas: 4 } } as KubernetesObject);
    h.sync();
    await h.pass();
    console.log("R6 events:", h.events.join(" "), "| phase:", h.statuses.at(-1)?.rollout?.phase, "| green replicas:", (h.server.ReplicaSet.get("spx-green", "ns") as V1ReplicaSet).spec?.replicas);
    expect(h.statuses.at(-1)?.rollout?.phase).not.toBe("Failed");
  });
});
