import type { V1Pod } from "@kubernetes/client-node";
import type { WaveletModelSpec } from "./waveletmodel.js";

/**
 * The server's /metrics listener (METRICS_PORT, the guide's 9090): never behind the model's
 * Services, so a client of the API cannot read what other clients asked (issue 22); scraped
 * from the pods by Prometheus (the chart's PodMonitor), the operator's analysis and its
 * custom metrics API.
 */
export const METRICS_PORT = 9090;

/** Where a pod's /metrics is, or undefined before it has an IP. */
export function podMetricsUrl(pod: V1Pod): string | undefined {
  const ip = pod.status?.podIP;
  if (!ip) return undefined;
  return `http://${ip.includes(":") ? `[${ip}]` : ip}:${METRICS_PORT}/metrics`;
}

/**
 * The per-pod metrics the operator's custom metrics API serves and a WaveletModel's HPA can
 * scale on (spec.autoscaling.targetRequestsPerSecond, targetQueuedRows). Both the HPA builder
 * (reconcile/hpa.ts) and the metrics API (metricsapi/) name them from here.
 */

/** The API group and version the operator's custom metrics API serves (an APIService). */
export const CUSTOM_METRICS_GROUP = "custom.metrics.k8s.io";
export const CUSTOM_METRICS_VERSION = "v1beta2";

/** Prediction requests per second of one pod (POST /predict, /predict/batch, /predict/stream), over a window. */
export const REQUESTS_PER_SECOND = "requests_per_second";
/** Rows waiting in one pod's run queue. */
export const QUEUED_ROWS = "queued_rows";

export const SERVER_METRICS = [REQUESTS_PER_SECOND, QUEUED_ROWS] as const;
export type ServerMetric = (typeof SERVER_METRICS)[number];

/**
 * Whether the model's HPA scales on a metric of the operator's custom metrics API, so the
 * operator must scrape its pods: spec.autoscaling sets targetRequestsPerSecond or targetQueuedRows.
 */
export function scalesOnServerMetrics(wm: { spec: Pick<WaveletModelSpec, "autoscaling"> }): boolean {
  const scaling = wm.spec.autoscaling;
  return scaling?.targetRequestsPerSecond !== undefined || scaling?.targetQueuedRows !== undefined;
}
