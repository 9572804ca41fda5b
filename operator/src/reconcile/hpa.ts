import type { V2HorizontalPodAutoscaler, V2MetricSpec } from "@kubernetes/client-node";
import { QUEUED_ROWS, REQUESTS_PER_SECOND } from "../api/metrics.js";
import { formatQuantity } from "../api/quantity.js";
import type { Color, WaveletModel } from "../api/waveletmodel.js";
import { commonLabels, replicaSetName, hpaName, ownerReference } from "./names.js";

/**
 * The HorizontalPodAutoscaler of the active colour, when the spec asks for autoscaling: one
 * metric per target (the HPA scales to the largest count any of them asks for), the pods
 * metrics read from the operator's custom metrics API, and the spec's behavior as given.
 */
export function desiredHpa(wm: WaveletModel, active: Color): V2HorizontalPodAutoscaler | undefined {
  const scaling = wm.spec.autoscaling;
  if (!scaling) return undefined;
  const metrics: V2MetricSpec[] = [];
  const resource = (name: string, averageUtilization: number): V2MetricSpec => ({
    type: "Resource",
    resource: { name, target: { type: "Utilization", averageUtilization } },
  });
  if (scaling.targetCPUUtilizationPercentage) metrics.push(resource("cpu", scaling.targetCPUUtilizationPercentage));
  if (scaling.targetMemoryUtilizationPercentage) metrics.push(resource("memory", scaling.targetMemoryUtilizationPercentage));
  const pods = (name: string, averageValue: number): V2MetricSpec => ({
    type: "Pods",
    pods: { metric: { name }, target: { type: "AverageValue", averageValue: formatQuantity(averageValue) } },
  });
  if (scaling.targetRequestsPerSecond !== undefined) metrics.push(pods(REQUESTS_PER_SECOND, scaling.targetRequestsPerSecond));
  if (scaling.targetQueuedRows !== undefined) metrics.push(pods(QUEUED_ROWS, scaling.targetQueuedRows));
  return {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: { name: hpaName(wm), namespace: wm.metadata.namespace, labels: commonLabels(wm), ownerReferences: [ownerReference(wm)] },
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "ReplicaSet", name: replicaSetName(wm, active) },
      minReplicas: scaling.minReplicas,
      maxReplicas: scaling.maxReplicas,
      metrics,
      ...(scaling.behavior ? { behavior: structuredClone(scaling.behavior) } : {}),
    },
  };
}

/**
 * How many replicas the active colour should have: the fixed count, or under autoscaling
 * whatever the HPA last chose (the ReplicaSet's current count) within its bounds.
 */
export function activeReplicas(wm: WaveletModel, current: number | undefined): number {
  const scaling = wm.spec.autoscaling;
  if (!scaling) return wm.spec.replicas ?? 1;
  return Math.min(scaling.maxReplicas, Math.max(scaling.minReplicas, current ?? scaling.minReplicas));
}
