import type { V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import type { ColorState } from "./bluegreen.js";
import { TEMPLATE_HASH, podReady } from "../api/labels.js";

/**
 * What one colour runs, counted from its pods rather than from the workload's status: the
 * controller-manager writes that status after the pods change, late by seconds when its
 * client limit (20 QPS by default) is busy, and a rollout or Ready waits for every second
 * of it. Pods carry the template hash they were created from (TEMPLATE_HASH), so the
 * count needs no status at all.
 */

const live = (p: V1Pod) => !p.metadata?.deletionTimestamp && p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed";

/**
 * The pods `replicaSet` controls, from `pods` (any of the namespace): by owner, not by labels,
 * so pods of the same labels under another owner (a Deployment of an older operator, being
 * replaced) never count as its own.
 */
export function podsOf(replicaSet: V1ReplicaSet, pods: readonly V1Pod[]): V1Pod[] {
  const uid = replicaSet.metadata?.uid;
  return pods.filter((p) => p.metadata?.ownerReferences?.some((r) => r.controller && r.uid === uid));
}

/** `pods`: the pods the colour's ReplicaSet controls (podsOf), in any state. */
export function colorState(replicaSet: V1ReplicaSet | undefined, pods: V1Pod[]): ColorState | undefined {
  if (!replicaSet) return undefined;
  const hash = replicaSet.metadata?.annotations?.[TEMPLATE_HASH];
  const replicas = replicaSet.spec?.replicas ?? 1;
  const running = pods.filter(live);
  const current = running.filter((p) => p.metadata?.annotations?.[TEMPLATE_HASH] === hash);
  const available = current.filter(podReady).length;
  return {
    templateHash: hash,
    specReplicas: replicas,
    readyReplicas: available,
    availableReplicas: available,
    // No pod of another template left, and no surplus being scaled away.
    rolledOut: current.length === running.length && running.length <= replicas,
  };
}
