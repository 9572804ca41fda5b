import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION, type WaveletModel, type WaveletModelSpec, type WaveletModelStatus } from "../api/waveletmodel.js";
import { FIELD_MANAGER } from "../api/labels.js";

/**
 * The few writes the operator makes. Children and status go through server-side apply
 * with one field manager (force: the operator owns what it applies). The spec is only
 * written on an explicit rollback request, with a resourceVersion precondition: a 409
 * means someone changed it meanwhile, and the pass is retried.
 */

/** A Secret's decoded data, its type, and its version (which changes whenever the Secret does). */
export interface SecretData {
  resourceVersion: string;
  type: string;
  data: Record<string, string>;
}

/** One of the keys a Secret's `key` holds for the server, which takes a comma-separated list (any one will do). */
export const firstKey = (secret: Pick<SecretData, "data"> | undefined, key: string): string | undefined => secret?.data[key]?.split(",")[0]?.trim() || undefined;

export interface EventRecord {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export class KubeClient {
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;

  /** `instance`: this replica (its pod name), the Events' reportingInstance. */
  constructor(
    kc: KubeConfig,
    private readonly instance: string,
    private readonly component = "wavelet-operator",
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
  }

  async read(object: KubernetesObject): Promise<KubernetesObject | undefined> {
    try {
      const { apiVersion, kind, metadata } = object;
      return await this.objects.read({ apiVersion: apiVersion!, kind: kind!, metadata: { name: metadata!.name!, namespace: metadata!.namespace! } });
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async secret(namespace: string, name: string): Promise<SecretData | undefined> {
    try {
      const secret = await this.core.readNamespacedSecret({ name, namespace });
      const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
      return { resourceVersion: secret.metadata?.resourceVersion ?? "", type: secret.type ?? "Opaque", data };
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async routedPods(service: string, namespace: string): Promise<string[]> {
    const slices = await this.discovery.listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` });
    return slices.items.flatMap((slice) => slice.endpoints.flatMap((e) => (e.targetRef?.kind === "Pod" && e.targetRef.name ? [e.targetRef.name] : [])));
  }

  /** Answers the resourceVersion the object has afterwards. */
  async apply(object: KubernetesObject): Promise<string | undefined> {
    const written = await this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    return written.metadata?.resourceVersion;
  }

  async deleteIfPresent(object: KubernetesObject): Promise<void> {
    try {
      await this.objects.delete(object);
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
    }
  }

  /**
   * `resourceVersion` is the version the pass decided from: the API server refuses the
   * write (409) if the model changed since, so a pass that read an old version, or a second
   * leader, cannot overwrite newer status.
   */
  async applyStatus(wm: WaveletModel, status: WaveletModelStatus, resourceVersion: string): Promise<string | undefined> {
    const written = await this.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: wm.metadata.namespace,
        plural: PLURAL,
        name: wm.metadata.name,
        body: { apiVersion: wm.apiVersion, kind: wm.kind, metadata: { name: wm.metadata.name, namespace: wm.metadata.namespace, resourceVersion }, status },
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
    );
    return (written as KubernetesObject).metadata?.resourceVersion;
  }

  /**
   * Remove the handled annotations and, on rollback, put the last good spec back, in one JSON
   * patch that first tests the resourceVersion the pass read (a 409-like 422 otherwise is
   * mapped to 409: someone changed the model meanwhile). A patch, not server-side apply: the
   * annotations belong to whoever set them, and SSA could not remove them or the spec fields
   * the last good spec lacks.
   */
  async updateModel(raw: KubernetesObject, change: { clearAnnotations: string[]; spec?: WaveletModelSpec }): Promise<string | undefined> {
    const pointer = (key: string) => key.replaceAll("~", "~0").replaceAll("/", "~1");
    const ops = [
      { op: "test", path: "/metadata/resourceVersion", value: raw.metadata!.resourceVersion },
      ...change.clearAnnotations.map((a) => ({ op: "remove", path: `/metadata/annotations/${pointer(a)}` })),
      ...(change.spec ? [{ op: "replace", path: "/spec", value: change.spec }] : []),
    ];
    try {
      const written = await this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: raw.metadata!.namespace!, plural: PLURAL, name: raw.metadata!.name!, body: ops },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      );
      return (written as KubernetesObject).metadata?.resourceVersion;
    } catch (error) {
      // A failed test op is 422 "the server rejected our request due to an error in our request".
      if (statusCode(error) === 422 && /test operation|testing value/i.test(apiMessage(error))) throw Object.assign(new Error("the model changed since it was read"), { code: 409 });
      throw error;
    }
  }

  async event(wm: WaveletModel, e: EventRecord, now: Date): Promise<void> {
    await this.core.createNamespacedEvent({
      namespace: wm.metadata.namespace,
      body: {
        metadata: { generateName: `${wm.metadata.name}.`, namespace: wm.metadata.namespace },
        involvedObject: {
          apiVersion: wm.apiVersion,
          kind: wm.kind,
          name: wm.metadata.name,
          namespace: wm.metadata.namespace,
          uid: wm.metadata.uid,
          ...(wm.metadata.resourceVersion ? { resourceVersion: wm.metadata.resourceVersion } : {}),
        },
        type: e.type,
        reason: e.reason,
        message: e.message,
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.instance,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}

/** What the API server said (its Status message), else the error's own message. */
export function apiMessage(error: unknown): string {
  const body = (error as { body?: unknown })?.body;
  try {
    const status = (typeof body === "string" ? JSON.parse(body) : body) as { message?: unknown } | undefined;
    if (typeof status?.message === "string") return status.message;
  } catch {
    // not JSON: fall through
  }
  return String((error as Error)?.message ?? error);
}

/** The HTTP status of a client-node error, if it has one. */
export function statusCode(error: unknown): number | undefined {
  const e = error as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const v of [e?.code, e?.statusCode, e?.response?.statusCode]) if (typeof v === "number") return v;
  return undefined;
}
