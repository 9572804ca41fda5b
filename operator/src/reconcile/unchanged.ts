import { createHash } from "node:crypto";
import type { KubernetesObject } from "@kubernetes/client-node";
import { canonical } from "./canonical.js";
import { APPLIED_HASH } from "../api/labels.js";

/**
 * Whether a server-side apply would change nothing, so a steady pass writes nothing.
 *
 * Two things make an apply a no-op: the fields it sets are the ones the last apply set (a
 * field dropped from the desired object is released or removed by the next apply, which a
 * comparison of values cannot see), and each of them still has the value applied. The first
 * is a hash of the desired object stamped on it as an annotation; the second is a comparison
 * with the cached object, where the API server's defaults (fields we never set) are ignored.
 * A value the API server normalises (a quantity written "0.5" comes back "500m") compares as
 * changed: that costs an apply per pass, never a missed one.
 */

/** `desired` with the APPLIED_HASH annotation: the hash of everything else in it. */
export function stamped<T extends KubernetesObject>(desired: T): T {
  const { resourceVersion: _, ...metadata } = desired.metadata ?? {};
  const hash = createHash("sha256").update(canonical({ ...desired, metadata })).digest("hex").slice(0, 16);
  return { ...desired, metadata: { ...desired.metadata, annotations: { ...desired.metadata?.annotations, [APPLIED_HASH]: hash } } };
}

/** True when applying `desired` (stamped) over `cached` would change nothing. */
export function applyIsNoop(desired: KubernetesObject, cached: KubernetesObject | undefined): boolean {
  return cached !== undefined && cached.metadata?.annotations?.[APPLIED_HASH] === desired.metadata?.annotations?.[APPLIED_HASH] && contains(cached, desired);
}

/** Every value set in `wanted` is in `actual`; lists must match item by item. */
function contains(actual: unknown, wanted: unknown): boolean {
  if (wanted === undefined) return true;
  if (Array.isArray(wanted)) {
    if (actual === undefined && wanted.length === 0) return true;
    return Array.isArray(actual) && actual.length === wanted.length && wanted.every((w, i) => contains(actual[i], w));
  }
  if (wanted !== null && typeof wanted === "object") {
    const entries = Object.entries(wanted);
    // The API server drops an empty object it was sent for an optional field.
    if (actual === undefined && entries.length === 0) return true;
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) return false;
    return entries.every(([k, v]) => contains((actual as Record<string, unknown>)[k], v));
  }
  return actual === wanted;
}
