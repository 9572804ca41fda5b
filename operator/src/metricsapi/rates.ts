import { QUEUED_ROWS, type ServerMetric } from "../api/metrics.js";

/**
 * The scraped observations of each server pod (by uid: a pod recreated under the same name
 * starts afresh) and the values the custom metrics API serves from them. A value is only ever
 * what was observed: a pod without recent observations has none, so an HPA holds its count
 * rather than scaling in on a 0 that nobody measured.
 */

export interface Observation {
  /** When the scrape was sent (ms). */
  at: number;
  /** The prediction requests counter (exposition.ts). */
  requests: number;
  queuedRows?: number;
}

export interface MetricValue {
  value: number;
  /** The span the value covers: the rate's observations, 0 for a gauge. */
  windowSeconds: number;
  /** The newest observation's time (ms). */
  timestamp: number;
}

export interface StoreOptions {
  /** requests_per_second is the increase over the observations of this last span. */
  windowMs: number;
  /** A pod whose newest observation is older than this has no value. */
  staleMs: number;
}

export class MetricStore {
  private readonly pods = new Map<string, Observation[]>();

  constructor(private readonly options: StoreOptions) {}

  record(uid: string, observation: Observation): void {
    const kept = this.pods.get(uid) ?? [];
    // A clock stepped back would make spans negative: the pod's history starts again.
    const history = kept.length && observation.at <= kept.at(-1)!.at ? [] : kept;
    history.push(observation);
    // Any later `now` uses no observation older than the window before this one.
    const from = observation.at - this.options.windowMs;
    history.splice(0, history.findIndex((o) => o.at >= from));
    this.pods.set(uid, history);
  }

  forget(uid: string): void {
    this.pods.delete(uid);
  }

  /** Drops every pod not in `uids` (deleted pods, or models that no longer scale on these metrics). */
  retain(uids: ReadonlySet<string>): void {
    for (const uid of this.pods.keys()) if (!uids.has(uid)) this.pods.delete(uid);
  }

  value(uid: string, metric: ServerMetric, now: number): MetricValue | undefined {
    const history = this.pods.get(uid);
    const newest = history?.at(-1);
    if (!history || !newest || now - newest.at > this.options.staleMs) return undefined;
    if (metric === QUEUED_ROWS) return newest.queuedRows === undefined ? undefined : { value: newest.queuedRows, windowSeconds: 0, timestamp: newest.at };
    const used = history.filter((o) => o.at >= now - this.options.windowMs);
    if (used.length < 2) return undefined;
    // Prometheus rate() without extrapolation: a counter lower than before is a restarted
    // server, which has counted its new value since the restart.
    let increase = 0;
    for (let i = 1; i < used.length; i++) {
      const [before, after] = [used[i - 1]!.requests, used[i]!.requests];
      increase += after >= before ? after - before : after;
    }
    const spanMs = newest.at - used[0]!.at;
    return { value: increase / (spanMs / 1000), windowSeconds: Math.round(spanMs / 1000), timestamp: newest.at };
  }
}
