import { z } from "zod";
import { BAR_FIELDS, type BarField, barColumnsSchema } from "./bars.js";
import { minPrices, parseChannel, readsRanges } from "./channels.js";

/**
 * The model bundle's manifest.json (DESIGN §3), as written by models/src/wavelet_pipeline/
 * bundle.py. Only what the server relies on is strict; the evaluation report and other
 * documentation fields (an imported bundle's `source` among them) pass through untouched.
 * Two kinds of bundle: computed features (ours: the server computes them from prices, or from
 * daily bars where features.inputs says so) and
 * named features (imported from a user's own models: the caller sends them).
 */

const tensor = z.object({
  name: z.string().min(1),
  type: z.literal("float32"),
  shape: z.array(z.number().int().positive().nullable()),
});

export const calibrationSchema = z.object({
  level: z.number().gt(0).lt(1),
  scale: z.enum(["rms_features", "prediction"]),
  scale_floor: z.number().positive(),
  quantile: z.number().nonnegative(),
  n: z.number().int().positive(),
});

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "a lowercase hex sha256");

// The files a manifest lists are paths inside the bundle: relative, "/"-separated, without
// "." or ".." segments or backslashes (bundle.ts also refuses symlinks leading out of it).
const insideBundle = (path: string) => path.split("/").every((part) => part !== "" && part !== "." && part !== ".." && !part.includes("\\"));
const bundleFiles = z.record(z.string(), sha256).superRefine((files, ctx) => {
  for (const path of Object.keys(files)) {
    if (!insideBundle(path)) ctx.addIssue({ code: "custom", message: `${JSON.stringify(path)} is not a relative path inside the bundle` });
  }
});

export const modelEntrySchema = z.looseObject({
  file: z.string().regex(/^[\w.-]+\.onnx$/, "a file name inside the bundle"),
  sha256,
  bytes: z.number().int().positive(),
  precision: z.enum(["float32", "int8-static"]),
  inputs: z.array(tensor).length(1),
  outputs: z.array(tensor).length(1),
  /** Absent in an imported bundle calibrated on no data: that model gives no intervals. */
  calibration: calibrationSchema.optional(),
});

const filters = z
  .object({
    dec_lo: z.array(z.number()).min(2),
    dec_hi: z.array(z.number()).min(2),
    rec_lo: z.array(z.number()).min(2),
    rec_hi: z.array(z.number()).min(2),
  })
  .refine(
    (f) =>
      f.dec_lo.length === f.dec_hi.length &&
      f.rec_lo.every((v, i) => v === f.dec_lo[f.dec_lo.length - 1 - i]) &&
      f.rec_hi.every((v, i) => v === f.dec_hi[f.dec_hi.length - 1 - i]),
    "only orthogonal wavelets are supported (rec_lo and rec_hi must be dec_lo and dec_hi reversed)",
  );

const count = z.number().int().positive();

/** Trading days between the last close a prediction sees and the close it predicts: at most a year's (252). */
export const horizonDays = z.number().int().min(1).max(252);

/** The MODWT energy channels' settings (features-spec v2). */
const energy = z.looseObject({ levels: count, span: count });

/** The GJR-GARCH channel's parameters, fit by the pipeline on the training window. */
const garch = z
  .looseObject({
    kind: z.literal("gjr"),
    omega: z.number().nonnegative(),
    alpha: z.number().nonnegative(),
    gamma: z.number(),
    beta: z.number().nonnegative(),
    trailing: count,
    horizon: count,
  })
  // With these the variance stays ≥ 0 whatever the returns, so the volatility is always defined.
  .refine((g) => g.alpha + g.gamma >= 0, "garch: alpha + gamma must be ≥ 0");

/** The daily range variance estimators, and the bar fields each reads (features.inputs). */
export const ESTIMATOR_INPUTS = {
  parkinson: ["high", "low", "close"],
  garman_klass: ["open", "high", "low", "close"],
} as const satisfies Record<string, readonly BarField[]>;
export type RangeEstimator = keyof typeof ESTIMATOR_INPUTS;
const CLOSE_ONLY = ["close"] as const;

/** The range channels' settings (rng_*, gjrx_vol): the daily estimator e_t and the MODWT levels of ln e_t. */
const range = z.looseObject({
  estimator: z.enum(Object.keys(ESTIMATOR_INPUTS) as [RangeEstimator, ...RangeEstimator[]]),
  log_floor: z.number().positive(),
  stale_open_rtol: z.number().nonnegative(),
  levels: z.number().int().nonnegative(),
});

/** The gjrx_vol channel's GJR-GARCH-X parameters: GJR's plus δ (weight of the mean range variance) and κ (E[e] / E[r²]). */
const garchx = z
  .looseObject({
    kind: z.literal("gjr-x"),
    omega: z.number().nonnegative(),
    alpha: z.number().nonnegative(),
    gamma: z.number(),
    beta: z.number().nonnegative(),
    delta: z.number().nonnegative(),
    kappa: z.number().nonnegative(),
    span: count,
    trailing: count,
    horizon: count,
  })
  // As for gjr_vol: every term of the recursion stays ≥ 0, so the volatility is always defined.
  .refine((g) => g.alpha + g.gamma >= 0, "garchx: alpha + gamma must be ≥ 0");

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((v, i) => v === b[i]);

const denoisedChannel = { log_return_pct: "dn_ret", squared_return_pct: "dn_sq" } as const;

export const featureSpecSchema = z
  .looseObject({
    kind: z.literal("computed").optional(),
    series: z.enum(["log_return_pct", "squared_return_pct"]),
    window: count,
    trailing: count,
    wavelet: z.string(),
    levels: count,
    names: z.array(z.string()),
    min_prices: count,
    mode: z.literal("periodization"),
    threshold: z.literal("universal-soft"),
    filters,
    channels: z
      .array(
        z.string().refine((name) => parseChannel(name) !== undefined, "not a known channel (dn_ret, dn_sq, ret, wav_e<j>, wav_es, gjr_vol, rng_<n>d, rng_w<j>, rng_v<J>, gjrx_vol)"),
      )
      .min(1)
      .optional(),
    /** What each day of input carries: closes, or the bar fields the range estimator reads. */
    inputs: z.array(z.enum(BAR_FIELDS)).optional(),
    energy: energy.optional(),
    garch: garch.optional(),
    range: range.optional(),
    garchx: garchx.optional(),
  })
  // A manifest from before channels existed has one: the series it denoises; one from before
  // bars existed reads closes.
  .transform((f) => ({ ...f, channels: f.channels ?? [denoisedChannel[f.series]], inputs: (f.inputs ?? [...CLOSE_ONLY]) as readonly BarField[] }))
  .superRefine((f, ctx) => {
    let failed = false;
    const fail = (message: string) => {
      failed = true;
      ctx.addIssue({ code: "custom", message });
    };
    if ((f.trailing & (f.trailing - 1)) !== 0 || f.trailing < 2 ** f.levels) fail("trailing must be a power of two ≥ 2^levels");
    if (new Set(f.channels).size !== f.channels.length) fail("features.channels must not repeat a channel");
    const parsed = f.channels.map((name) => parseChannel(name)!);
    const denoised = f.channels.filter((name) => parseChannel(name)!.kind === "denoised");
    if (denoised.some((name) => name !== denoisedChannel[f.series])) fail(`the denoised channel of series ${f.series} is ${denoisedChannel[f.series]}`);
    const energies = parsed.flatMap((c) => (c.kind === "energy" ? [c.band] : []));
    if (energies.length > 0 !== (f.energy !== undefined)) fail("features.energy must be given exactly when a wav_* channel is");
    if (f.energy && energies.some((band) => band !== "smooth" && band > f.energy!.levels)) fail("a wav_e<j> channel has j above energy.levels");
    if (parsed.some((c) => c.kind === "gjr") !== (f.garch !== undefined)) fail("features.garch must be given exactly when the gjr_vol channel is");
    if (parsed.some(readsRanges) !== (f.range !== undefined)) fail("features.range must be given exactly when a rng_* or gjrx_vol channel is");
    if (parsed.some((c) => c.kind === "gjrx") !== (f.garchx !== undefined)) fail("features.garchx must be given exactly when the gjrx_vol channel is");
    const levels = f.range?.levels;
    if (levels !== undefined && parsed.some((c) => c.kind === "rangeModwt" && (c.band === "smooth" ? c.level !== levels : c.level > levels))) {
      fail(`rng_w<j> needs j ≤ range.levels and rng_v<J> J = range.levels (${levels})`);
    }
    // The inputs say what a request must carry: what the estimator reads, and nothing it does not.
    const inputs = f.range ? ESTIMATOR_INPUTS[f.range.estimator] : CLOSE_ONLY;
    if (!sameList(f.inputs, inputs)) fail(`features.inputs must be ${JSON.stringify(inputs)}${f.range ? ` for the ${f.range.estimator} estimator` : " without range channels"}`);
    if (f.names.length !== f.window * f.channels.length) fail("features.names must have window × channels entries");
    // The names say which value is which: the vector is channel-major, each channel's lags oldest first.
    else if (f.names.some((name, i) => name !== `${f.channels[Math.floor(i / f.window)]}_lag${f.window - 1 - (i % f.window)}`)) {
      fail("features.names must be <channel>_lag<k>, k = window−1 .. 0, channel after channel in features.channels order");
    }
    if (failed) return; // min_prices is only defined for a consistent spec
    const needed = minPrices(f);
    if (f.min_prices !== needed) fail(`features.min_prices must be window + the longest channel history (${needed})`);
  });

/**
 * An imported bundle's features: the caller sends them, as the flat vector in `names` order
 * or keyed by name. `sequence_length` L says how a sequence model reads the vector (L time
 * steps of names.length / L features); the server always takes the flat vector.
 */
export const namedFeatureSpecSchema = z
  .looseObject({
    kind: z.literal("named"),
    names: z.array(z.string().min(1)).min(1),
    sequence_length: count,
  })
  .superRefine((f, ctx) => {
    const seen = new Set<string>();
    const repeated = f.names.filter((name) => seen.size === seen.add(name).size);
    if (repeated.length) ctx.addIssue({ code: "custom", message: `features.names must be unique: ${[...new Set(repeated)].slice(0, 5).join(", ")} repeated`, path: ["names"] });
    if (f.names.length % f.sequence_length !== 0) {
      ctx.addIssue({ code: "custom", message: `features.sequence_length (${f.sequence_length}) must divide the ${f.names.length} names`, path: ["sequence_length"] });
    }
  });

/** Computed features when `kind` is absent or "computed", named features when it is "named". */
const featuresSchema = z.discriminatedUnion("kind", [featureSpecSchema, namedFeatureSpecSchema]);

export const manifestSchema = z.looseObject({
  schema_version: z.literal(1),
  name: z.string().min(1),
  version: z.string().min(1),
  created: z.string(),
  target: z.looseObject({
    name: z.string(),
    kind: z.enum(["return", "volatility"]),
    horizon: horizonDays,
    units: z.string(),
    link: z.enum(["identity", "log"]),
  }),
  features: featuresSchema,
  default_model: z.string(),
  models: z.record(z.string(), modelEntrySchema),
  /** `available: false` (and `why`) when the bundle gives no intervals (imported without calibration data). */
  conformal: z.looseObject({ level: z.number(), lower_bound_zero: z.boolean(), available: z.boolean().optional(), why: z.string().optional() }),
  /** The training targets' range (the out-of-range metric); an imported bundle has it only when calibrated. */
  target_range: z.looseObject({ min: z.number(), max: z.number() }).optional(),
  /** Each feature's range over the training rows (the input-drift metric); absent in older and uncalibrated imported bundles. */
  feature_range: z.looseObject({ min: z.array(z.number()), max: z.array(z.number()) }).optional(),
  files: bundleFiles,
})
  .refine(
    (m) => !m.feature_range || (m.feature_range.min.length === m.features.names.length && m.feature_range.max.length === m.features.names.length),
    { message: "feature_range.min and .max must have one entry per feature", path: ["feature_range"] },
  )
  // Our own bundles are always calibrated: their intervals and input-drift bounds rely on it.
  .superRefine((m, ctx) => {
    if (m.features.kind === "named") return;
    if (!m.target_range) ctx.addIssue({ code: "custom", message: "a bundle that computes its features needs target_range", path: ["target_range"] });
    for (const [name, entry] of Object.entries(m.models)) {
      if (!entry.calibration) ctx.addIssue({ code: "custom", message: "a bundle that computes its features needs every model's calibration", path: ["models", name, "calibration"] });
    }
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type ModelEntry = z.infer<typeof modelEntrySchema>;
/** The features of a bundle that computes them from prices (ours). */
export type FeatureSpec = z.infer<typeof featureSpecSchema>;
/** The features of an imported bundle, sent by the caller. */
export type NamedFeatureSpec = z.infer<typeof namedFeatureSpecSchema>;
export type Features = Manifest["features"];

export const isNamed = (features: Features): features is NamedFeatureSpec => features.kind === "named";

const predictions = z.record(z.string(), z.array(z.number()));

/**
 * vectors/parity.json: the pipeline's reference cases. A computed bundle's go from raw prices
 * (or daily bars, columnar, with their closes as prices, for a bundle whose inputs are more than
 * closes) to each model's predictions; an imported bundle's from feature rows to the original framework's
 * predictions (`predictions`) and ONNX Runtime's on the exported graphs (`onnx_predictions`).
 */
export const paritySchema = z.looseObject({
  cases: z.array(
    z.union([
      // First: a case with bars also lists their closes (prices), and is sent as bars.
      z.object({ name: z.string(), bars: barColumnsSchema, predictions }),
      z.object({ name: z.string(), prices: z.array(z.number()), predictions }),
      z.object({ name: z.string(), features: z.array(z.array(z.number())), predictions, onnx_predictions: predictions.optional() }),
    ]),
  ),
});
