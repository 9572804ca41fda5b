import type { V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { colorState, podsOf } from "../src/reconcile/colorstate.js";
import { TEMPLATE_HASH } from "../src/api/labels.js";

const workload = (hash: string, replicas: number): V1ReplicaSet => ({
  metadata: { name: "spx-green", uid: "rs-1", annotations: { [TEMPLATE_HASH]: hash } },
  spec: { replicas, selector: {} },
});
const pod = (hash: string, how: { ready?: boolean; deleting?: boolean; phase?: string } = {}): V1Pod => ({
  metadata: { annotations: { [TEMPLATE_HASH]: hash }, ...(how.deleting ? { deletionTimestamp: new Date() } : {}) },
  status: { phase: how.phase ?? "Running", conditions: [{ type: "Ready", status: how.ready === false ? "False" : "True" }] },
});

describe("a colour counted from its pods", () => {
  it("are the pods its ReplicaSet controls, not others with its labels (a Deployment's being replaced)", () => {
    const owned = (uid: string, controller = true): V1Pod => ({ metadata: { ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "x", uid, controller }] } });
    const mine = owned("rs-1");
    expect(podsOf(workload("h2", 1), [mine, owned("rs-other"), owned("rs-1", false), {}])).toEqual([mine]);
  });

  it("is absent without its ReplicaSet", () => {
    expect(colorState(undefined, [pod("h2")])).toBeUndefined();
  });

  it("counts ready pods of the workload's template only", () => {
    expect(colorState(workload("h2", 3), [pod("h2"), pod("h2", { ready: false }), pod("h2")])).toEqual({
      templateHash: "h2",
      specReplicas: 3,
      readyReplicas: 2,
      availableReplicas: 2,
      rolledOut: true,
    });
  });

  it("is not rolled out while a pod of another template runs, ready or not", () => {
    const state = colorState(workload("h2", 2), [pod("h2"), pod("h2"), pod("h1")]);
    expect(state).toMatchObject({ availableReplicas: 2, rolledOut: false });
  });

  it("is not rolled out while it runs more pods than it asks for (a scale down under way)", () => {
    expect(colorState(workload("h2", 1), [pod("h2"), pod("h2")])).toMatchObject({ rolledOut: false });
  });

  it("leaves out pods being deleted and pods that ended", () => {
    const state = colorState(workload("h2", 1), [pod("h2"), pod("h1", { deleting: true }), pod("h2", { deleting: true }), pod("h1", { phase: "Failed" })]);
    expect(state).toMatchObject({ availableReplicas: 1, rolledOut: true });
  });
});
