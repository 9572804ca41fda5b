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

/** Worker → primary: charges, [id, key, cost, max] each. */
type ChargeMessage = { wavelet: "charge"; charges: [id: number, key: string, cost: number, max: number][] };
/** Primary → worker: their counts. */
type ChargedMessage = { wavelet: "charged"; counts: [id: number, count: Count][] };

/** The primary's side: one set of buckets for every worker's charges. */
export function holdBuckets(windowMs: number): void {
  const buckets = new Buckets(windowMs);
  cluster.on("message", (worker: Worker, message: ChargeMessage) => {
    if (message?.wavelet !== "charge") return;
    const reply: ChargedMessage = { wavelet: "charged", counts: message.charges.map(([id, key, cost, max]) => [id, buckets.charge(key, cost, max)]) };
    try {
      worker.send(reply);
    } catch {
      // gone: nobody waits for the answer
    }
  });
}

/**
 * A worker's side: charge the primary's buckets. One message at a time is on its way: the
 * charges made meanwhile go together when its answer comes (or when it is given up), so
 * under load one message carries many requests' charges, and each message costs both
 * processes a system call and a wake-up. An idle worker's charge goes at once.
 */
export function primaryBuckets(timeoutMs = PRIMARY_TIMEOUT_MS): RemoteCharge {
  const waiting = new Map<number, (count: Count | undefined) => void>();
  let batch: ChargeMessage["charges"] = [];
  let lastId = 0;
  /** When the message on its way was sent; 0 when none is. */
  let sentAt = 0;
  const send = () => {
    if (!batch.length || (sentAt && performance.now() - sentAt < timeoutMs)) return;
    const charges = batch;
    batch = [];
    sentAt = performance.now();
    try {
      process.send!({ wavelet: "charge", charges } satisfies ChargeMessage);
    } catch {
      sentAt = 0;
      for (const [id] of charges) waiting.get(id)?.(undefined); // the channel is closed: the primary is gone
    }
  };
  process.on("message", (message: ChargedMessage) => {
    if (message?.wavelet !== "charged") return;
    sentAt = 0;
    for (const [id, count] of message.counts) waiting.get(id)?.(count);
    send();
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
        // A message given up no longer holds back the next.
        if (!count) send();
      }
      waiting.set(id, done);
      batch.push([id, key, cost, max]);
      send();
    });
}
