import { statusCode } from "../kube/client.js";
import type { Metrics } from "../metrics.js";
import type { WorkQueue } from "./queue.js";

/**
 * Workers that take keys off the queue and reconcile them. A key is never reconciled by
 * two workers at once (the queue guarantees it); an error requeues the key with backoff,
 * a success forgets its failures and honours the reconcile's requested requeue.
 */

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export type ReconcileFn = (key: string) => Promise<ReconcileResult>;

type Log = { error: (msg: string, extra?: unknown) => void; info: (msg: string, extra?: unknown) => void };

export class Controller {
  private running: Promise<void>[] = [];

  constructor(
    private readonly queue: WorkQueue,
    private readonly reconcile: ReconcileFn,
    private readonly metrics: Metrics,
    private readonly log: Log,
  ) {}

  start(workers: number): void {
    for (let i = 0; i < workers; i++) this.running.push(this.work());
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.queueDepth.set(this.queue.length);
      const end = this.metrics.reconcileSeconds.startTimer();
      try {
        const result = await this.reconcile(key);
        this.queue.forget(key);
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        this.metrics.reconciles.inc({ result: "ok" });
      } catch (error) {
        const delay = this.queue.addRateLimited(key);
        // 409: the pass decided from a version someone has since changed; the next one reads it.
        const conflict = statusCode(error) === 409;
        this.metrics.reconciles.inc({ result: conflict ? "conflict" : "error" });
        if (conflict) this.log.info(`reconcile ${key}: conflict, retrying in ${delay} ms`);
        else this.log.error(`reconcile ${key} failed; retrying in ${delay} ms`, { err: describe(error) });
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  /** Stop taking keys; resolves when the reconciles in flight have finished. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.running);
  }
}

export function describe(error: unknown): string {
  const e = error as { code?: number; body?: unknown; message?: string };
  const body = typeof e?.body === "string" ? e.body : e?.body ? JSON.stringify(e.body) : "";
  return `${e?.message ?? String(error)}${e?.code ? ` (HTTP ${e.code})` : ""}${body ? `: ${body.slice(0, 300)}` : ""}`;
}
