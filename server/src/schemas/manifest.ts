import { z } from "zod";

/**
 * The model bundle's manifest.json (DESIGN §3), as written by models/src/wavelet_pipeline/
 * bundle.py. Only what the server relies on is strict; the evaluation report and other
 * documentation fields pass through untouched.
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
  calibration: calibrationSchema,
});

const filters = z
  .object({
    dec_lo: z.array(z.number()).min(2),
    dec_hi: z.array(z.number()).min(2),
    rec_lo: z.array(z.number()).min(2),
    rec_hi: z.array(z.number()).min(2),
  })
  .refine(
    (f) => f.rec_lo.every((v, i) => v === f.dec_lo[f.dec_lo.length - 1 - i]) && f.dec_lo.length === f.dec_hi.length,
    "only orthogonal wavelets are supported (rec_lo must be dec_lo reversed)",
  );

export const featureSpecSchema = z.looseObject({
  series: z.enum(["log_return_pct", "squared_return_pct"]),
  window: z.number().int().positive(),
  trailing: z.number().int().positive(),
  wavelet: z.string(),
  levels: z.number().int().positive(),
  names: z.array(z.string()),
  min_prices: z.number().int().positive(),
  mode: z.literal("periodization"),
  threshold: z.literal("universal-soft"),
  filters,
})
  .refine((f) => f.names.length === f.window, "features.names must have `window` entries")
  .refine((f) => f.min_prices === f.trailing + f.window, "features.min_prices must be trailing + window")
  .refine((f) => (f.trailing & (f.trailing - 1)) === 0 && f.trailing >= 2 ** f.levels, "trailing must be a power of two ≥ 2^levels");

export const manifestSchema = z.looseObject({
  schema_version: z.literal(1),
  name: z.string().min(1),
  version: z.string().min(1),
  created: z.string(),
  target: z.looseObject({
    name: z.string(),
    kind: z.enum(["return", "volatility"]),
    horizon: z.number().int().positive(),
    units: z.string(),
    link: z.enum(["identity", "log"]),
  }),
  features: featureSpecSchema,
  default_model: z.string(),
  models: z.record(z.string(), modelEntrySchema),
  conformal: z.looseObject({ level: z.number(), lower_bound_zero: z.boolean() }),
  target_range: z.looseObject({ min: z.number(), max: z.number() }),
  files: bundleFiles,
});

export type Manifest = z.infer<typeof manifestSchema>;
export type ModelEntry = z.infer<typeof modelEntrySchema>;
export type FeatureSpec = z.infer<typeof featureSpecSchema>;

/** vectors/parity.json: the pipeline's reference cases, raw prices to each model's predictions. */
export const paritySchema = z.looseObject({
  cases: z.array(
    z.looseObject({
      name: z.string(),
      prices: z.array(z.number()),
      predictions: z.record(z.string(), z.array(z.number())),
    }),
  ),
});
