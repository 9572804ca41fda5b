import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { waveletModelCrd } from "../src/api/crd.js";
import * as metricNames from "../src/api/metrics.js";
import { QUEUED_ROWS, REQUESTS_PER_SECOND, scalesOnServerMetrics } from "../src/api/metrics.js";
import { autoscalingSpec, waveletModelSpec } from "../src/api/waveletmodel.js";
import { formatQuantity } from "../src/api/quantity.js";
import { activeReplicas, desiredHpa } from "../src/reconcile/hpa.js";
import { model } from "./fixtures.js";

const autoscaled = (autoscaling: Record<string, unknown>) => model({ replicas: undefined, autoscaling: { minReplicas: 1, maxReplicas: 4, ...autoscaling } });
const podsMetric = (name: string, averageValue: string) => ({ type: "Pods", pods: { metric: { name }, target: { type: "AverageValue", averageValue } } });
const cpu = (averageUtilization: number) => ({ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization } } });

describe("the metric names the HPA and the custom metrics API share", () => {
  it("are the API's names", () => {
    expect(metricNames).toMatchObject({
      REQUESTS_PER_SECOND: "requests_per_second",
      QUEUED_ROWS: "queued_rows",
      CUSTOM_METRICS_GROUP: "custom.metrics.k8s.io",
      CUSTOM_METRICS_VERSION: "v1beta2",
    });
  });
});

describe("the HPA on the server's metrics", () => {
  it("scales on requests per second alone: one Pods metric, an average value, no behavior", () => {
    const hpa = desiredHpa(autoscaled({ targetRequestsPerSecond: 40 }), "blue")!;
    expect(hpa.spec!.metrics).toEqual([podsMetric(REQUESTS_PER_SECOND, "40")]);
    expect(hpa.spec).toMatchObject({ minReplicas: 1, maxReplicas: 4, scaleTargetRef: { apiVersion: "apps/v1", kind: "ReplicaSet", name: "spx-blue" } });
    expect(hpa.spec).not.toHaveProperty("behavior");
  });

  it("combines requests per second with CPU (the HPA takes the largest proposal)", () => {
    const hpa = desiredHpa(autoscaled({ targetCPUUtilizationPercentage: 70, targetRequestsPerSecond: 12 }), "green")!;
    expect(hpa.spec!.metrics).toEqual([cpu(70), podsMetric(REQUESTS_PER_SECOND, "12")]);
  });

  it("scales on queued rows, alone or with every other target", () => {
    expect(desiredHpa(autoscaled({ targetQueuedRows: 64 }), "blue")!.spec!.metrics).toEqual([podsMetric(QUEUED_ROWS, "64")]);
    const all = desiredHpa(
      autoscaled({ targetCPUUtilizationPercentage: 70, targetMemoryUtilizationPercentage: 80, targetRequestsPerSecond: 2.5, targetQueuedRows: 1000 }),
      "blue",
    )!;
    expect(all.spec!.metrics!.map((m) => m.resource?.name ?? m.pods?.metric.name)).toEqual(["cpu", "memory", REQUESTS_PER_SECOND, QUEUED_ROWS]);
    expect(all.spec!.metrics![3]).toEqual(podsMetric(QUEUED_ROWS, "1k"));
  });

  it("writes a fractional target in milli-units", () => {
    expect(desiredHpa(autoscaled({ targetRequestsPerSecond: 2.5 }), "blue")!.spec!.metrics).toEqual([podsMetric(REQUESTS_PER_SECOND, "2500m")]);
  });

  it("writes quantities as the API server writes them back, so a steady pass applies nothing", () => {
    const cases: [number, string][] = [
      [40, "40"],
      [1, "1"],
      [2.5, "2500m"],
      [0.25, "250m"],
      [0.001, "1m"],
      [0.1 + 0.2, "300m"],
      [12.3456, "12346m"],
      [120, "120"],
      [1000, "1k"],
      [1500, "1500"],
      [25000, "25k"],
      [1_000_000, "1M"],
    ];
    for (const [value, quantity] of cases) expect([value, formatQuantity(value)]).toEqual([value, quantity]);
  });

  it("passes behavior to the HPA as given", () => {
    const behavior = {
      scaleUp: { stabilizationWindowSeconds: 0, selectPolicy: "Max", policies: [{ type: "Pods", value: 2, periodSeconds: 30 }, { type: "Percent", value: 50, periodSeconds: 30 }] },
      scaleDown: { stabilizationWindowSeconds: 60, selectPolicy: "Min", policies: [{ type: "Percent", value: 10, periodSeconds: 60 }] },
    };
    const wm = autoscaled({ targetRequestsPerSecond: 40, behavior });
    const hpa = desiredHpa(wm, "blue")!;
    expect(hpa.spec!.behavior).toEqual(behavior);
    expect(hpa.spec!.behavior).not.toBe(wm.spec.autoscaling!.behavior);
    expect(desiredHpa(autoscaled({ targetCPUUtilizationPercentage: 50, behavior: { scaleDown: { selectPolicy: "Disabled" } } }), "blue")!.spec!.behavior).toEqual({
      scaleDown: { selectPolicy: "Disabled" },
    });
  });

  it("targets the active colour's ReplicaSet, as under CPU scaling", () => {
    const wm = autoscaled({ targetRequestsPerSecond: 40 });
    expect(desiredHpa(wm, "green")!.spec!.scaleTargetRef.name).toBe("spx-green");
    expect(desiredHpa(wm, "blue")!.spec!.scaleTargetRef.name).toBe("spx-blue");
    expect(activeReplicas(wm, 9)).toBe(4);
    expect(activeReplicas(wm, undefined)).toBe(1);
  });
});

describe("scalesOnServerMetrics: which models the metrics scraper reads", () => {
  it("is true when the HPA scales on requests per second or queued rows", () => {
    expect(scalesOnServerMetrics(model())).toBe(false);
    expect(scalesOnServerMetrics(autoscaled({ targetCPUUtilizationPercentage: 70 }))).toBe(false);
    expect(scalesOnServerMetrics(autoscaled({ targetRequestsPerSecond: 40 }))).toBe(true);
    expect(scalesOnServerMetrics(autoscaled({ targetQueuedRows: 8 }))).toBe(true);
    expect(scalesOnServerMetrics(autoscaled({ targetMemoryUtilizationPercentage: 80, targetQueuedRows: 8 }))).toBe(true);
  });
});

type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema; [key: string]: unknown };

describe("the CRD's autoscaling schema", () => {
  const crd = waveletModelCrd() as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
  const autoscaling = spec.properties!.autoscaling!;
  const rules = autoscaling["x-kubernetes-validations"] as { rule: string; message: string }[];

  it("types the new targets with their bounds and says what they do", () => {
    const { targetRequestsPerSecond, targetQueuedRows } = autoscaling.properties!;
    expect(targetRequestsPerSecond).toMatchObject({ type: "number", minimum: 0.001, maximum: 1_000_000 });
    expect(targetQueuedRows).toMatchObject({ type: "integer", minimum: 1, maximum: 1_000_000 });
    expect(targetRequestsPerSecond!.description).toMatch(/POST \/predict, \/predict\/batch, \/predict\/stream.*custom metrics API \(chart metricsApi.enabled\)/);
    expect(targetQueuedRows!.description).toMatch(/run queue.*custom metrics API/);
    expect(autoscaling.required).toEqual(["minReplicas", "maxReplicas"]);
  });

  it("types behavior all the way down, with Kubernetes' own limits and defaults stated", () => {
    const behavior = autoscaling.properties!.behavior!;
    expect(JSON.stringify(behavior)).not.toContain("x-kubernetes-preserve-unknown-fields");
    expect(behavior.description).toMatch(/scale up at once.*300 s stabilization window/);
    for (const direction of ["scaleUp", "scaleDown"]) {
      const rules = behavior.properties![direction]!;
      expect(rules.type).toBe("object");
      expect(rules.properties!.stabilizationWindowSeconds).toMatchObject({ type: "integer", minimum: 0, maximum: 3600 });
      expect(rules.properties!.selectPolicy).toMatchObject({ type: "string", enum: ["Max", "Min", "Disabled"] });
      const policies = rules.properties!.policies!;
      expect(policies).toMatchObject({ type: "array", minItems: 1, maxItems: 10 });
      expect(policies.items).toMatchObject({
        type: "object",
        required: ["type", "value", "periodSeconds"],
        properties: { type: { enum: ["Pods", "Percent"] }, value: { type: "integer", minimum: 1 }, periodSeconds: { type: "integer", minimum: 1, maximum: 1800 } },
      });
    }
  });

  /**
   * The CEL rule asking for a target, evaluated as the API server would: it is a disjunction
   * of has(self.<field>) (no CEL library here; a rule of another shape fails the test).
   */
  const targetRule = rules.find((r) => r.message.startsWith("autoscaling needs"))!;
  const needsTarget = (object: Record<string, unknown>): boolean =>
    targetRule.rule.split("||").some((term) => {
      const field = /^has\(self\.(\w+)\)$/.exec(term.trim())?.[1];
      if (!field) throw new Error(`not a has() disjunction: ${targetRule.rule}`);
      return field in object;
    });

  it("asks for at least one of the four targets (the message keeps its old words)", () => {
    expect(targetRule.message).toContain("autoscaling needs a CPU or memory target");
    const bounds = { minReplicas: 1, maxReplicas: 2 };
    expect(needsTarget(bounds)).toBe(false);
    expect(needsTarget({ ...bounds, behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } })).toBe(false);
    for (const target of ["targetCPUUtilizationPercentage", "targetMemoryUtilizationPercentage", "targetRequestsPerSecond", "targetQueuedRows"]) {
      expect([target, needsTarget({ ...bounds, [target]: 1 })]).toEqual([target, true]);
    }
    // Every target the schema has counts, and nothing else does.
    const targets = Object.keys(autoscaling.properties!).filter((k) => k.startsWith("target"));
    expect(targetRule.rule.split("||").map((t) => t.trim())).toEqual(targets.map((t) => `has(self.${t})`));
  });

  it("the zod schema the operator parses with holds the same bounds", () => {
    const bounds = { minReplicas: 1, maxReplicas: 2 };
    const ok = (over: Record<string, unknown>) => autoscalingSpec.safeParse({ ...bounds, ...over }).success;
    expect(ok({ targetRequestsPerSecond: 2.5 })).toBe(true);
    expect(ok({ targetRequestsPerSecond: 0.001 })).toBe(true);
    expect(ok({ targetRequestsPerSecond: 0 })).toBe(false);
    expect(ok({ targetRequestsPerSecond: -1 })).toBe(false);
    expect(ok({ targetRequestsPerSecond: 2_000_000 })).toBe(false);
    expect(ok({ targetQueuedRows: 1 })).toBe(true);
    expect(ok({ targetQueuedRows: 0 })).toBe(false);
    expect(ok({ targetQueuedRows: 1.5 })).toBe(false);
    expect(ok({ behavior: {} })).toBe(true);
    expect(ok({ behavior: { scaleUp: { stabilizationWindowSeconds: 3600, selectPolicy: "Min", policies: [{ type: "Pods", value: 4, periodSeconds: 1800 }] } } })).toBe(true);
    expect(ok({ behavior: { scaleUp: { stabilizationWindowSeconds: 3601 } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { stabilizationWindowSeconds: -1 } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { selectPolicy: "Sometimes" } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { policies: [] } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { policies: [{ type: "Replicas", value: 1, periodSeconds: 15 }] } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { policies: [{ type: "Pods", value: 0, periodSeconds: 15 }] } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { policies: [{ type: "Pods", value: 1, periodSeconds: 1801 }] } } })).toBe(false);
    expect(ok({ behavior: { scaleDown: { policies: Array(11).fill({ type: "Pods", value: 1, periodSeconds: 15 }) } } })).toBe(false);
  });
});

describe("crds/examples/spx-return-1d-rps.yaml", () => {
  it("is a model scaling on its request rate, scaling down after 60 s", () => {
    const doc = parse(readFileSync(resolve(import.meta.dirname, "../../crds/examples/spx-return-1d-rps.yaml"), "utf8"));
    expect(waveletModelSpec.safeParse(doc.spec).success).toBe(true);
    expect(doc.spec.replicas).toBeUndefined();
    const wm = model({ ...doc.spec, replicas: undefined }, { metadata: { ...model().metadata, name: doc.metadata.name } });
    expect(wm.spec.autoscaling).toEqual({ minReplicas: 1, maxReplicas: 4, targetRequestsPerSecond: 40, behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } });
    expect(scalesOnServerMetrics(wm)).toBe(true);
    const hpa = desiredHpa(wm, "blue")!;
    expect(hpa.spec!.metrics).toEqual([podsMetric(REQUESTS_PER_SECOND, "40")]);
    expect(hpa.spec!.behavior).toEqual({ scaleDown: { stabilizationWindowSeconds: 60 } });
    expect(hpa.spec!.scaleTargetRef.name).toBe("spx-return-1d-rps-blue");
  });
});
