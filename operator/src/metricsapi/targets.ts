import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { LABELS } from "../api/labels.js";
import { firstKey } from "../kube/client.js";
import { podMetricsUrl, scalesOnServerMetrics } from "../api/metrics.js";
import { waveletModelSpec, type WaveletModelSpec } from "../api/waveletmodel.js";
import type { Target } from "./scraper.js";

/**
 * Which pods the scraper reads: those of the models that scale on a server metric, both
 * colours (the idle colour becomes the HPA's target at the switch and must have rates by
 * then), once they run with an IP and until they are deleted.
 */

export interface TargetSources {
  models: () => readonly KubernetesObject[];
  pods: (namespace: string) => readonly V1Pod[];
  /** The metrics key the model's pods require (server.metricsApiKeySecretRef), as last read. */
  metricsKey: (namespace: string, ref: { name: string; key: string }) => string | undefined;
}

/** A model's spec, when it is one the operator can serve (the reconciler reports the others). */
function specOf(o: KubernetesObject): WaveletModelSpec | undefined {
  const parsed = waveletModelSpec.safeParse((o as { spec?: unknown }).spec);
  return parsed.success ? parsed.data : undefined;
}

export function scrapeTargets(sources: TargetSources): Target[] {
  const targets: Target[] = [];
  for (const model of sources.models()) {
    // Every round reads every model: the full parse only for those that ask for these metrics.
    const raw = (model as { spec?: Pick<WaveletModelSpec, "autoscaling"> }).spec;
    if (!raw || !scalesOnServerMetrics({ spec: raw })) continue;
    const spec = specOf(model);
    const { name, namespace } = model.metadata ?? {};
    if (!spec || !name || !namespace) continue;
    const ref = spec.server.metricsApiKeySecretRef;
    const key = ref && sources.metricsKey(namespace, ref);
    for (const pod of sources.pods(namespace)) {
      const url = podMetricsUrl(pod);
      if (pod.metadata?.labels?.[LABELS.model] !== name || pod.metadata.deletionTimestamp || pod.status?.phase !== "Running" || !url || !pod.metadata.uid) continue;
      targets.push({ uid: pod.metadata.uid, namespace, name: pod.metadata.name!, url, ...(key ? { headers: { "x-api-key": key } } : {}) });
    }
  }
  return targets;
}

/**
 * The metrics keys, read from their Secrets once per Secret version (the informer caches
 * Secrets' metadata only, never their data). A round asks synchronously: a key not read yet
 * is fetched for the next round, and this round's scrape of those pods fails as unauthorized.
 */
export class MetricsKeys {
  private readonly keys = new Map<string, { version: string | undefined; value: string | undefined }>();
  private readonly reading = new Set<string>();

  constructor(
    private readonly read: (namespace: string, name: string) => Promise<{ data: Record<string, string> } | undefined>,
    private readonly version: (namespace: string, name: string) => string | undefined,
    private readonly log: { warn: (msg: string) => void },
  ) {}

  get(namespace: string, ref: { name: string; key: string }): string | undefined {
    const id = `${namespace}/${ref.name}/${ref.key}`;
    const version = this.version(namespace, ref.name);
    const known = this.keys.get(id);
    if ((!known || known.version !== version) && !this.reading.has(id)) {
      this.reading.add(id);
      this.read(namespace, ref.name)
        .then(
          (secret) => this.keys.set(id, { version, value: firstKey(secret, ref.key) }),
          (error: unknown) => this.log.warn(`cannot read the metrics key ${id}: ${(error as Error).message}`),
        )
        .finally(() => this.reading.delete(id));
    }
    return known?.value;
  }
}
