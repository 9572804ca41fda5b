import type { Clock } from "./clock.js";

/**
 * A keyed work queue in the manner of client-go's: a key waits at most once however often
 * it is added, is handed to one worker at a time (an add while it is being processed
 * queues it again for afterwards), and failures come back after an exponential backoff.
 *
 * Two priorities, as controller-runtime's priority queue has: a "low" key waits until no
 * normal one does. A model seen for the first time (created, or listed at start) is low: its
 * first pass creates every child (about 250 ms here, a Service's ClusterIP allocation the
 * most of it), and a burst of them must not hold back the short passes that report pods
 * Ready or switch a rollout of models already running. Added again as normal, a low key
 * moves up.
 */

export type Priority = "normal" | "low";

export interface QueueOptions {
  baseDelayMs: number;
  maxDelayMs: number;
}

export class WorkQueue {
  private readonly queues: Record<Priority, string[]> = { normal: [], low: [] };
  /** Keys waiting (queued, or to be queued once processed), with their priority. */
  private readonly dirty = new Map<string, Priority>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; cancel(): void }>();
  private readonly waiting: ((key: string | undefined) => void)[] = [];
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly options: QueueOptions = { baseDelayMs: 100, maxDelayMs: 60_000 },
  ) {}

  get length(): number {
    return this.queues.normal.length + this.queues.low.length;
  }

  add(key: string, priority: Priority = "normal"): void {
    if (this.stopped) return;
    const waits = this.dirty.get(key);
    if (waits !== undefined) {
      if (waits === "low" && priority === "normal") this.promote(key);
      return;
    }
    this.dirty.set(key, priority);
    if (this.processing.has(key)) return;
    const waiter = this.waiting.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queues[priority].push(key);
    }
  }

  private promote(key: string): void {
    this.dirty.set(key, "normal");
    const at = this.queues.low.indexOf(key);
    // Not queued: being processed, it is queued again (as normal) when done.
    if (at < 0) return;
    this.queues.low.splice(at, 1);
    this.queues.normal.push(key);
  }

  /** Add `key` after `ms`; an earlier pending add for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const timer = this.clock.setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, cancel: timer.cancel });
  }

  /** Add after the key's backoff: base · 2^(failures) up to the maximum. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** n);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to process (undefined once shut down); call done(key) afterwards. */
  get(): Promise<string | undefined> {
    if (this.stopped) return Promise.resolve(undefined);
    const key = this.queues.normal.shift() ?? this.queues.low.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    const priority = this.dirty.get(key);
    if (priority !== undefined) {
      this.dirty.delete(key);
      this.add(key, priority);
    }
  }

  shutDown(): void {
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    for (const waiter of this.waiting.splice(0)) waiter(undefined);
  }
}
