import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { CUSTOM_METRICS_GROUP, CUSTOM_METRICS_VERSION, SERVER_METRICS, type ServerMetric } from "../api/metrics.js";
import { LABELS } from "../api/labels.js";
import { API_VERSION, GROUP, KIND, PLURAL } from "../api/waveletmodel.js";
import { type Answer, type Routed, status } from "./apiserver.js";
import type { Attributes } from "./authz.js";
import { formatQuantity } from "../api/quantity.js";
import type { MetricStore, MetricValue } from "./rates.js";
import { type LabelMatcher, parseSelector, SelectorError } from "./selector.js";

/**
 * The custom metrics API (custom.metrics.k8s.io/v1beta2) as pure functions of the caches and
 * the MetricStore: what a path asks for, what the authorizer must check for it, and the
 * answer. Only measured values are served: a pod without one is left out of a list (the HPA
 * then treats it as it treats a pod not ready) and never reported as 0.
 */

const GROUP_VERSION = `${CUSTOM_METRICS_GROUP}/${CUSTOM_METRICS_VERSION}`;
const ROOT = `/apis/${CUSTOM_METRICS_GROUP}`;
const NAMESPACED = `${ROOT}/${CUSTOM_METRICS_VERSION}/namespaces/`;
/** How the HPA's client names the WaveletModel resource in paths (resource.group). */
export const MODEL_RESOURCE = `${PLURAL}.${GROUP}`;
const SERVED = `${SERVER_METRICS.join(" and ")} of pods and of ${MODEL_RESOURCE}`;

export type Resolved =
  | { kind: "group" }
  | { kind: "discovery" }
  | { kind: "pods"; namespace: string; name: string; metric: string }
  | { kind: "object"; namespace: string; resource: typeof MODEL_RESOURCE; name: string; metric: string }
  | { kind: "notFound" };

/** What `path` (a URL's pathname, still percent-encoded) asks for. */
export function resolve(path: string): Resolved {
  if (path === ROOT) return { kind: "group" };
  if (path === `${ROOT}/${CUSTOM_METRICS_VERSION}`) return { kind: "discovery" };
  if (!path.startsWith(NAMESPACED)) return { kind: "notFound" };
  let parts: string[];
  try {
    parts = path.slice(NAMESPACED.length).split("/").map(decodeURIComponent);
  } catch {
    return { kind: "notFound" };
  }
  const [namespace, resource, name, metric] = parts;
  if (parts.length !== 4 || !namespace || !name || !metric) return { kind: "notFound" };
  if (resource === "pods") return { kind: "pods", namespace, name, metric };
  if (resource === MODEL_RESOURCE) return { kind: "object", namespace, resource, name, metric };
  return { kind: "notFound" };
}

/**
 * What the SubjectAccessReview asks, as the API server's request info would put it: the
 * metric is the subresource, a list of pods the name "*". Other paths are non-resource URLs
 * (discovery: every authenticated user may read it, by system:discovery).
 */
export function accessAttributes(resolved: Resolved, path: string): Attributes {
  if (resolved.kind !== "pods" && resolved.kind !== "object") return { nonResource: { path, verb: "get" } };
  return {
    resource: {
      group: CUSTOM_METRICS_GROUP,
      version: CUSTOM_METRICS_VERSION,
      resource: resolved.kind === "pods" ? "pods" : resolved.resource,
      subresource: resolved.metric,
      name: resolved.name,
      namespace: resolved.namespace,
      verb: "get",
    },
  };
}

/** What the handlers read; the wiring adapts the informers' caches to it. */
export interface MetricsContext {
  /** The server pods of a namespace: the children the operator manages (its pods cache). */
  pods(namespace: string): readonly V1Pod[];
  /** The WaveletModel, while it exists (the models cache). */
  model(namespace: string, name: string): KubernetesObject | undefined;
  store: Pick<MetricStore, "value">;
  now(): number;
}

const groupVersion = { groupVersion: GROUP_VERSION, version: CUSTOM_METRICS_VERSION };
const API_GROUP = { kind: "APIGroup", apiVersion: "v1", name: CUSTOM_METRICS_GROUP, versions: [groupVersion], preferredVersion: groupVersion };
const RESOURCE_LIST = {
  kind: "APIResourceList",
  apiVersion: "v1",
  groupVersion: GROUP_VERSION,
  resources: ["pods", MODEL_RESOURCE].flatMap((resource) =>
    SERVER_METRICS.map((metric) => ({ name: `${resource}/${metric}`, singularName: "", namespaced: true, kind: "MetricValueList", verbs: ["get"] })),
  ),
};

/** metav1.Time's form: RFC 3339 in whole seconds. */
const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

const metricValue = (describedObject: Record<string, string>, metric: ServerMetric, v: MetricValue) => ({
  describedObject,
  metric: { name: metric },
  timestamp: rfc3339(v.timestamp),
  windowSeconds: v.windowSeconds,
  value: formatQuantity(v.value),
});

const valueList = (items: unknown[]) => ({ apiVersion: GROUP_VERSION, kind: "MetricValueList", metadata: {}, items });

export function answer(resolved: Resolved, query: URLSearchParams, ctx: MetricsContext): Answer {
  if (resolved.kind === "group") return { status: 200, body: API_GROUP };
  if (resolved.kind === "discovery") return { status: 200, body: RESOURCE_LIST };
  if (resolved.kind === "notFound") return status(404, "NotFound", "the server could not find the requested resource");
  const metric = SERVER_METRICS.find((m) => m === resolved.metric);
  if (!metric) return status(404, "NotFound", `no metric "${resolved.metric}": this API serves ${SERVED}`);
  // Our series have no labels to select: refusing says so, where matching none would only show as missing data.
  if (query.get("metricLabelSelector")) return status(400, "BadRequest", `metricLabelSelector is not supported: the metrics served here have no labels (remove metric.selector)`);
  const { namespace, name } = resolved;
  const now = ctx.now();
  const measured = (pods: V1Pod[]) =>
    pods.flatMap((pod) => {
      const v = pod.metadata?.uid ? ctx.store.value(pod.metadata.uid, metric, now) : undefined;
      return v ? [{ pod, v }] : [];
    });

  if (resolved.kind === "pods") {
    let selects: LabelMatcher;
    try {
      selects = parseSelector(query.get("labelSelector") ?? "");
    } catch (error) {
      if (error instanceof SelectorError) return status(400, "BadRequest", `labelSelector: ${error.message}`);
      throw error;
    }
    const pods = ctx.pods(namespace).filter((p) => (name === "*" || p.metadata?.name === name) && selects(p.metadata?.labels));
    const items = measured(pods)
      .map(({ pod, v }) => metricValue({ kind: "Pod", namespace, name: pod.metadata!.name!, apiVersion: "/v1" }, metric, v))
      .sort((a, b) => a.describedObject.name!.localeCompare(b.describedObject.name!));
    if (name !== "*" && !items.length) return status(404, "NotFound", `no ${metric} for pod ${namespace}/${name}: not a server pod, or not scraped recently`);
    return { status: 200, body: valueList(items) };
  }

  // A named object: the HPA sends no labelSelector for it.
  if (!ctx.model(namespace, name)) return status(404, "NotFound", `${MODEL_RESOURCE} "${name}" not found in namespace ${namespace}`);
  const values = measured(ctx.pods(namespace).filter((p) => p.metadata?.labels?.[LABELS.model] === name)).map(({ v }) => v);
  if (!values.length) return status(404, "NotFound", `no ${metric} for ${MODEL_RESOURCE} ${namespace}/${name}: none of its pods scraped recently`);
  // The model's value is its pods' total, as of the newest of them, over the longest window.
  const total: MetricValue = {
    value: values.reduce((sum, v) => sum + v.value, 0),
    windowSeconds: Math.max(...values.map((v) => v.windowSeconds)),
    timestamp: Math.max(...values.map((v) => v.timestamp)),
  };
  return { status: 200, body: valueList([metricValue({ kind: KIND, namespace, name, apiVersion: API_VERSION }, metric, total)]) };
}

/** The handlers in the shape the HTTPS listener takes (apiserver.ts). */
export function route(url: URL, ctx: MetricsContext): Routed {
  const resolved = resolve(url.pathname);
  return { attributes: accessAttributes(resolved, url.pathname), answer: () => answer(resolved, url.searchParams, ctx) };
}
