import { DailyChannels, type FeatureParams, featuresFromPrices, type PriceData } from "../features/channels.js";
import { AppError, clip, SHOWN_FIELDS } from "../plugins/errors.js";
import type { Metrics } from "../plugins/metrics.js";
import { type BarsSample, isBarsSample, type NamedValues } from "../schemas/api.js";
import { barColumns, type BarsInput, closesOnly, fieldsOf } from "../schemas/bars.js";
import type { ModelEntry } from "../schemas/manifest.js";
import type { Bundle, ModelType } from "./bundle.js";
import type { Serving } from "./registry.js";

/**
 * From validated request values to predictions: feature rows (sent as vectors or keyed by
 * name, or computed from prices or bars), the model run, conformal intervals and the prediction metrics.
 */

export interface Rows {
  data: Float64Array; // n × width feature values, row after row
  n: number;
}

export interface Predictions {
  values: Float64Array;
  interval?: { level: number; lower: Float64Array; upper: Float64Array };
}

// Lengths, ranges and history were checked by the request schemas, which are built for the
// bundle's feature shape (and a reload to another shape is refused); which names named
// features have is the serving bundle's to say, so they are checked here.

/** Names for a message: at most SHOWN_FIELDS, each clipped, and how many more. */
const listed = (names: readonly string[]) =>
  names.slice(0, SHOWN_FIELDS).map(clip).join(", ") + (names.length > SHOWN_FIELDS ? ` and ${names.length - SHOWN_FIELDS} more` : "");

/** Writes named features into `out` at `offset` in the bundle's vector order; 400 naming what is missing or unknown. */
function placeNamed(bundle: Bundle, values: NamedValues, out: Float64Array, offset: number, field: string): void {
  const index = bundle.index;
  if (!index) {
    throw new AppError(
      400,
      "named_features_unsupported",
      `bundle ${bundle.name} ${bundle.version} computes its features from ${history(bundle.computed!)}: send ${sendable(bundle.computed!)}, or the feature vector of ${bundle.width} numbers ` +
        "(GET /models features.names); features keyed by name are for bundles of named features (imported)",
    );
  }
  const unknown: string[] = [];
  let placed = 0;
  for (const key of Object.keys(values)) {
    const at = index.get(key);
    if (at === undefined) unknown.push(key);
    else {
      out[offset + at] = values[key]!;
      placed++;
    }
  }
  if (unknown.length === 0 && placed === bundle.width) return;
  const missing = bundle.names.filter((name) => !Object.hasOwn(values, name));
  const fields = [
    ...missing.slice(0, SHOWN_FIELDS).map((name) => ({ field: `${field}.${clip(name)}`, message: "missing" })),
    ...unknown.slice(0, SHOWN_FIELDS).map((name) => ({ field: `${field}.${clip(name)}`, message: "not a feature of this bundle" })),
  ];
  const problems = [missing.length ? `missing ${listed(missing)}` : "", unknown.length ? `unknown ${listed(unknown)}` : ""].filter(Boolean);
  throw new AppError(400, "validation_error", `${field}: ${problems.join("; ")} (every one of the ${bundle.width} features of GET /models features.names, exactly once)`, fields);
}

/**
 * Feature rows as sent: vectors, named features, or (a batch's) bars to compute the vector
 * from (`field(i)`: how an error names row i).
 */
export function rowsFromFeatures(bundle: Bundle, samples: readonly (readonly number[] | NamedValues | BarsSample)[], field: (i: number) => string): Rows {
  const width = bundle.width;
  const data = new Float64Array(samples.length * width);
  samples.forEach((v, i) => {
    if (Array.isArray(v)) data.set(v, i * width);
    else if (isBarsSample(v)) data.set(rowFromHistory(bundle, { bars: v.bars }, `${field(i)}.bars`).data, i * width);
    else placeNamed(bundle, v as NamedValues, data, i * width, field(i));
  });
  return { data, n: samples.length };
}

/** The days a request gives to compute features from: closes, or bars. */
export type History = { prices: readonly number[] } | { bars: BarsInput };

/** What a bundle's history is made of, for messages: "prices", "daily bars {high, low, close}"; and the field to send it in. */
const history = (p: FeatureParams) => (closesOnly(p.inputs) ? "prices" : `daily bars {${p.inputs.join(", ")}}`);
const sendable = (p: FeatureParams) => (closesOnly(p.inputs) ? "prices" : "bars");

/** How the bundle computes features from prices; 400 features_required when the caller must send them (named features). */
function computedFeatures(bundle: Bundle): FeatureParams {
  if (bundle.computed) return bundle.computed;
  throw new AppError(
    400,
    "features_required",
    `bundle ${bundle.name} ${bundle.version} takes its ${bundle.width} named features, not prices or bars: send features as a vector of ${bundle.width} numbers ` +
      "or an object keyed by feature name (GET /models lists them, in vector order)",
  );
}

/**
 * A request's history as the bundle computes features from it: closes (a bundle of closes
 * reads those of bars too), or bars of the fields it reads. 400 bars_required when they are
 * not there: prices for a bundle that reads bars, or bars without the open it reads.
 */
function priceData(bundle: Bundle, given: History, field: string): PriceData {
  const p = computedFeatures(bundle);
  const refuse = (what: string) => {
    const message = `bundle ${bundle.name} ${bundle.version} computes its features from ${history(p)} (GET /models features.inputs): ${what}`;
    return new AppError(400, "bars_required", `${field}: ${message}`, [{ field, message }]);
  };
  if ("prices" in given) {
    if (closesOnly(p.inputs)) return given.prices;
    throw refuse(`send bars, each ${p.inputs.join(", ")}, instead of prices`);
  }
  const missing = p.inputs.filter((f) => !fieldsOf(given.bars).includes(f));
  if (missing.length) throw refuse(`these bars have no ${missing.join(", ")}`);
  return closesOnly(p.inputs) ? barColumns(given.bars, ["close"]).close : barColumns(given.bars, p.inputs);
}

/** The feature vector of the last day of a request's history (`field` names it in errors). */
export function rowFromHistory(bundle: Bundle, given: History, field: string): Rows {
  return { data: featuresFromPrices(priceData(bundle, given, field), computedFeatures(bundle)), n: 1 };
}

/** The model's conformal calibration; 422 no_intervals when the model was imported without calibration data. */
export function calibrationOf(bundle: Bundle, model: ModelType): NonNullable<ModelEntry["calibration"]> {
  const { calibration } = bundle.entry(model);
  if (calibration) return calibration;
  throw new AppError(
    422,
    "no_intervals",
    `bundle ${bundle.name} ${bundle.version} was imported without calibration data: no conformal intervals (import it with --calibration FILE.csv)`,
  );
}

/**
 * The feature rows of a stream, built a chunk at a time so a long series never blocks the
 * event loop for long nor holds every row at once. Row i stands for a window of
 * `windowSize` consecutive days; the model sees the last `bundle.window` days of each channel.
 */
export interface RowSource {
  n: number;
  rows(start: number, count: number): Rows;
}

/**
 * A day's channel values as a stream sends them: a plain number for a 1-channel bundle, an
 * array of one value per channel (in features.channels order) otherwise.
 */
export type DayValues = number | readonly number[];

/** Windows over a series of per-day feature values: window i is days[i .. i + windowSize - 1]. */
export function seriesRows(bundle: Bundle, days: readonly DayValues[], windowSize: number): RowSource {
  const { window: w, width } = bundle;
  const skip = windowSize - w;
  return {
    n: Math.max(0, days.length - windowSize + 1),
    rows(start, count) {
      const data = new Float64Array(count * width);
      for (let i = 0; i < count; i++) {
        for (let j = 0; j < w; j++) {
          const day = days[start + skip + i + j]!;
          // Channel c of lag j goes to c·w + j: channel-major, as the models take it.
          if (typeof day === "number") data[i * width + j] = day;
          else for (let c = 0; c < day.length; c++) data[i * width + c * w + j] = day[c]!;
        }
      }
      return { data, n: count };
    },
  };
}

/**
 * Windows over a stream of named features, one object a time step: window i is steps[i ..
 * i + windowSize − 1], and the model sees its last step. All are checked before the first
 * prediction, so a wrong name is a 400, not an error line midway.
 */
export function stepRows(bundle: Bundle, steps: readonly NamedValues[], windowSize: number): RowSource {
  const { data } = rowsFromFeatures(bundle, steps, (i) => `features[${i}]`);
  const width = bundle.width;
  const skip = windowSize - 1;
  return {
    n: Math.max(0, steps.length - skip),
    rows: (start, count) => ({ data: data.subarray((start + skip) * width, (start + skip + count) * width), n: count }),
  };
}

/**
 * One row per day of a request's history (prices or bars) with `windowSize` days of features
 * before it (the first is day minPrices − window + windowSize − 1); each day's channels are
 * computed once, when a chunk first needs them.
 */
export function historyRows(bundle: Bundle, given: History, field: string, windowSize: number): RowSource {
  const p = computedFeatures(bundle);
  const { window: w, width } = bundle;
  const first = p.minPrices - w + windowSize - 1;
  const daily = new DailyChannels(priceData(bundle, given, field), p);
  let computed = 0; // the channels are filled for days before this one
  return {
    n: Math.max(0, daily.days - first),
    rows(start, count) {
      const last = first + start + count - 1;
      daily.fill(Math.max(computed, first + start - w + 1), last + 1);
      computed = last + 1;
      const data = new Float64Array(count * width);
      for (let i = 0; i < count; i++) daily.vectorAt(first + start + i, data, i * width);
      return { data, n: count };
    },
  };
}

// The server's features agree with the pipeline's to 1e-9 (the parity contract), so a row at
// the edge of the training range may land that far beyond it without being new input.
const RANGE_TOLERANCE = 1e-9;

/**
 * Per feature, the interval [low, high] beyond which a value is outside what training saw.
 * With the manifest's feature_range, that feature's [min, max] (widened by the parity
 * tolerance). Older manifests record no feature range, but they record the range of the
 * training targets, and those are built from the same daily percent log returns the features
 * denoise: a return bundle's feature (a denoised return) beyond the largest |target| return,
 * or a volatility bundle's (a denoised squared return) beyond the square of the largest
 * realized volatility, is outside anything training saw. Named features (an imported bundle)
 * without a recorded range have nothing to be compared with: null, and no drift is counted.
 */
export function inputBound(bundle: Bundle): { low: Float64Array; high: Float64Array } | null {
  const range = bundle.manifest.feature_range;
  if (range) {
    const tolerance = (bound: number) => RANGE_TOLERANCE * Math.max(1, Math.abs(bound));
    return { low: Float64Array.from(range.min, (v) => v - tolerance(v)), high: Float64Array.from(range.max, (v) => v + tolerance(v)) };
  }
  const targets = bundle.manifest.target_range;
  if (!bundle.computed || !targets) return null;
  const largest = Math.max(Math.abs(targets.min), Math.abs(targets.max));
  const bound = bundle.computed.denoise.series === "squared_return_pct" ? largest * largest : largest;
  return { low: new Float64Array(bundle.width).fill(-bound), high: new Float64Array(bundle.width).fill(bound) };
}

export class Predictor {
  // Per bundle, built once: the test runs on every row predicted.
  private readonly bound = new WeakMap<Bundle, ReturnType<typeof inputBound>>();

  constructor(private readonly metrics: Metrics) {}

  private bounds(bundle: Bundle): ReturnType<typeof inputBound> {
    let bounds = this.bound.get(bundle);
    if (bounds === undefined) this.bound.set(bundle, (bounds = inputBound(bundle)));
    return bounds;
  }

  /** `abandoned()` turns true when the client goes away: the rows not yet run are then dropped. */
  async predict(serving: Serving, model: ModelType, rows: Rows, withInterval: boolean, abandoned?: () => boolean): Promise<Predictions> {
    const runner = await serving.runner(model);
    this.observeInputs(serving.bundle, model, rows);
    const out = await runner.predict(Float32Array.from(rows.data), rows.n, abandoned);
    const values = Float64Array.from(out);
    this.observe(serving.bundle, model, values);
    return withInterval ? { values, interval: this.intervals(serving, model, rows, values) } : { values };
  }

  /** Input drift: feature rows with a value beyond what training saw (inputBound). Cached answers count too. */
  observeInputs(bundle: Bundle, model: ModelType, rows: Rows): void {
    const bounds = this.bounds(bundle);
    if (!bounds) return;
    const { low, high } = bounds;
    const width = bundle.width;
    let outside = 0;
    for (let i = 0; i < rows.n; i++) {
      for (let j = 0; j < width; j++) {
        const v = rows.data[i * width + j]!;
        if (v < low[j]! || v > high[j]!) {
          outside++;
          break;
        }
      }
    }
    if (outside) this.metrics.inputsOutOfRange.inc({ model, reason: "beyond_training" }, outside);
  }

  /** Values already known (from the cache) still count in the prediction metrics; out of range only where the bundle records the targets' range. */
  observe(bundle: Bundle, model: ModelType, values: Float64Array): void {
    const { min, max } = bundle.manifest.target_range ?? { min: -Infinity, max: Infinity };
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
    const calibration = calibrationOf(bundle, model);
    const width = bundle.width;
    const clampAtZero = bundle.manifest.conformal.lower_bound_zero;
    const lower = new Float64Array(rows.n);
    const upper = new Float64Array(rows.n);
    for (let i = 0; i < rows.n; i++) {
      let raw: number;
      if (calibration.scale === "rms_features") {
        let sum = 0;
        for (let j = i * width; j < (i + 1) * width; j++) sum += rows.data[j]! * rows.data[j]!;
        raw = Math.sqrt(sum / width);
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
