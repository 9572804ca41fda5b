import { z } from "zod";
import { MODEL_TYPES } from "../config.js";

/**
 * Request and response schemas of the REST API. They validate every request and are the
 * source of /openapi.json; handler types come from them. Limits that depend on settings
 * are built in, so the published spec states the limits the server enforces.
 */

export interface Limits {
  maxBatchSamples: number;
  maxStreamLength: number;
}

/**
 * What a feature vector looks like for the bundle the process serves. The published API
 * fixes it for the process's lifetime; a reload to a bundle of another shape is refused.
 */
export interface FeatureShape {
  window: number;
  minPrices: number;
}

/** The shape of the pipeline's default bundles, used when no bundle could be loaded at start. */
export const DEFAULT_SHAPE: FeatureShape = { window: 10, minPrices: 42 };

// Far above any price history a request needs, far below what hurts.
const MAX_PRICES = 100_000;

/** A request that takes exactly one of `features` or `prices` (oneOf in the spec, a named error in validation). */
function featuresOrPrices<T extends z.ZodRawShape>(
  fields: T,
  id: string,
  example: Record<string, unknown>,
) {
  return z
    .object(fields)
    .strict()
    .refine((b) => ((b as { features?: unknown }).features === undefined) !== ((b as { prices?: unknown }).prices === undefined), {
      message: "give exactly one of features or prices",
      path: ["features"],
    })
    .meta({ id, oneOf: [{ required: ["features"] }, { required: ["prices"] }], example });
}

// Features are denoised percent returns (or their squares): a million is already absurd, and
// the bound keeps every model's float32 arithmetic finite. Prices may be in any currency.
const FEATURES = { minimum: -1e6, maximum: 1e6 };
const PRICES = { minimum: 1e-10, maximum: 1e15 };

/** Marks a validation issue that refused a number as out of bounds or non-finite (input drift). */
export const REFUSED_INPUT = "refused_input";

/**
 * An array of bounded numbers, checked in one loop. Per-element zod schemas cost about a
 * quarter of a microsecond a number, which was most of a 1,000-row batch's overhead; the
 * JSON Schema (for /openapi.json) is stated alongside, and errors still name the index.
 */
function numbers(items: { minimum: number; maximum: number }, minItems: number, maxItems: number, description: string) {
  const size = minItems === maxItems ? `exactly ${minItems}` : `${minItems} to ${maxItems}`;
  return z
    .custom<number[]>((v) => Array.isArray(v), { message: `expected an array of ${size} numbers` })
    .check((ctx) => {
      const v = ctx.value;
      if (v.length < minItems || v.length > maxItems) {
        ctx.issues.push({ code: "custom", message: `expected ${size} numbers, got ${v.length}`, input: v });
        return;
      }
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        if (typeof x !== "number" || !(x >= items.minimum && x <= items.maximum)) {
          if (typeof x !== "number") {
            ctx.issues.push({ code: "custom", message: `expected a number, got ${x === null ? "null" : typeof x}`, input: x, path: [i] });
          } else {
            // A number the model must not see (non-finite or beyond the bounds) counts as input drift.
            const message = `must be a finite number from ${items.minimum} to ${items.maximum}`;
            ctx.issues.push({ code: "custom", message, input: x, path: [i], params: { [REFUSED_INPUT]: true } });
          }
          return;
        }
      }
    })
    .meta({ type: "array", minItems, maxItems, items: { type: "number", ...items }, description });
}

const bundleRef = z.object({ name: z.string(), version: z.string(), digest: z.string() });
const target = z.object({ name: z.string(), units: z.string(), horizon: z.number().int() });
const interval = z.object({ level: z.number(), lower: z.number(), upper: z.number() });

export const errorSchema = z
  .object({
    error: z.string().meta({ description: "machine-readable code" }),
    message: z.string(),
    request_id: z.string(),
    fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    details: z.unknown().optional(),
  })
  .meta({ id: "Error" });

export function apiSchemas(limits: Limits, shape: FeatureShape, defaultModel: (typeof MODEL_TYPES)[number] = "ensemble") {
  const modelType = z.enum(MODEL_TYPES).default(defaultModel).meta({ description: `which model answers (default ${defaultModel})` });
  const vector = (description: string) => numbers(FEATURES, shape.window, shape.window, description);
  const predictRequest = featuresOrPrices(
    {
      features: vector("the bundle's feature vector (GET /models: features.names); give this or prices").optional(),
      prices: numbers(
        PRICES,
        shape.minPrices,
        MAX_PRICES,
        "daily closing prices, oldest first; the server computes the causal wavelet features of the last day",
      ).optional(),
      model_type: modelType,
      return_confidence: z.boolean().default(false),
    },
    "PredictRequest",
    { features: [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], model_type: "ensemble" },
  );

  const predictResponse = z
    .object({
      prediction: z.number(),
      model_type: z.enum(MODEL_TYPES),
      bundle: bundleRef,
      target,
      confidence: interval.optional(),
      input: z.enum(["features", "prices"]),
      cached: z.boolean(),
    })
    .meta({ id: "PredictResponse" });

  const batchRequest = z
    .object({
      samples: z.array(vector("one feature vector")).min(1).max(limits.maxBatchSamples),
      model_type: modelType,
      return_confidence: z.boolean().default(false),
    })
    .strict()
    .meta({
      id: "BatchRequest",
      example: {
        samples: [
          [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
          [0.2, 0.3, -0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1],
        ],
        model_type: "ensemble",
        return_confidence: true,
      },
    });

  const batchResponse = z
    .object({
      predictions: z.array(z.number()),
      count: z.number().int(),
      model_type: z.enum(MODEL_TYPES),
      bundle: bundleRef,
      target,
      confidence: z.object({ level: z.number(), lower: z.array(z.number()), upper: z.array(z.number()) }).optional(),
    })
    .meta({ id: "BatchResponse" });

  const streamRequest = featuresOrPrices(
    {
      features: numbers(
        FEATURES,
        shape.window,
        limits.maxStreamLength,
        "a series of the bundle's per-day feature values; each window of window_size values is one feature vector",
      ).optional(),
      prices: numbers(PRICES, shape.minPrices, limits.maxStreamLength, "daily closes; one prediction per day that has enough history").optional(),
      window_size: z
        .number()
        .int()
        .min(shape.window)
        .max(limits.maxStreamLength)
        .optional()
        .meta({
          description:
            `days per window, at least the bundle's window (${shape.window}, the default). One prediction per window of ` +
            "window_size consecutive per-day feature values (with prices: per day that has window_size days of features " +
            `behind it); the model sees the window's last ${shape.window} values, so a larger window_size only starts the ` +
            "predictions later: with features, prediction `index` i is for the window features[i .. i+window_size-1], " +
            "i.e. for the day of features[i+window_size-1]. A window_size longer than the series gives no predictions, " +
            "only the done line (count 0).",
        }),
      model_type: modelType,
      return_confidence: z.boolean().default(false),
    },
    "StreamRequest",
    { features: [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], window_size: 10, model_type: "ensemble" },
  );

  return { predictRequest, predictResponse, batchRequest, batchResponse, streamRequest };
}

export const streamItem = z
  .object({ index: z.number().int(), prediction: z.number(), confidence: interval.optional() })
  .meta({ id: "StreamItem", description: "one line of the NDJSON stream (or the data of one SSE `prediction` event)" });

export const healthResponse = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    reasons: z.array(z.string()),
    bundle: bundleRef.optional(),
    models: z.record(z.string(), z.enum(["loaded", "loading", "not_loaded"])),
    loading: z.enum(["eager", "lazy"]),
    uptime_seconds: z.number(),
    last_reload: z
      .object({ at: z.string(), ok: z.boolean(), bundle: bundleRef.optional(), error: z.string().optional() })
      .optional(),
  })
  .meta({ id: "Health" });

export const modelsResponse = z
  .object({
    bundle: bundleRef.extend({ created: z.string(), description: z.string().optional() }),
    target: z.record(z.string(), z.unknown()),
    features: z.object({ names: z.array(z.string()), window: z.number(), min_prices: z.number(), series: z.string() }),
    default_model: z.string(),
    models: z.array(
      z.object({
        name: z.string(),
        file: z.string(),
        sha256: z.string(),
        precision: z.string(),
        status: z.enum(["loaded", "loading", "not_loaded", "not_configured"]),
        load_seconds: z.number().optional(),
        confidence_level: z.number(),
        metrics: z.record(z.string(), z.number()).optional(),
      }),
    ),
    evaluation: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "Models" });

export const goldenResponse = z
  .object({
    bundle: bundleRef,
    cases: z.array(
      z.object({
        name: z.string(),
        prices: z.array(z.number()),
        expected: z.record(z.string(), z.number()).meta({ description: "per served model, the prediction for the last day (POST /predict with these prices)" }),
      }),
    ),
  })
  .meta({ id: "Golden" });

export const reloadResponse = z
  .object({
    reloaded: z.boolean(),
    bundle: bundleRef,
    previous: bundleRef.optional(),
    workers: z.number().int().positive().meta({ description: "processes now serving the bundle (WORKERS)" }),
    seconds: z.number(),
  })
  .meta({ id: "Reload" });
