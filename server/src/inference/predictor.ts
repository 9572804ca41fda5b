import { featureRows, featuresFromPrices } from "../features/wavelet.js";
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

/** Sliding windows over a series of per-day feature values, one row per window. */
export function rowsFromSeries(bundle: Bundle, series: readonly number[]): Rows {
  const w = bundle.window;
  const n = series.length - w + 1;
  const data = new Float64Array(n * w);
  for (let i = 0; i < n; i++) data.set(series.slice(i, i + w), i * w);
  return { data, n };
}

/** The feature vector of the last day of `prices`. */
export function rowFromPrices(bundle: Bundle, prices: readonly number[]): Rows {
  return { data: Float64Array.from(featuresFromPrices(prices, bundle.features)), n: 1 };
}

/** One feature vector for every day of `prices` with enough history. */
export function rowsFromPrices(bundle: Bundle, prices: readonly number[]): Rows {
  const rows = featureRows(prices, bundle.features);
  const data = new Float64Array(rows.length * bundle.window);
  rows.forEach((r, i) => data.set(r, i * bundle.window));
  return { data, n: rows.length };
}

export class Predictor {
  constructor(private readonly metrics: Metrics) {}

  async predict(serving: Serving, model: ModelType, rows: Rows, withInterval: boolean): Promise<Predictions> {
    const runner = await serving.runner(model);
    const out = await runner.predict(Float32Array.from(rows.data), rows.n);
    const values = Float64Array.from(out);
    this.observe(serving.bundle, model, values);
    return withInterval ? { values, interval: this.intervals(serving, model, rows, values) } : { values };
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
