import * as ort from "onnxruntime-node";
import type { LoadedModel } from "./bundle.js";

/**
 * Runs one model, coalescing concurrent small requests into one ONNX run (micro-batching).
 *
 * onnxruntime-node runs a session synchronously on the event loop, so while one batch runs
 * the next requests wait in the socket buffers; when it ends they are parsed in one loop
 * turn and queue here together. Each row's answer does not depend on its batch (one
 * intra-op thread, no batch-wide quantization), so batched equals unbatched exactly.
 */

export interface RunnerOptions {
  microBatch: boolean;
  maxBatch: number;
  maxWaitMs: number;
  onRun?: (model: string, rows: number, seconds: number) => void;
}

interface Pending {
  rows: Float32Array;
  n: number;
  resolve: (values: Float32Array) => void;
  reject: (error: unknown) => void;
}

export class ModelRunner {
  private queue: Pending[] = [];
  private queuedRows = 0;
  private running = false;
  private scheduled = false;

  constructor(
    readonly model: LoadedModel,
    private readonly window: number,
    private readonly options: RunnerOptions,
  ) {}

  /** Predictions for n rows laid out one after another in `rows` (n × window values). */
  predict(rows: Float32Array, n: number): Promise<Float32Array> {
    if (!this.options.microBatch || n >= this.options.maxBatch) return this.run(rows, n);
    return new Promise((resolve, reject) => {
      this.queue.push({ rows, n, resolve, reject });
      this.queuedRows += n;
      if (this.queuedRows >= this.options.maxBatch) this.flush();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      this.flush();
    };
    if (this.options.maxWaitMs > 0) setTimeout(go, this.options.maxWaitMs);
    else setImmediate(go);
  }

  private flush(): void {
    if (this.running || this.queue.length === 0) return;
    const batch: Pending[] = [];
    let n = 0;
    while (this.queue.length && (n === 0 || n + this.queue[0]!.n <= this.options.maxBatch)) {
      const item = this.queue.shift()!;
      batch.push(item);
      n += item.n;
    }
    this.queuedRows -= n;
    const input = batch.length === 1 ? batch[0]!.rows : concat(batch, n * this.window);
    this.running = true;
    this.run(input, n).then(
      (out) => {
        let offset = 0;
        for (const item of batch) {
          item.resolve(out.subarray(offset, offset + item.n));
          offset += item.n;
        }
      },
      (error: unknown) => batch.forEach((item) => item.reject(error)),
    ).finally(() => {
      this.running = false;
      // Give the event loop one turn so requests that arrived during the run join the next batch.
      if (this.queue.length) this.schedule();
    });
  }

  private async run(rows: Float32Array, n: number): Promise<Float32Array> {
    const { session, entry } = this.model;
    const started = performance.now();
    const result = await session.run({ [entry.inputs[0]!.name]: new ort.Tensor("float32", rows, [n, this.window]) });
    this.options.onRun?.(this.model.name, n, (performance.now() - started) / 1000);
    return result[entry.outputs[0]!.name]!.data as Float32Array;
  }
}

function concat(batch: Pending[], length: number): Float32Array {
  const out = new Float32Array(length);
  let offset = 0;
  for (const item of batch) {
    out.set(item.rows, offset);
    offset += item.rows.length;
  }
  return out;
}
