import { describe, expect, it } from "vitest";
import { MetricStore, type Observation } from "../../src/metricsapi/rates.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const WINDOW = 30_000;
const STALE = 15_000;

/** A store fed `counts` (and optionally queue lengths) one scrape every `everyMs` from T0; answers the time of the last. */
function fed(counts: number[], { everyMs = 5000, queued }: { everyMs?: number; queued?: number[] } = {}): { store: MetricStore; last: number } {
  const store = new MetricStore({ windowMs: WINDOW, staleMs: STALE });
  counts.forEach((requests, i) => store.record("pod-a", { at: T0 + i * everyMs, requests, ...(queued ? { queuedRows: queued[i] } : {}) }));
  return { store, last: T0 + (counts.length - 1) * everyMs };
}

describe("MetricStore requests_per_second", () => {
  it("is the increase over the window divided by the span of the observations used", () => {
    // 10 requests a second for two minutes; the window holds the last 7 scrapes (30 s).
    const { store, last } = fed(Array.from({ length: 25 }, (_, i) => 1000 + 50 * i));
    expect(store.value("pod-a", "requests_per_second", last)).toEqual({ value: 10, windowSeconds: 30, timestamp: last });
    // Asked between scrapes: the oldest observation left the window, the newest is still fresh.
    expect(store.value("pod-a", "requests_per_second", last + 2000)).toEqual({ value: 10, windowSeconds: 25, timestamp: last });
  });

  it("reads an idle pod as 0: a measured 0, not a missing value", () => {
    const { store, last } = fed([500, 500, 500]);
    expect(store.value("pod-a", "requests_per_second", last)).toEqual({ value: 0, windowSeconds: 10, timestamp: last });
  });

  it("counts only the window: a burst before it does not count", () => {
    const { store, last } = fed([0, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_010], { everyMs: 5000 });
    // The burst was between T0 and T0+5 s; the window of the last (T0+40 s) starts at T0+10 s.
    expect(store.value("pod-a", "requests_per_second", last)?.value).toBeCloseTo(10 / 30);
  });

  it("takes a counter that went down as a restarted server counting from 0 again", () => {
    // +10, +10, reset (the server counted 5 since), +10: 35 requests in 20 s.
    const { store, last } = fed([100, 110, 120, 5, 15]);
    expect(store.value("pod-a", "requests_per_second", last)).toEqual({ value: 35 / 20, windowSeconds: 20, timestamp: last });
  });

  it("follows a pod whose container restarted: 0, then growing again", () => {
    const { store, last } = fed([1000, 1010, 0, 10, 20]);
    expect(store.value("pod-a", "requests_per_second", last)?.value).toBeCloseTo((10 + 0 + 10 + 10) / 20);
  });

  it("has no value from a single observation", () => {
    const { store, last } = fed([42]);
    expect(store.value("pod-a", "requests_per_second", last)).toBeUndefined();
  });

  it("has no value when the newest observation is stale (a pod that stopped answering)", () => {
    const { store, last } = fed([0, 50, 100]);
    expect(store.value("pod-a", "requests_per_second", last + STALE)).toBeDefined();
    expect(store.value("pod-a", "requests_per_second", last + STALE + 1)).toBeUndefined();
    expect(store.value("pod-a", "queued_rows", last + STALE + 1)).toBeUndefined();
  });

  it("has no value when fewer than two observations are left in the window", () => {
    const store = new MetricStore({ windowMs: WINDOW, staleMs: 60_000 });
    store.record("pod-a", { at: T0, requests: 0 });
    store.record("pod-a", { at: T0 + 20_000, requests: 100 });
    expect(store.value("pod-a", "requests_per_second", T0 + 20_000)?.value).toBe(5);
    expect(store.value("pod-a", "requests_per_second", T0 + 30_001)).toBeUndefined();
  });

  it("starts a pod's history again when the clock stepped back", () => {
    const store = new MetricStore({ windowMs: WINDOW, staleMs: STALE });
    store.record("pod-a", { at: T0 + 10_000, requests: 0 });
    store.record("pod-a", { at: T0 + 15_000, requests: 50 });
    store.record("pod-a", { at: T0 + 5000, requests: 60 });
    expect(store.value("pod-a", "requests_per_second", T0 + 5000)).toBeUndefined();
    store.record("pod-a", { at: T0 + 10_000, requests: 110 });
    expect(store.value("pod-a", "requests_per_second", T0 + 10_000)?.value).toBe(10);
  });

  it("keeps no more observations than the window holds", () => {
    const store = new MetricStore({ windowMs: WINDOW, staleMs: STALE });
    for (let i = 0; i < 10_000; i++) store.record("pod-a", { at: T0 + i * 1000, requests: i });
    const kept = (store as unknown as { pods: Map<string, Observation[]> }).pods.get("pod-a")!;
    expect(kept.length).toBe(31);
    expect(store.value("pod-a", "requests_per_second", T0 + 9_999_000)).toEqual({ value: 1, windowSeconds: 30, timestamp: T0 + 9_999_000 });
  });
});

describe("MetricStore queued_rows", () => {
  it("is the newest observation's gauge, with no window", () => {
    const { store, last } = fed([0, 5, 10], { queued: [3, 8, 2] });
    expect(store.value("pod-a", "queued_rows", last + 1000)).toEqual({ value: 2, windowSeconds: 0, timestamp: last });
  });

  it("is served from a single observation", () => {
    const { store, last } = fed([0], { queued: [4] });
    expect(store.value("pod-a", "queued_rows", last)).toEqual({ value: 4, windowSeconds: 0, timestamp: last });
  });

  it("has no value when the server does not export it", () => {
    const { store, last } = fed([0, 5]);
    expect(store.value("pod-a", "queued_rows", last)).toBeUndefined();
    expect(store.value("pod-a", "requests_per_second", last)).toBeDefined();
  });
});

describe("MetricStore pods", () => {
  it("has no value for a pod it never saw", () => {
    const { store, last } = fed([0, 5]);
    expect(store.value("pod-b", "requests_per_second", last)).toBeUndefined();
  });

  it("forgets one pod, or all but those retained", () => {
    const store = new MetricStore({ windowMs: WINDOW, staleMs: STALE });
    for (const uid of ["a", "b", "c"]) {
      store.record(uid, { at: T0, requests: 0, queuedRows: 1 });
      store.record(uid, { at: T0 + 5000, requests: 5, queuedRows: 1 });
    }
    const has = (uid: string) => store.value(uid, "queued_rows", T0 + 5000) !== undefined;
    store.forget("a");
    expect(["a", "b", "c"].map(has)).toEqual([false, true, true]);
    store.retain(new Set(["c", "d"]));
    expect(["a", "b", "c"].map(has)).toEqual([false, false, true]);
    expect(store.value("c", "requests_per_second", T0 + 5000)?.value).toBe(1);
  });
});
