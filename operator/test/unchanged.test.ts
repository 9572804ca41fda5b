import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { APPLIED_HASH } from "../src/api/labels.js";
import { desiredServices } from "../src/reconcile/service.js";
import { applyIsNoop, stamped } from "../src/reconcile/unchanged.js";
import { model } from "./fixtures.js";

/** What an apply would change, judged from the cache (issue 13: a steady pass writes nothing). */

const desired = stamped(desiredServices(model(), "blue", "green")[0]!);
/** The Service as the API server stores it: our fields plus its defaults. */
const stored = (o: KubernetesObject = desired): KubernetesObject => {
  const s = structuredClone(o) as KubernetesObject & { spec: Record<string, unknown> & { ports: Record<string, unknown>[] } };
  s.metadata = { ...s.metadata, resourceVersion: "42", uid: "u", managedFields: [] };
  s.spec.clusterIP = "10.96.0.10";
  s.spec.sessionAffinity = "None";
  s.spec.ports = s.spec.ports.map((p) => ({ ...p, nodePort: 30001 }));
  return s;
};

describe("applyIsNoop", () => {
  it("is true for the object as stored, with the API server's defaults added", () => {
    expect(applyIsNoop(desired, stored())).toBe(true);
  });

  it("is false when nothing is cached, a value we set changed, or a list item differs", () => {
    expect(applyIsNoop(desired, undefined)).toBe(false);
    const moved = stored() as KubernetesObject & { spec: { selector: Record<string, string>; ports: { port: number }[] } };
    moved.spec.selector["wavelet.dev/color"] = "green";
    expect(applyIsNoop(desired, moved)).toBe(false);
    const port = stored() as KubernetesObject & { spec: { ports: { port: number }[] } };
    port.spec.ports[0]!.port = 9;
    expect(applyIsNoop(desired, port)).toBe(false);
    const extra = stored() as KubernetesObject & { spec: { ports: unknown[] } };
    extra.spec.ports.push({ name: "other", port: 9 });
    expect(applyIsNoop(desired, extra)).toBe(false);
  });

  it("is false when the desired object dropped a field the last apply set (the hash differs)", () => {
    const withType = stamped(desiredServices(model({ service: { type: "NodePort", port: 8000 } }), "blue", "green")[0]!);
    const { type: _, ...spec } = withType.spec!;
    const without = stamped({ ...withType, spec });
    // Every value `without` sets is in what `withType` stored, but type would be released.
    expect(applyIsNoop(without, stored(withType))).toBe(false);
    expect(applyIsNoop(withType, stored(withType))).toBe(true);
  });

  it("stamps a hash that ignores resourceVersion and adds nothing else", () => {
    const plain = desiredServices(model(), "blue", "green")[0]!;
    const conditional = stamped({ ...plain, metadata: { ...plain.metadata, resourceVersion: "7" } });
    expect(conditional.metadata!.annotations).toEqual(desired.metadata!.annotations);
    expect(Object.keys(desired.metadata!.annotations!)).toEqual([APPLIED_HASH]);
    expect({ ...desired, metadata: { ...desired.metadata, annotations: undefined } }).toEqual({ ...plain, metadata: { ...plain.metadata, annotations: undefined } });
  });
});
