import * as ort from "onnxruntime-node";
import type { LoadedModel } from "./bundle.js";
import type { RunTarget, Scheduler } from "./scheduler.js";

/**
 * Runs one model. Requests go through the process's scheduler, which slices big batches,
 * coalesces small requests (micro-batching) and runs one slice at a time with I/O in
 * between. Each row's answer does not depend on its batch (one intra-op thread, no
 * batch-wide quantization), so sliced and coalesced runs equal unbatched ones exactly.
 */

export interface RunnerOptions {
  scheduler: Scheduler;
  onRun?: (model: string, rows: number, seconds: number) => void;
}

export class ModelRunner implements RunTarget {
  readonly name: string;

  constructor(
    readonly model: LoadedModel,
    readonly width: number,
    private readonly options: RunnerOptions,
  ) {
    this.name = model.name;
  }

  /** Predictions for n rows laid out one after another in `rows` (n × window values); dropped once `abandoned()`. */
  predict(rows: Float32Array, n: number, abandoned?: () => boolean): Promise<Float32Array> {
    return this.options.scheduler.submit(this, rows, n, abandoned);
  }

  async run(rows: Float32Array, n: number): Promise<Float32Array> {
    const { session, entry } = this.model;
    const started = performance.now();
    const result = await session.run({ [entry.inputs[0]!.name]: new ort.Tensor("float32", rows, [n, this.width]) });
    this.options.onRun?.(this.model.name, n, (performance.now() - started) / 1000);
    return result[entry.outputs[0]!.name]!.data as Float32Array;
  }
}
