import { denoiseRange, featuresFromPrices, perDaySeries } from "../features/wavelet.js";
import { AppError } from "../plugins/errors.js";
import type { Metrics } from "../plugins/metrics.js";
import type { Bundle, ModelType } from "./bundle.js";
import type { Serving } from "./registry.js";

/**
 * From validated request values to predictions: feature rows (sent, or computed from
 * prices), the model run, conformal intervals and the prediction metrics.
 */

export interface Rows {
  data: Float64Array; // n × window feature values, row after row
  n: number;
}

export interface Predictions {
  values: Float64Array;
  interval?: { level: number; lower: Float64Array; upper: Float64Array };
}

// Lengths, ranges and history were checked by the request schemas, which are built for the
// bundle's feature shape (and a reload to another shape is refused).

export function rowsFromVectors(bundle: Bundle, vectors: readonly (readonly number[])[]): Rows {
  const w = bundle.window;
  const data = new Float64Array(vectors.length * w);
  vectors.forEach((v, i) => data.set(v, i * w));
  return { data, n: vectors.length };
}

/** The feature vector of the last day of `prices`. */
export function rowFromPrices(bundle: Bundle, prices: readonly number[]): Rows {
  return { data: Float64Array.from(featuresFromPrices(prices, bundle.features)), n: 1 };
}

/**
 * The feature rows of a stream, built a chunk at a time so a long series never blocks the
 * event loop for long nor holds every row at once. Row i stands for a window of
 * `windowSize` consecutive per-day feature values; the model sees its last `bundle.window`.
 */
export interface RowSource {
  n: number;
  rows(start: number, count: number): Rows;
}

/** Windows over a series of per-day feature values: window i is series[i .. i + windowSize - 1]. */
export function seriesRows(bundle: Bundle, series: readonly number[], windowSize: number): RowSource {
  const w = bundle.window;
  const skip = windowSize - w;
  return {
    n: Math.max(0, series.length - windowSize + 1),
    rows(start, count) {
      const data = new Float64Array(count * w);
      for (let i = 0; i < count; i++) {
        for (let j = 0; j < w; j++) data[i * w + j] = series[start + skip + i + j]!;
      }
      return { data, n: count };
    },
  };
}

/**
 * One row per day of `prices` with `windowSize` days of features before it (the first is
 * day trailing + windowSize - 1); each day's denoised value is computed once, when a chunk
 * first needs it.
 */
export function priceRows(bundle: Bundle, prices: readonly number[], windowSize: number): RowSource {
  const p = bundle.features;
  const w = bundle.window;
  const first = p.trailing + windowSize - 1;
  const u = perDaySeries(prices, p);
  const x = new Float64Array(u.length).fill(Number.NaN);
  let computed = 0; // x is filled for days before this one
  return {
    n: Math.max(0, prices.length - first),
    rows(start, count) {
      const last = first + start + count - 1;
      denoiseRange(u, x, Math.max(computed, first + start - w + 1), last + 1, p);
      computed = last + 1;
      const data = new Float64Array(count * w);
      for (let i = 0; i < count; i++) data.set(x.subarray(first + start + i - w + 1, first + start + i + 1), i * w);
      return { data, n: count };
    },
  };
}

/**
 * The largest |feature| a bundle's training could have produced. The manifest records no
 * feature range, but it records the range of the training targets, and those are built from
 * the same daily percent log returns the features denoise: a return bundle's feature (a
 * denoised return) beyond the largest |target| return, or a volatility bundle's (a denoised
 * squared return) beyond the square of the largest realized volatility, is outside anything
 * training saw.
 */
export function inputBound(bundle: Bundle): number {
  const { min, max } = bundle.manifest.target_range;
  const largest = Math.max(Math.abs(min), Math.abs(max));
  return bundle.features.series === "squared_return_pct" ? largest * largest : largest;
}

export class Predictor {
  constructor(private readonly metrics: Metrics) {}

  /** `abandoned()` turns true when the client goes away: the rows not yet run are then dropped. */
  async predict(serving: Serving, model: ModelType, rows: Rows, withInterval: boolean, abandoned?: () => boolean): Promise<Predictions> {
    const runner = await serving.runner(model);
    this.observeInputs(serving.bundle, model, rows);
    const out = await runner.predict(Float32Array.from(rows.data), rows.n, abandoned);
    const values = Float64Array.from(out);
    this.observe(serving.bundle, model, values);
    return withInterval ? { values, interval: this.intervals(serving, model, rows, values) } : { values };
  }

  /** Input drift: feature rows with a value beyond the bundle's bound (inputBound). Cached answers count too. */
  observeInputs(bundle: Bundle, model: ModelType, rows: Rows): void {
    const bound = inputBound(bundle);
    const w = bundle.window;
    let outside = 0;
    for (let i = 0; i < rows.n; i++) {
      for (let j = i * w; j < (i + 1) * w; j++) {
        if (Math.abs(rows.data[j]!) > bound) {
          outside++;
          break;
        }
      }
    }
    if (outside) this.metrics.inputsOutOfRange.inc({ model, reason: "beyond_training" }, outside);
  }

  /** Values already known (from the cache) still count in the prediction metrics. */
  observe(bundle: Bundle, model: ModelType, values: Float64Array): void {
    const { min, max } = bundle.manifest.target_range;
    const histogram = this.metrics.predictions.labels(model);
    let outside = 0;
    for (const v of values) {
      if (!Number.isFinite(v)) {
        throw new AppError(422, "non_finite_prediction", `model ${model} produced a non-finite prediction for these inputs`);
      }
      histogram.observe(v);
      if (v < min || v > max) outside++;
    }
    if (outside) this.metrics.outOfRange.inc({ model }, outside);
  }

  /** prediction ± quantile × scale, the scale from the row or the prediction (DESIGN §3). */
  intervals(serving: Serving, model: ModelType, rows: Rows, values: Float64Array): NonNullable<Predictions["interval"]> {
    const bundle = serving.bundle;
    // From the manifest: a cached answer (say from another replica, through Redis) may need
    // an interval before this replica has loaded the model.
    const { calibration } = bundle.entry(model);
    const w = bundle.window;
    const clampAtZero = bundle.manifest.conformal.lower_bound_zero;
    const lower = new Float64Array(rows.n);
    const upper = new Float64Array(rows.n);
    for (let i = 0; i < rows.n; i++) {
      let raw: number;
      if (calibration.scale === "rms_features") {
        let sum = 0;
        for (let j = i * w; j < (i + 1) * w; j++) sum += rows.data[j]! * rows.data[j]!;
        raw = Math.sqrt(sum / w);
      } else {
        raw = Math.abs(values[i]!);
      }
      const half = calibration.quantile * Math.max(raw, calibration.scale_floor);
      lower[i] = clampAtZero ? Math.max(values[i]! - half, 0) : values[i]! - half;
      upper[i] = values[i]! + half;
    }
    return { level: calibration.level, lower, upper };
  }
}
