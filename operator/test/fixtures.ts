import { type WaveletModel, waveletModel } from "../src/api/waveletmodel.js";
import type { Clock } from "../src/controller/clock.js";
import type { ColorState } from "../src/reconcile/bluegreen.js";

export const DIGEST_A = `sha256:${"a".repeat(64)}`;
export const DIGEST_B = `sha256:${"b".repeat(64)}`;

/** A WaveletModel as the cache holds it, defaults applied; `spec` overrides the defaults. */
export function model(spec: Record<string, unknown> = {}, extra: Partial<WaveletModel> = {}): WaveletModel {
  return waveletModel.parse({
    apiVersion: "wavelet.dev/v1alpha1",
    kind: "WaveletModel",
    metadata: { name: "spx", namespace: "ns", uid: "uid-1", generation: 1, resourceVersion: "1" },
    spec: { bundle: { builtin: "spx-return-1d", digest: DIGEST_A }, replicas: 3, ...spec },
    ...extra,
  });
}

export function color(hash: string | undefined, replicas: number, ready = replicas): ColorState {
  return { templateHash: hash, specReplicas: replicas, readyReplicas: ready, availableReplicas: ready, rolledOut: ready >= replicas };
}

/** A clock the test moves by hand; timers fire when their time comes. */
export class FakeClock implements Clock {
  private timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  constructor(public time = Date.parse("2026-01-01T00:00:00Z")) {}
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number) {
    const timer = { at: this.time + ms, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }
  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => !t.cancelled && t.at <= this.time).sort((a, b) => a.at - b.at);
    this.timers = this.timers.filter((t) => !due.includes(t));
    for (const t of due) t.fn();
  }
}
