import { AppError } from "../plugins/errors.js";

/**
 * One queue of model runs for the whole process, shared by every model's runner.
 *
 * onnxruntime-node runs a session synchronously on the event loop: a 1,000-row ensemble
 * batch holds it for tens of milliseconds, and 64 of them read in one poll used to run back
 * to back while every other socket waited. Here every request is a task; each turn runs at
 * most `maxRows` rows of one model and then yields to I/O (setImmediate), so health checks,
 * new requests and stream writes get in between runs. A turn serves first the tasks that
 * have had nothing yet (by arrival), then the ones part-way through, round-robin: a small
 * request that arrives behind big batches waits for one run, not for all of them. Small
 * requests of the same model fill the rest of a turn's run (micro-batching). Rows are
 * independent (one intra-op thread), so a row's answer never depends on how it was sliced.
 */

export interface SchedulerOptions {
  /** MICRO_BATCH: whether one run may serve several requests. */
  coalesce: boolean;
  /** MICRO_BATCH_MAX: rows in one run at most (a slice of a big request, or several small ones). */
  maxRows: number;
  /** MICRO_BATCH_WAIT_MS: how long an idle queue waits for company before its first run. */
  waitMs: number;
  /** MAX_QUEUED_ROWS: rows waiting at most; beyond it a request is refused with 503 overloaded. */
  maxQueuedRows: number;
  /** Time from a request's arrival in the queue to its first run. */
  onWait?: (model: string, seconds: number) => void;
}

/** What the scheduler runs: one model's session (ModelRunner). */
export interface RunTarget {
  readonly name: string;
  /** The rows' width (feature window). */
  readonly width: number;
  run(rows: Float32Array, n: number): Promise<Float32Array>;
}

interface Task {
  target: RunTarget;
  rows: Float32Array;
  n: number;
  /** Rows handed to a run so far. */
  taken: number;
  out: Float32Array;
  enqueuedAt: number;
  /** True once the request's client has gone away. */
  abandoned: (() => boolean) | undefined;
  resolve: (values: Float32Array) => void;
  reject: (error: unknown) => void;
  /** Set when the task leaves the queue (done, failed or abandoned). */
  gone: boolean;
}

/** The rejection of a task whose request went away; nobody is left to see it (499, "client closed request"). */
export class AbandonedError extends AppError {
  constructor(message: string) {
    super(499, "client_closed_request", message);
  }
}

export class Scheduler {
  /** Tasks that have not been in a run yet, by arrival. */
  private fresh: Task[] = [];
  /** Tasks part-way through, round-robin. */
  private started: Task[] = [];
  private queued = 0;
  private busy = false;
  private timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /** Seconds per row, smoothed over recent runs: what Retry-After is estimated from. */
  private secondsPerRow = 0;

  constructor(private readonly options: SchedulerOptions) {}

  /** Rows waiting to be run, across every model. */
  get queuedRows(): number {
    return this.queued;
  }

  /**
   * Predictions for n rows of `target`, laid out one after another in `rows`. Once
   * `abandoned()` turns true the rows not yet run are dropped when their turn comes (a
   * plain flag, polled: an AbortSignal per request cost more than the rest of the queue).
   */
  submit(target: RunTarget, rows: Float32Array, n: number, abandoned?: () => boolean): Promise<Float32Array> {
    if (abandoned?.()) return Promise.reject(new AbandonedError("request abandoned before it was queued"));
    if (this.queued + n > this.options.maxQueuedRows) throw this.overloaded(n);
    return new Promise((resolve, reject) => {
      const task: Task = {
        target, rows, n, taken: 0, out: new Float32Array(n), enqueuedAt: performance.now(), abandoned, resolve, reject, gone: false,
      };
      this.fresh.push(task);
      this.queued += n;
      this.wake();
    });
  }

  private overloaded(n: number): AppError {
    const seconds = Math.min(60, Math.max(1, Math.ceil((this.queued + n) * this.secondsPerRow)));
    return new AppError(
      503,
      "overloaded",
      `the server has ${this.queued} rows queued and takes at most ${this.options.maxQueuedRows}; retry later`,
      undefined,
      undefined,
      { "retry-after": String(seconds) },
    );
  }

  private wake(): void {
    if (this.busy || this.timer) return;
    const go = () => {
      this.timer = undefined;
      void this.turn();
    };
    // Waiting only makes sense while a run could still take more rows.
    const wait = this.options.coalesce && this.queued < this.options.maxRows ? this.options.waitMs : 0;
    this.timer = wait > 0 ? setTimeout(go, wait) : setImmediate(go);
  }

  /** Remove a task from the queue for good, releasing its rows not yet taken. */
  private drop(task: Task, error?: unknown): void {
    if (task.gone) return;
    task.gone = true;
    this.queued -= task.n - task.taken;
    if (error !== undefined) task.reject(error);
  }

  /** The slices of the next run: the first waiting task's, then (coalescing) other tasks of its model. */
  private pick(): { task: Task; from: number; count: number }[] {
    const slices: { task: Task; from: number; count: number }[] = [];
    let room = this.options.maxRows;
    let target: RunTarget | undefined;
    const take = (queue: Task[]): Task[] => {
      const keep: Task[] = [];
      for (const task of queue) {
        if (task.abandoned?.()) this.drop(task, new AbandonedError("request abandoned"));
        if (task.gone) continue;
        if (room === 0 || (target && task.target !== target) || (target && !this.options.coalesce)) {
          keep.push(task);
          continue;
        }
        target ??= task.target;
        if (task.taken === 0) this.options.onWait?.(task.target.name, (performance.now() - task.enqueuedAt) / 1000);
        const count = Math.min(room, task.n - task.taken);
        slices.push({ task, from: task.taken, count });
        task.taken += count;
        room -= count;
        // Part-way through: to the back of the round-robin.
        if (task.taken < task.n) this.started.push(task);
      }
      return keep;
    };
    const started = this.started;
    this.started = [];
    this.fresh = take(this.fresh);
    this.started = [...take(started), ...this.started];
    return slices;
  }

  private async turn(): Promise<void> {
    const slices = this.pick();
    if (!slices.length) return;
    this.busy = true;
    const target = slices[0]!.task.target;
    const n = slices.reduce((sum, s) => sum + s.count, 0);
    this.queued -= n;
    const w = target.width;
    const whole = slices.length === 1 && slices[0]!.count === slices[0]!.task.n;
    // Slices (and coalesced requests) are copied into one array: a few kB, next to a run of ~1 ms.
    const input = whole ? slices[0]!.task.rows : concat(slices.map((s) => s.task.rows.subarray(s.from * w, (s.from + s.count) * w)), n * w);
    const started = performance.now();
    try {
      const out = await target.run(input, n);
      const perRow = (performance.now() - started) / 1000 / n;
      this.secondsPerRow = this.secondsPerRow === 0 ? perRow : 0.9 * this.secondsPerRow + 0.1 * perRow;
      let offset = 0;
      for (const { task, from, count } of slices) {
        task.out.set(out.subarray(offset, offset + count), from);
        offset += count;
        // Runs are one at a time, so the slice that takes a task's last rows finishes it.
        if (!task.gone && task.taken === task.n) {
          this.drop(task);
          task.resolve(task.out);
        }
      }
    } catch (error) {
      for (const { task } of slices) this.drop(task, error);
    } finally {
      this.busy = false;
      // Yield to I/O before the next run, so no socket waits for more than one run.
      if (this.fresh.length || this.started.length) this.wake();
    }
  }
}

function concat(parts: Float32Array[], length: number): Float32Array {
  const out = new Float32Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
