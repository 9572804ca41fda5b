import client from "prom-client";

/** Operator metrics; labels are bounded (results, phases), never object names. */
export function createMetrics() {
  const registry = new client.Registry();
  const m = {
    registry,
    reconciles: new client.Counter({ name: "wavelet_operator_reconciles_total", help: "reconcile passes by result: ok, conflict (409, retried) or error", labelNames: ["result"], registers: [registry] }),
    reconcileSeconds: new client.Histogram({
      name: "wavelet_operator_reconcile_duration_seconds",
      help: "duration of a reconcile pass",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new client.Gauge({ name: "wavelet_operator_workqueue_depth", help: "keys waiting in the work queue", registers: [registry] }),
    rollouts: new client.Gauge({ name: "wavelet_operator_models", help: "WaveletModels by phase", labelNames: ["phase"], registers: [registry] }),
    rolloutSeconds: new client.Histogram({
      name: "wavelet_operator_rollout_duration_seconds",
      help: "time from a rollout's start to its promotion or failure",
      labelNames: ["result"],
      buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    applies: new client.Counter({ name: "wavelet_operator_applies_total", help: "server-side applies of children", labelNames: ["kind"], registers: [registry] }),
    appliesSkipped: new client.Counter({
      name: "wavelet_operator_applies_skipped_total",
      help: "applies not sent because the cached child already was as desired",
      labelNames: ["kind"],
      registers: [registry],
    }),
    // A steady pass (resync, or an event that changes nothing) makes none.
    passWrites: new client.Histogram({
      name: "wavelet_operator_pass_writes",
      help: "writes one reconcile pass sent to the API server (applies, status, spec, deletes, Events)",
      buckets: [0, 1, 2, 4, 8, 16],
      registers: [registry],
    }),
    apiThrottled: new client.Counter({
      name: "wavelet_operator_api_throttled_seconds_total",
      help: "time API requests waited for the client-side rate limit (KUBE_API_QPS, KUBE_API_BURST)",
      registers: [registry],
    }),
    leader: new client.Gauge({ name: "wavelet_operator_leader", help: "1 while this replica leads", registers: [registry] }),
    // The custom metrics API (metricsapi/): its answers by status code, and its scrapes of server pods by outcome.
    metricsApiRequests: new client.Counter({
      name: "wavelet_operator_metrics_api_requests_total",
      help: "requests to the custom metrics API (custom.metrics.k8s.io) by status code",
      labelNames: ["code"],
      registers: [registry],
    }),
    scrapes: new client.Counter({
      name: "wavelet_operator_metrics_scrapes_total",
      help: "scrapes of server pods' /metrics for the custom metrics API, by outcome (ok, error, timeout, too_large)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    // Reasons are the operator's own constants, so the label is bounded.
    events: new client.Counter({ name: "wavelet_operator_events_total", help: "Kubernetes Events the operator emitted, by type and reason", labelNames: ["type", "reason"], registers: [registry] }),
  };
  // Exported at 0 from the start, so increase() sees the first rollout past its deadline
  // (alert WaveletRolloutPastDeadline) and an error rate is 0 rather than absent.
  m.events.inc({ type: "Warning", reason: "ProgressDeadlineExceeded" }, 0);
  for (const result of ["ok", "conflict", "error"]) m.reconciles.inc({ result }, 0);
  client.collectDefaultMetrics({ register: registry });
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
