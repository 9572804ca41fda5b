import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import type { ColorState } from "./bluegreen.js";
import { TEMPLATE_HASH } from "./names.js";

/**
 * What one colour runs, counted from its pods rather than from the workload's status: the
 * controller-manager writes that status after the pods change, late by seconds when its
 * client limit (20 QPS by default) is busy, and a rollout or Ready waits for every second
 * of it. Pods carry the template hash they were created from (TEMPLATE_HASH), so the
 * count needs no status at all.
 */

/** The part of a Deployment or ReplicaSet read here. */
export type Workload = KubernetesObject & { spec?: { replicas?: number } };

const live = (p: V1Pod) => !p.metadata?.deletionTimestamp && p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed";
const ready = (p: V1Pod) => !!p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");

/** `pods`: the colour's pods (its labels), in any state. */
export function colorState(workload: Workload | undefined, pods: V1Pod[]): ColorState | undefined {
  if (!workload) return undefined;
  const hash = workload.metadata?.annotations?.[TEMPLATE_HASH];
  const replicas = workload.spec?.replicas ?? 1;
  const running = pods.filter(live);
  const current = running.filter((p) => p.metadata?.annotations?.[TEMPLATE_HASH] === hash);
  const available = current.filter(ready).length;
  return {
    templateHash: hash,
    specReplicas: replicas,
    readyReplicas: available,
    availableReplicas: available,
    // No pod of another template left, and no surplus being scaled away.
    rolledOut: current.length === running.length && running.length <= replicas,
  };
}
