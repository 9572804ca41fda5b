import cluster, { type Worker } from "node:cluster";
import { LRUCache } from "lru-cache";

/**
 * Rate-limit counters kept in memory. A single process keeps its own. With WORKERS > 1 the
 * primary keeps them for every worker, which charge them over IPC, so a client's budget is
 * the pod's, not each worker's: otherwise a client whose connections the primary spreads
 * over the workers would get WORKERS times its budget. A worker whose primary does not
 * answer within PRIMARY_TIMEOUT_MS counts in its own buckets instead (as it does when Redis
 * fails), so a slow primary costs a request milliseconds, never a hang.
 */

/** [used after the call, ms until the window resets, 1 if charged else 0] */
export type Count = [used: number, resetMs: number, charged: number];

/** Charge `cost` to `key`'s window if it fits under `max`; undefined when the store did not answer. */
export type RemoteCharge = (key: string, cost: number, max: number) => Promise<Count | undefined>;

const CLIENTS = 100_000;
// The primary does little else than pass connections and this: it answers in well under a
// millisecond, and in a few on a saturated machine.
export const PRIMARY_TIMEOUT_MS = 100;

/** Fixed windows of `windowMs` for up to 100k clients (the least recently charged are forgotten). */
export class Buckets {
  private readonly entries = new LRUCache<string, { used: number; resetAt: number }>({ max: CLIENTS });

  constructor(private readonly windowMs: number) {}

  /** A charge that does not fit spends nothing. */
  charge(key: string, cost: number, max: number): Count {
    const now = Date.now();
    let entry = this.entries.get(key);
    if (!entry || entry.resetAt <= now) {
      entry = { used: 0, resetAt: now + this.windowMs };
      this.entries.set(key, entry);
    }
    if (entry.used + cost > max) return [entry.used, entry.resetAt - now, 0];
    entry.used += cost;
    return [entry.used, entry.resetAt - now, 1];
  }
}

/** Worker → primary. */
type ChargeMessage = { wavelet: "charge"; id: number; key: string; cost: number; max: number };
/** Primary → worker. */
type ChargedMessage = { wavelet: "charged"; id: number; count: Count };

/** The primary's side: one set of buckets for every worker's charges. */
export function holdBuckets(windowMs: number): void {
  const buckets = new Buckets(windowMs);
  cluster.on("message", (worker: Worker, message: ChargeMessage) => {
    if (message?.wavelet !== "charge") return;
    const reply: ChargedMessage = { wavelet: "charged", id: message.id, count: buckets.charge(message.key, message.cost, message.max) };
    try {
      worker.send(reply);
    } catch {
      // gone: nobody waits for the answer
    }
  });
}

/** A worker's side: charge the primary's buckets. */
export function primaryBuckets(timeoutMs = PRIMARY_TIMEOUT_MS): RemoteCharge {
  const waiting = new Map<number, (count: Count | undefined) => void>();
  let lastId = 0;
  process.on("message", (message: ChargedMessage) => {
    if (message?.wavelet === "charged") waiting.get(message.id)?.(message.count);
  });
  return (key, cost, max) =>
    new Promise((resolve) => {
      const id = ++lastId;
      // Given up only after one more poll phase: when this worker's event loop was busy past
      // the deadline, an answer already waiting in the channel still counts as in time.
      const timer = setTimeout(() => setImmediate(done, undefined), timeoutMs);
      function done(count: Count | undefined) {
        if (!waiting.delete(id)) return;
        clearTimeout(timer);
        resolve(count);
      }
      waiting.set(id, done);
      const message: ChargeMessage = { wavelet: "charge", id, key, cost, max };
      try {
        process.send!(message);
      } catch {
        done(undefined); // the channel is closed: the primary is gone
      }
    });
}
