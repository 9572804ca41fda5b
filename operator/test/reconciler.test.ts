import type { KubernetesObject, ObjectCache, V1Deployment, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { WaveletModel } from "../src/api/waveletmodel.js";
import type { Caches } from "../src/controller/informers.js";
import { createMetrics } from "../src/metrics.js";
import { desiredDeployment, templateHash } from "../src/reconcile/deployment.js";
import { Reconciler, type Writer } from "../src/reconcile/reconciler.js";
import { DIGEST_A, DIGEST_B, FakeClock, model } from "./fixtures.js";

/**
 * The reconciler over a fake cache and writer: what a pass writes, and what the next passes
 * do while the cache still shows versions older than the pass's own writes.
 */

const settings = { defaultServerImage: "wavelet-server:test" };

class FakeCache<T extends KubernetesObject> implements ObjectCache<T> {
  readonly items = new Map<string, T>();
  get(name: string, namespace?: string): T | undefined {
    return this.items.get(`${namespace}/${name}`);
  }
  list(): T[] {
    return [...this.items.values()];
  }
  set(o: T): void {
    this.items.set(`${o.metadata!.namespace}/${o.metadata!.name}`, o);
  }
}

/** A Deployment as the cluster reports it: rolled out, every replica available. */
function rolledOut(d: V1Deployment): V1Deployment {
  const replicas = d.spec!.replicas!;
  return {
    ...d,
    metadata: { ...d.metadata, generation: 1 },
    status: { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas },
  };
}

function harness() {
  const caches = { models: new FakeCache<KubernetesObject>(), deployments: new FakeCache<V1Deployment>(), services: new FakeCache<V1Service>(), hpas: new FakeCache() } as unknown as Caches & {
    models: FakeCache<KubernetesObject>;
    deployments: FakeCache<V1Deployment>;
  };
  const applied: KubernetesObject[] = [];
  let version = 10;
  const writes: string[] = [];
  const statuses: NonNullable<WaveletModel["status"]>[] = [];
  const writer: Writer = {
    apply: async (o) => void applied.push(o),
    deleteIfPresent: async () => undefined,
    applyStatus: async (_wm, status) => (writes.push("status"), statuses.push(status), String(++version)),
    updateModel: async () => (writes.push("model"), String(++version)),
    event: async () => undefined,
  };
  const log = { warn: () => undefined, info: () => undefined };
  const reconciler = new Reconciler({
    caches,
    writer,
    clock: new FakeClock(),
    settings,
    analyzer: async () => ({ result: "pass", message: "" }),
    metrics: createMetrics(),
    log,
  });
  const activeSelector = () =>
    (applied.filter((o) => o.kind === "Service" && o.metadata?.name === "spx").at(-1) as V1Service | undefined)?.spec?.selector?.["wavelet.dev/color"];
  return { caches, applied, writes, statuses, reconciler, activeSelector };
}

describe("a pass never acts on a cache older than its own writes", () => {
  it("a manual promotion sticks: the pass that promotes writes twice, and the version between them is not acted on", async () => {
    const { caches, applied, writes, statuses, reconciler, activeSelector } = harness();
    const served = model();
    const next = model({ bundle: { builtin: "spx-return-1d", digest: DIGEST_B }, rollout: { autoPromote: false } });
    const oldHash = templateHash(served, served.spec, settings);
    const newHash = templateHash(next, next.spec, settings);
    caches.deployments.set(rolledOut(desiredDeployment(served, served.spec, "blue", 3, settings)));
    caches.deployments.set(rolledOut(desiredDeployment(next, next.spec, "green", 3, settings)));
    const since = "2026-01-01T00:00:00.000Z";
    const awaiting: WaveletModel = {
      ...next,
      metadata: { ...next.metadata, resourceVersion: "10", annotations: { "wavelet.dev/promote": "true" } },
      status: {
        activeColor: "blue",
        previewColor: "green",
        activeTemplateHash: oldHash,
        lastGoodSpec: served.spec as never,
        rollout: { phase: "AwaitingPromotion", color: "green", templateHash: newHash, startedAt: since, since },
      },
    };
    caches.models.set(awaiting as unknown as KubernetesObject);

    await reconciler.reconcile("ns/spx");
    expect(writes).toEqual(["model", "status"]); // annotation cleared (rv 11), then the promotion recorded (rv 12)
    expect(activeSelector()).toBe("green");

    // The watch delivers the first write alone: no annotation, the status from before the promotion.
    const { annotations: _, ...metadata } = awaiting.metadata;
    caches.models.set({ ...awaiting, metadata: { ...metadata, resourceVersion: "11" } } as unknown as KubernetesObject);
    applied.length = 0;
    for (let pass = 0; pass < 10; pass++) {
      const result = await reconciler.reconcile("ns/spx");
      expect(result.requeueAfterMs).toBeGreaterThan(0);
    }
    expect(applied).toEqual([]);

    // Then the second: the promotion as recorded. Passes act again, on green.
    caches.models.set({ ...awaiting, metadata: { ...metadata, resourceVersion: "12" }, status: statuses.at(-1) } as unknown as KubernetesObject);
    await reconciler.reconcile("ns/spx");
    expect(activeSelector()).toBe("green");
  });
});
