import type { V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { relevantUpdates } from "../src/controller/relevant.js";
import { TEMPLATE_HASH } from "../src/api/labels.js";

const pod = (over: { ready?: boolean; phase?: string; hostIP?: string; deleting?: boolean } = {}): V1Pod => ({
  metadata: { uid: "p1", annotations: { [TEMPLATE_HASH]: "h1" }, ...(over.deleting ? { deletionTimestamp: new Date(0) } : {}) },
  status: { phase: over.phase ?? "Running", hostIP: over.hostIP, conditions: [{ type: "Ready", status: over.ready ? "True" : "False" }] },
});

describe("updates that queue a pass (issue 13)", () => {
  it("a pod: its readiness, phase and deletion, not the rest of its status", () => {
    const pods = relevantUpdates("pods");
    pods.seen(pod({ phase: "Pending" }));
    expect(pods.update(pod({ phase: "Pending", hostIP: "10.0.0.1" }))).toBe(false); // scheduled
    expect(pods.update(pod())).toBe(true); // running
    expect(pods.update(pod({ hostIP: "10.0.0.1" }))).toBe(false);
    expect(pods.update(pod({ ready: true }))).toBe(true);
    expect(pods.update(pod({ ready: true, deleting: true }))).toBe(true);
  });

  it("a ReplicaSet: its spec (generation) and metadata, never its status", () => {
    const replicasets = relevantUpdates("replicasets");
    const rs = (generation: number, ready: number, labels = {}): V1ReplicaSet => ({
      metadata: { uid: "r1", generation, labels },
      spec: { replicas: 2, selector: {} },
      status: { replicas: 2, readyReplicas: ready },
    });
    replicasets.seen(rs(1, 0));
    expect(replicasets.update(rs(1, 1))).toBe(false);
    expect(replicasets.update(rs(2, 1))).toBe(true); // scaled by the HPA
    expect(replicasets.update(rs(2, 1, { team: "x" }))).toBe(true); // a label edited by hand
  });

  it("a PDB or an HPA: not the status their controllers keep writing", () => {
    for (const resource of ["pdbs", "hpas"]) {
      const updates = relevantUpdates(resource);
      updates.seen({ metadata: { uid: "x", generation: 1 } });
      expect(updates.update({ metadata: { uid: "x", generation: 1 }, status: { currentHealthy: 1 } } as never)).toBe(false);
      expect(updates.update({ metadata: { uid: "x", generation: 2 } })).toBe(true);
    }
  });

  it("other kinds: every update; a deleted object is forgotten", () => {
    const services = relevantUpdates("services");
    expect(services.update({ metadata: { uid: "s1" } })).toBe(true);
    expect(services.update({ metadata: { uid: "s1" } })).toBe(true);
    const pods = relevantUpdates("pods");
    pods.seen(pod());
    pods.forget(pod());
    expect(pods.update(pod())).toBe(true);
  });
});
