import {
  ApiextensionsV1Api,
  AppsV1Api,
  AutoscalingV2Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { podReady } from "../operator/src/api/labels.js";
import { GROUP, PLURAL, VERSION, type WaveletModelStatus } from "../operator/src/api/waveletmodel.js";
import { waitFor } from "./wait.js";

/** Kubernetes clients and WaveletModel helpers shared by the operator's integration tests and the kind tier. */

export function kubeClients(kubeconfig: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    autoscaling: kc.makeApiClient(AutoscalingV2Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    policy: kc.makeApiClient(PolicyV1Api),
    apiext: kc.makeApiClient(ApiextensionsV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}
export type Clients = ReturnType<typeof kubeClients>;

export type Model = {
  metadata: { name: string; generation: number; resourceVersion: string; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: WaveletModelStatus;
};

export function models(a: Clients, namespace: string) {
  const base = { group: GROUP, version: VERSION, namespace, plural: PLURAL };
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    create: (name: string, spec: Record<string, unknown>, dryRun = false) =>
      a.custom.createNamespacedCustomObject({
        ...base,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: "WaveletModel", metadata: { name }, spec },
        ...(dryRun ? { dryRun: "All" } : {}),
      }),
    get: (name: string) => a.custom.getNamespacedCustomObject({ ...base, name }) as Promise<Model>,
    patch: (name: string, body: Record<string, unknown>) => a.custom.patchNamespacedCustomObject({ ...base, name, body }, merge),
    remove: (name: string) => a.custom.deleteNamespacedCustomObject({ ...base, name }),
  };
}

/** The reasons of the Events about one WaveletModel, oldest first. */
export async function eventReasons(a: Clients, namespace: string, name: string): Promise<string[]> {
  const list = await a.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name},involvedObject.kind=WaveletModel` });
  return list.items
    // etcd revisions order writes; fine for tests against one etcd.
    .sort((x, y) => Number(x.metadata?.resourceVersion) - Number(y.metadata?.resourceVersion))
    .map((e) => e.reason!);
}

/**
 * The Event reasons once `reason` is among them. The reconciler posts a pass's Events after the
 * status write that reports it, so a test that saw the status must wait for the Event.
 */
export function eventReasonsWith(a: Clients, namespace: string, name: string, reason: string): Promise<string[]> {
  return waitFor(`the ${reason} Event`, async () => {
    const seen = await eventReasons(a, namespace, name);
    return seen.includes(reason) ? seen : undefined;
  });
}

/** The ready pods of one colour of a model (any owner), not being deleted: as the operator counts them. */
export async function readyPods(a: Clients, namespace: string, model: string, color: string): Promise<number> {
  const pods = await a.core.listNamespacedPod({ namespace, labelSelector: `wavelet.dev/model=${model},wavelet.dev/color=${color}` });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp && podReady(p)).length;
}

export async function activeColor(k: Clients, namespace: string, name: string): Promise<string | undefined> {
  const svc = await k.core.readNamespacedService({ name, namespace });
  return svc.spec?.selector?.["wavelet.dev/color"];
}

/**
 * Every change of the active Service's colour selector, polled every 100 ms: when traffic
 * switched, and whether it ever switched back.
 */
export class SwitchWatch {
  readonly changes: { at: number; color: string | undefined }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly k: Clients,
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  async start(): Promise<this> {
    this.changes.push({ at: Date.now(), color: await activeColor(this.k, this.namespace, this.name) });
    this.timer = setInterval(() => {
      if (this.polling) return;
      this.polling = true;
      activeColor(this.k, this.namespace, this.name)
        .then((color) => {
          if (color !== this.changes.at(-1)!.color) this.changes.push({ at: Date.now(), color });
        })
        .catch(() => undefined)
        .finally(() => (this.polling = false));
    }, 100);
    return this;
  }

  get current(): string | undefined {
    return this.changes.at(-1)!.color;
  }

  /** When the selector first moved away from its starting colour. */
  async switched(timeoutMs = 300_000): Promise<number> {
    return waitFor("the active Service to switch colour", () => this.changes[1]?.at, timeoutMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
