import { z } from "zod";
import { BAR_FIELDS, type Bar, type BarField, type BarsInput, barColumnsSchema, checkBars, closesOnly } from "./bars.js";
import { type Features, horizonDays, isNamed } from "./manifest.js";
import { type Bounds, FEATURES, type Issues, type Path, PRICES, refuse, sizeText } from "./numbers.js";

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
 * What a feature vector looks like for the bundle the process serves: `window` days of each
 * of `channels` per-day channels, channel-major, so `window × channels` values. The published
 * API fixes it for the process's lifetime; a reload to a bundle of another shape is refused.
 * Which channels they are is the bundle's to say (GET /models: features.channels), as which
 * series a 1-channel bundle denoises always was: a bundle of the same shape can replace it.
 * An imported bundle's named features are one vector of `names.length` values (window, with one
 * channel): the vector or an object keyed by name, never prices. A bundle computing its features
 * reads closes, or daily bars (`inputs`): which a request must send is part of the API too.
 */
export interface FeatureShape {
  /** Days of lags per channel (features.window); all the named features. */
  window: number;
  /** How many per-day channels (features.channels); 1 for named features. */
  channels: number;
  /** Prices the first feature vector needs (features.min_prices); none for named features, which are never computed. */
  minPrices?: number | undefined;
  /** What each day of a computed bundle's history carries (features.inputs): ["close"], or bar fields. */
  inputs?: readonly BarField[] | undefined;
  /** The named features' names (GET /models features.names), in vector order. */
  names?: readonly string[] | undefined;
}

/** The shape of the pipeline's return bundle, used when no bundle could be loaded at start. */
export const DEFAULT_SHAPE: FeatureShape = { window: 10, channels: 1, minPrices: 42, inputs: ["close"] };

export function featureShape(features: Features): FeatureShape {
  return isNamed(features)
    ? { window: features.names.length, channels: 1, names: features.names }
    : { window: features.window, channels: features.channels.length, minPrices: features.min_prices, inputs: features.inputs };
}

/** Whether a bundle reads bars (more than each day's close): a request must then send them. */
export const takesBars = (shape: FeatureShape) => shape.inputs !== undefined && !closesOnly(shape.inputs);

/**
 * Whether the API published for `published` serves a bundle of shape `offered`: vectors of the
 * same layout and, for a bundle computing its features, the same history of the same inputs (an
 * API published for named features documents no prices). Which names or channels they are is the bundle's to say.
 */
export const servesShape = (published: FeatureShape, offered: FeatureShape) =>
  published.window === offered.window &&
  published.channels === offered.channels &&
  (offered.minPrices === undefined || (offered.minPrices === published.minPrices && offered.inputs?.join() === published.inputs?.join()));

/** Values in one feature vector. */
export const featureWidth = (shape: FeatureShape) => shape.window * shape.channels;

/** For messages: "features of 10 days × 1 channel from 42 prices", "… from 74 bars (high, low, close)", "12 named features". */
export const describeShape = (shape: FeatureShape) =>
  shape.names
    ? `${shape.names.length} named features`
    : `features of ${shape.window} days × ${shape.channels} channel${shape.channels === 1 ? "" : "s"} from ${shape.minPrices} ` +
      (takesBars(shape) ? `bars (${shape.inputs!.join(", ")})` : "prices");

// Far above any price history a request needs, far below what hurts.
const MAX_PRICES = 100_000;

type Example = Record<string, unknown>;

type Branch = { id: string; fields: z.ZodRawShape; example: Example };

/** The fields a request gives its input in: exactly one of them. */
const INPUTS = ["features", "prices", "bars"] as const;

/**
 * A request that takes one of several shapes (features, prices or bars; for named features,
 * the vector or the object keyed by name). It validates as one strict object with a named
 * error, so an error names the field at fault (a zod union reports only that no branch
 * matched); it is documented as what it is, a oneOf of the named shapes the bundle at start
 * takes. zod emits a union's oneOf through the schema's processJSONSchema (how each of its
 * classes emits itself): the request borrows the union's, so zod still writes the refs.
 */
function oneOfRequest<S extends z.ZodRawShape>(
  name: "Predict" | "Stream",
  fields: S,
  branches: [Branch, Branch, ...Branch[]],
  /** Checks across fields beyond "exactly one of features, prices or bars". */
  more: (body: z.infer<z.ZodObject<S>>, ctx: z.RefinementCtx) => void = () => undefined,
) {
  // Titled too: Swagger UI names a oneOf's branches by their titles.
  const [a, b, ...rest] = branches.map((branch) => z.strictObject(branch.fields).meta({ id: `${name}${branch.id}`, title: `${name}${branch.id}`, example: branch.example }));
  const documented = z.xor([a!, b!, ...rest]);
  const request = z
    .strictObject(fields)
    .refine((body) => INPUTS.filter((field) => (body as Record<string, unknown>)[field] !== undefined).length === 1, {
      message: "give exactly one of features, prices or bars",
      path: ["features"],
    })
    .superRefine(more)
    .meta({ id: `${name}Request`, example: branches[0].example });
  request._zod.processJSONSchema = documented._zod.processJSONSchema;
  return request;
}

/** Named features as a request sends them: values keyed by feature name. */
export type NamedValues = Record<string, number>;

/** A JSON object that is not an array: named features. */
export const isNamedValues = (v: unknown): v is NamedValues => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reports the first value of named features that is not a bounded feature value; true when it
 * did. Which names they must be is the serving bundle's to check (a reload may change them).
 */
function checkNamed(ctx: Issues, v: Record<string, unknown>, path: Path): boolean {
  for (const key of Object.keys(v)) if (refuse(ctx, v[key], FEATURES, [...path, key])) return true;
  return false;
}

/** Checks an array of between min and max bounded numbers, in one loop. */
function checkNumbers(ctx: Issues, v: unknown[], items: Bounds, minItems: number, maxItems: number, path: Path = []): void {
  if (v.length < minItems || v.length > maxItems) {
    ctx.issues.push({ code: "custom", message: `expected ${sizeText(minItems, maxItems)} numbers, got ${v.length}`, input: v, path });
    return;
  }
  for (let i = 0; i < v.length; i++) if (refuse(ctx, v[i], items, [...path, i])) return;
}

/** How /openapi.json shows an array of bounded numbers. */
const numbersDoc = (items: Bounds, minItems: number, maxItems: number, description: string) => ({
  type: "array",
  minItems,
  maxItems,
  items: { type: "number", ...items },
  description,
});

/**
 * An array of bounded numbers, checked in one loop. Per-element zod schemas cost about a
 * quarter of a microsecond a number, which was most of a 1,000-row batch's overhead; the
 * JSON Schema (for /openapi.json) is stated alongside, and errors still name the index.
 */
function numbers(items: Bounds, minItems: number, maxItems: number, description: string) {
  return z
    .custom<number[]>((v) => Array.isArray(v), { message: `expected an array of ${sizeText(minItems, maxItems)} numbers` })
    .check((ctx) => checkNumbers(ctx, ctx.value, items, minItems, maxItems))
    .meta(numbersDoc(items, minItems, maxItems, description));
}

/** How /openapi.json shows named features: every name, each once. */
const namedDoc = (names: readonly string[], description: string) => ({
  type: "object",
  properties: Object.fromEntries(names.map((name) => [name, { type: "number", ...FEATURES }])),
  required: [...names],
  additionalProperties: false,
  description,
});

/** A batch sample that gives the history to compute its feature vector from: {bars}. */
export type BarsSample = { bars: BarsInput };

/** An object whose `bars` is not a number (a named feature could be called bars): a BarsSample, checked or not. */
export const isBarsSample = (v: unknown): v is BarsSample => isNamedValues(v) && "bars" in v && typeof v.bars !== "number";

/** Checks a BarsSample: its bars, and no other field. */
function checkBarsSample(ctx: Issues, v: Record<string, unknown>, minDays: number): void {
  const other = Object.keys(v).find((key) => key !== "bars");
  if (other !== undefined) ctx.issues.push({ code: "custom", message: "unknown field (a sample of bars has bars only)", input: v, path: [other] });
  else checkBars(ctx, v.bars, minDays, MAX_PRICES, ["bars"]);
}

/** How /openapi.json shows bars: one object per day (the fields the bundle reads required), or the same as columns. */
function barsDoc(inputs: readonly BarField[], minItems: number, maxItems: number, description: string) {
  const price = { type: "number", ...PRICES };
  const fields = (item: (field: BarField) => object) => ({
    type: "object",
    properties: Object.fromEntries(BAR_FIELDS.map((field) => [field, item(field)])),
    required: [...inputs],
    additionalProperties: false,
  });
  return {
    oneOf: [
      { type: "array", minItems, maxItems, items: fields(() => price), description },
      { ...fields(() => ({ type: "array", minItems, maxItems, items: price })), description: "the same bars as columns: one array of prices per field, all of one length" },
    ],
  };
}

/** What a bundle's bars must carry, for descriptions. */
const barText = (inputs: readonly BarField[]) => `{${BAR_FIELDS.filter((field) => inputs.includes(field)).join(", ")}}`;

/**
 * One feature vector: `width` bounded numbers, or named features (an object of bounded numbers
 * keyed by name, for a bundle of named features: the handler maps them to the vector), or, with
 * `bars` (a batch sample), the bars to compute it from. All validate whatever the bundle, so a
 * bundle of another kind answers why it takes neither; /openapi.json documents the object only
 * when the bundle at start takes it (`names`), and bars only when it reads them (`bars.doc`).
 */
function featureVector(width: number, names: readonly string[] | undefined, description: string, bars?: { minDays: number; doc?: object | undefined }) {
  const vector = numbersDoc(FEATURES, width, width, description);
  const message = `expected an array of exactly ${width} numbers${names ? " or an object keyed by feature name" : ""}${bars ? " or {bars}" : ""}`;
  const documented = [vector, ...(names ? [namedDoc(names, `the ${names.length} features keyed by name, each exactly once`)] : []), ...(bars?.doc ? [bars.doc] : [])];
  return z
    .custom<number[] | NamedValues | BarsSample>((v) => Array.isArray(v) || isNamedValues(v), { message })
    .check((ctx) => {
      const v = ctx.value;
      if (Array.isArray(v)) checkNumbers(ctx, v, FEATURES, width, width);
      else if (bars && isBarsSample(v)) checkBarsSample(ctx, v, bars.minDays);
      else checkNamed(ctx, v, []);
    })
    .meta(documented.length > 1 ? { oneOf: documented } : vector);
}

/** Checks an array of per-day rows, each exactly `perRow` bounded numbers (one per channel), like checkNumbers. */
function checkRows(ctx: Issues, v: unknown[], items: Bounds, perRow: number, minDays: number, maxDays: number): void {
  if (v.length < minDays || v.length > maxDays) {
    ctx.issues.push({ code: "custom", message: `expected ${sizeText(minDays, maxDays)} rows, got ${v.length}`, input: v });
    return;
  }
  for (let i = 0; i < v.length; i++) {
    const row: unknown = v[i];
    if (!Array.isArray(row) || row.length !== perRow) {
      ctx.issues.push({ code: "custom", message: `expected a row of exactly ${perRow} numbers`, input: row, path: [i] });
      return;
    }
    for (let c = 0; c < perRow; c++) if (refuse(ctx, row[c], items, [i, c])) return;
  }
}

/** Checks a stream's named features: between min and max objects, one per time step. */
function checkSteps(ctx: Issues, v: unknown[], minSteps: number, maxSteps: number): void {
  if (v.length < minSteps || v.length > maxSteps) {
    ctx.issues.push({ code: "custom", message: `expected ${sizeText(minSteps, maxSteps)} objects of named features, got ${v.length}`, input: v });
    return;
  }
  for (let i = 0; i < v.length; i++) {
    const step = v[i];
    if (!isNamedValues(step)) {
      ctx.issues.push({ code: "custom", message: "expected an object of named features, as the first one is", input: step, path: [i] });
      return;
    }
    if (checkNamed(ctx, step, [i])) return;
  }
}

/**
 * A stream's features: a series of per-day values (plain numbers for one channel, else one row
 * of a value per channel), or, for named features, one object keyed by name per time step
 * (told apart by the first element).
 */
function streamSeries(shape: FeatureShape, maxLength: number) {
  const multi = shape.channels > 1;
  const series = multi ? `rows of ${shape.channels} numbers` : "numbers";
  return z
    .custom<number[] | number[][] | NamedValues[]>((v) => Array.isArray(v), {
      message: `expected an array of ${sizeText(shape.window, maxLength)} ${series}${shape.names ? ", or of objects of named features" : ""}`,
    })
    .check((ctx) => {
      const v = ctx.value as unknown[];
      if (isNamedValues(v[0])) checkSteps(ctx, v, 1, maxLength);
      else if (multi) checkRows(ctx, v, FEATURES, shape.channels, shape.window, maxLength);
      else checkNumbers(ctx, v, FEATURES, shape.window, maxLength);
    });
}

const GUIDE = [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const GUIDE_NEXT = [0.2, 0.3, -0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1];
const repeated = (values: readonly number[], n: number) => Array.from({ length: n }, (_, i) => values[i % values.length]!);
const cents = (x: number) => Math.round(x * 100) / 100;
/** Daily closes for the examples: an index near 4,500 that drifts and wobbles, in cents. */
const closes = (n: number) => Array.from({ length: n }, (_, i) => Math.round(450_000 * Math.exp(0.0004 * i + 0.01 * Math.sin(i / 3))) / 100);
/** Daily bars around those closes, with the fields a bundle reads: each day opens near the close before and ranges 0.4 % beyond its open and close. */
function barsExample(n: number, inputs: readonly BarField[]): Bar[] {
  const close = closes(n + 1).slice(1);
  const before = closes(n);
  return close.map((c, i) => {
    const open = cents(before[i]! * (1 + 0.002 * Math.sin(i)));
    const bar: Bar = { open, high: cents(Math.max(open, c) * 1.004), low: cents(Math.min(open, c) * 0.996), close: c };
    if (!inputs.includes("open")) delete bar.open;
    return bar;
  });
}

// The examples answer as the default bundle (models/bundles/spx-return-1d) would.
const EXAMPLE_BUNDLE = { name: "spx-return-1d", version: "1.1.0", digest: "sha256:4c1f0e5b9a7d3c2e8f6a1b0d9c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e" };
const EXAMPLE_TARGET = { name: "log_return_1d", units: "percent log return, close to next close", horizon: 1 };
const EXAMPLE_INTERVAL = { level: 0.9, lower: -1.31, upper: 1.42 };

const bundleRef = z
  .object({ name: z.string(), version: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) })
  .meta({ example: EXAMPLE_BUNDLE });
const target = z
  .object({ name: z.string(), units: z.string(), horizon: horizonDays.meta({ description: "trading days from the last close seen to the close predicted" }) })
  .meta({ example: EXAMPLE_TARGET });
const interval = z
  .object({ level: z.number().gt(0).lt(1).meta({ description: "the interval's coverage" }), lower: z.number(), upper: z.number() })
  .meta({ example: EXAMPLE_INTERVAL });

export const errorSchema = z
  .object({
    error: z.string().meta({ description: "machine-readable code" }),
    message: z.string(),
    request_id: z.string(),
    fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    details: z.unknown().optional(),
  })
  .meta({ id: "Error" });

/**
 * An error status as the OpenAPI shows it: the Error schema and what the status means there.
 * (No example per status: @fastify/swagger drops whatever sits beside a $ref.)
 */
export const errorResponse = (description: string) => errorSchema.meta({ description });

const rateLimited = (units: string) => errorResponse(`the caller's ${units} for the window are spent (rate_limited); Retry-After says when the budget refills`);

/** What the prediction routes answer besides their result; the auth plugin adds 401 and 403 when they require credentials. */
export const predictErrors = {
  400: errorResponse(
    "malformed JSON (invalid_json), or a field missing, unknown or out of its bounds, or named features missing or unknown (validation_error): `fields` names each; " +
      "prices to a bundle of named features (features_required), or named features to a bundle that computes its features from prices (named_features_unsupported)",
  ),
  413: errorResponse("the body is larger than BODY_LIMIT bytes (payload_too_large)"),
  415: errorResponse("the body is not application/json (unsupported_media_type)"),
  422: errorResponse(
    "the model produced a non-finite value for these inputs (non_finite_prediction), or confidence was asked of a model imported without calibration data (no_intervals)",
  ),
  429: rateLimited("rows"),
  503: errorResponse(
    "unavailable (no bundle, or the model is not loaded), or overloaded: more than MAX_QUEUED_ROWS rows would be queued " +
      "(or MAX_STREAMS streams are open); Retry-After says when to try again",
  ),
};

/** What POST /admin/reload answers besides the new bundle (and the auth plugin's 401/403). */
export const reloadErrors = {
  400: errorResponse("the body is not JSON (invalid_json), or has fields (validation_error): send none, or {}"),
  409: errorResponse("another reload is running; this one was not started (reload_in_progress)"),
  415: errorResponse("not sent as Content-Type: application/json (unsupported_media_type)"),
  422: errorResponse(
    "the new bundle failed verification or warm-up on some worker, or took longer than RELOAD_TIMEOUT_MS; the old one keeps serving (bundle_rejected)",
  ),
  429: rateLimited("requests"),
  503: errorResponse("not every worker confirmed the swap (reload_incomplete), or access tokens cannot be verified now; retry"),
};

/** GET /models and /models/golden before any bundle loaded. */
export const noBundle = errorResponse("no bundle is loaded (GET /health says why)");

/** The 401 and 403 of a route that requires credentials; the 403 of an admin route only the host may call, and of /metrics closed on the API port. */
export const authErrors = {
  401: errorResponse(
    "no credentials (unauthorized), or a token refused: expired, not yet valid, for another audience or signer (invalid_token); " +
      "WWW-Authenticate says what the realm takes",
  ),
  403: errorResponse("credentials not accepted here: an unknown API key (forbidden), or a token without the route's scope (insufficient_scope)"),
  local: errorResponse("admin routes answer only clients on this host until ADMIN_API_KEY (or OAUTH_ISSUER) is set (forbidden)"),
  refused: errorResponse("the API requires credentials and METRICS_API_KEY is not set: /metrics is served to no one on this port (forbidden)"),
};


/** A field as /openapi.json shows it, for a documented branch whose validation is the request's own. */
const documentedAs = (json: Record<string, unknown>) => z.custom<unknown>(() => true).meta(json);

/**
 * The prediction routes' schemas for the bundle at start. `models`: the model_type values taken
 * (fixed at start). `intervals`: whether its models give
 * conformal intervals (an imported bundle without calibration data gives none: the document
 * then shows return_confidence as false only, and true is answered 422 no_intervals).
 */
export function apiSchemas(limits: Limits, shape: FeatureShape, models: readonly string[], defaultModel: string, intervals = true) {
  const served = z.enum(models as [string, ...string[]]);
  const modelType = served.default(defaultModel).meta({ description: `which model answers (default ${defaultModel})` });
  const modelName = (example: string) => served.meta({ example });
  const width = featureWidth(shape);
  const { names } = shape;
  const layout = names
    ? `${width} values, the named features in order`
    : shape.channels === 1
      ? `${shape.window} values, its last ${shape.window} days oldest first`
      : `${width} values: ${shape.window} days of each of ${shape.channels} channels (GET /models: features.channels), channel after channel, each oldest first`;
  const vectorText = (description: string) => `${description}: ${layout} (GET /models: features.names)`;
  const example = repeated(GUIDE, width);
  const named = (values: readonly number[]) => Object.fromEntries(names!.map((name, i) => [name, values[i % values.length]!]));
  const returnConfidence = z
    .boolean()
    .default(false)
    .meta(
      intervals
        ? { description: "add the conformal interval (calibrated out of sample) to each prediction" }
        : { enum: [false], description: "this bundle was imported without calibration data: it gives no intervals (true: 422 no_intervals)" },
    );
  const options = { model_type: modelType, return_confidence: returnConfidence };
  const namedText = names && `the bundle's ${names.length} features keyed by name, each exactly once: ${names.slice(0, 20).join(", ")}${names.length > 20 ? ", …" : ""}`;
  // Validated whatever the bundle at start (a reload may bring the other kind, which then says why it takes neither).
  const prices = (minItems: number, maxItems: number, description: string) => numbers(PRICES, minItems, maxItems, description);
  const minDays = shape.minPrices ?? 1;
  const bars = (maxDays: number) => z.custom<BarsInput>(() => true).check((ctx) => checkBars(ctx, ctx.value, minDays, maxDays));
  const anyFeatures = featureVector(width, names, vectorText("the bundle's feature vector"));
  // Bars are documented as a request of their own for a bundle that reads them. A bundle of closes
  // takes them too (it reads their closes), but says so in words only: JSON Schema cannot state
  // low ≤ close ≤ high, and a request the document allows must be one the server answers.
  const readsBars = takesBars(shape);
  const inputs = shape.inputs ?? ["close"];
  const barsNote = readsBars
    ? `Each bar needs ${barText(inputs)}; low ≤ open, close ≤ high (400 naming the bar otherwise). `
    : "Bars {open?, high, low, close} may be sent instead of prices (field bars, as for a bundle that reads them): their closes are used. ";
  const unfinished =
    "A bar (or price) for today's unfinished session is the caller's to send or not: the forecast treats it as a finished day.";
  const barsField = (maxDays: number, description: string) => documentedAs(barsDoc(inputs, minDays, maxDays, `${description} ${barsNote}${unfinished}`));

  const predictRequest = oneOfRequest(
    "Predict",
    { features: anyFeatures.optional(), prices: prices(minDays, MAX_PRICES, "daily closing prices").optional(), bars: bars(MAX_PRICES).optional(), ...options },
    [
      { id: "FeaturesRequest", fields: { features: numbers(FEATURES, width, width, vectorText("the bundle's feature vector")), ...options }, example: { features: example, model_type: defaultModel } },
      names
        ? { id: "NamedFeaturesRequest", fields: { features: documentedAs(namedDoc(names, namedText!)), ...options }, example: { features: named(GUIDE), model_type: defaultModel } }
        : readsBars
          ? {
              id: "BarsRequest",
              fields: { bars: barsField(MAX_PRICES, "daily bars, oldest first; the server computes the causal features of the last day."), ...options },
              example: { bars: barsExample(minDays, inputs), model_type: defaultModel, return_confidence: intervals },
            }
          : {
              id: "PricesRequest",
              fields: {
                prices: prices(minDays, MAX_PRICES, `daily closing prices, oldest first; the server computes the causal wavelet features of the last day. ${barsNote}${unfinished}`),
                ...options,
              },
              example: { prices: closes(minDays), model_type: defaultModel, return_confidence: intervals },
            },
    ],
  );

  const predictResponse = z
    .object({
      prediction: z.number().meta({ description: "in the target's units", example: 0.0417 }),
      model_type: modelName(defaultModel),
      bundle: bundleRef,
      target,
      confidence: interval.optional(),
      input: z.enum(INPUTS).meta({ description: "what the prediction was made from: features (a vector, or named), prices or bars" }),
      cached: z.boolean().meta({ description: "answered from this client's own earlier request (the cache is per API key, token subject or address)" }),
    })
    .meta({ id: "PredictResponse" });

  const batchRequest = z
    .object({
      samples: z
        .array(
          featureVector(width, names, vectorText("one feature vector"), {
            minDays,
            doc: readsBars
              ? {
                  type: "object",
                  properties: { bars: barsDoc(inputs, minDays, MAX_PRICES, `the daily bars to compute this sample's feature vector from (that of their last day), oldest first. ${barsNote.trim()}`) },
                  required: ["bars"],
                  additionalProperties: false,
                }
              : undefined,
          }),
        )
        .min(1)
        .max(limits.maxBatchSamples)
        .meta({ description: `one feature vector per sample${names ? "" : `, or {bars}: the daily bars to compute it from${readsBars ? "" : " (their closes)"}`}` }),
      model_type: modelType,
      return_confidence: returnConfidence,
    })
    .strict()
    .meta({
      id: "BatchRequest",
      example: {
        samples: [example, names ? named(GUIDE_NEXT) : readsBars ? { bars: barsExample(minDays, inputs) } : repeated(GUIDE_NEXT, width)],
        model_type: defaultModel,
        return_confidence: intervals,
      },
    });

  const batchResponse = z
    .object({
      predictions: z.array(z.number()).meta({ description: "one per sample, in order", example: [0.0417, 0.0529] }),
      count: z.number().int().min(1).max(limits.maxBatchSamples).meta({ example: 2 }),
      model_type: modelName(defaultModel),
      bundle: bundleRef,
      target,
      confidence: z
        .object({ level: z.number().gt(0).lt(1), lower: z.array(z.number()), upper: z.array(z.number()) })
        .optional()
        .meta({ example: { level: 0.9, lower: [-1.31, -1.29], upper: [1.42, 1.44] } }),
    })
    .meta({ id: "BatchResponse" });

  // A stream's per-day values: plain numbers for one channel (as the API always took), else one row per day.
  const multi = shape.channels > 1;
  const windowSize = (min: number, description: string) => z.number().int().min(min).max(limits.maxStreamLength).optional().meta({ description });
  const seriesWindow = windowSize(
    shape.window,
    `${names ? "values" : "days"} per window, at least the bundle's window (${shape.window}, the default). One prediction per window of ` +
      `window_size consecutive ${names ? "values" : `days of features (${multi ? "rows" : "values"}; with prices or bars: per day that has window_size days of features behind it)`}; ` +
      `the model sees the window's last ${shape.window} ${names ? "values as its feature vector" : `days${multi ? " of each channel" : ""}`}, so a larger window_size only starts the ` +
      "predictions later: with features, prediction `index` i is for the window features[i .. i+window_size-1], " +
      "i.e. for the day of features[i+window_size-1]. A window_size longer than the series gives no predictions, " +
      "only the done line (count 0).",
  );
  const series = multi
    ? documentedAs({
        type: "array",
        minItems: shape.window,
        maxItems: limits.maxStreamLength,
        items: { type: "array", minItems: shape.channels, maxItems: shape.channels, items: { type: "number", ...FEATURES } },
        description:
          `the bundle's per-day channel values, one row per day, oldest first, each row one value per channel in the order of GET /models features.channels; ` +
          "each window of window_size days is one feature vector",
      })
    : numbers(
        FEATURES,
        shape.window,
        limits.maxStreamLength,
        names
          ? "a series of values; each window of window_size values ends in one feature vector, its last values in the order of GET /models features.names"
          : "a series of the bundle's per-day feature values; each window of window_size values is one feature vector",
      );
  const seriesExample = multi ? Array.from({ length: shape.window }, (_, d) => repeated(GUIDE.slice(d), shape.channels)) : repeated(GUIDE, shape.window);
  const streamRequest = oneOfRequest(
    "Stream",
    {
      features: streamSeries(shape, limits.maxStreamLength).optional(),
      prices: prices(minDays, limits.maxStreamLength, "daily closes").optional(),
      bars: bars(limits.maxStreamLength).optional(),
      window_size: windowSize(1, "days, values or time steps per window"),
      ...options,
    },
    [
      { id: "FeaturesRequest", fields: { features: series, window_size: seriesWindow, ...options }, example: { features: seriesExample, window_size: shape.window, model_type: defaultModel } },
      names
        ? {
            id: "NamedFeaturesRequest",
            fields: {
              features: documentedAs({ type: "array", minItems: 1, maxItems: limits.maxStreamLength, items: namedDoc(names, namedText!), description: "one object of named features per time step, oldest first" }),
              window_size: windowSize(
                1,
                "time steps per window (default 1): one prediction per window of window_size consecutive objects, from the window's last object, " +
                  "so a larger window_size only starts the predictions later (prediction `index` i is for features[i+window_size-1])",
              ),
              ...options,
            },
            example: { features: [named(GUIDE), named(GUIDE_NEXT)], model_type: defaultModel },
          }
        : readsBars
          ? {
              id: "BarsRequest",
              fields: { bars: barsField(limits.maxStreamLength, "daily bars, oldest first; one prediction per day that has enough history."), window_size: seriesWindow, ...options },
              example: { bars: barsExample(minDays + 4, inputs), model_type: defaultModel },
            }
          : {
              id: "PricesRequest",
              fields: {
                prices: prices(minDays, limits.maxStreamLength, `daily closes; one prediction per day that has enough history. ${barsNote}${unfinished}`),
                window_size: seriesWindow,
                ...options,
              },
              example: { prices: closes(minDays + 4), model_type: defaultModel },
            },
    ],
    (body, ctx) => {
      const steps = Array.isArray(body.features) && isNamedValues(body.features[0]);
      if (!steps && body.window_size !== undefined && body.window_size < shape.window) {
        ctx.addIssue({ code: "custom", message: `must be at least the bundle's window (${shape.window})`, path: ["window_size"] });
      }
    },
  );

  return { predictRequest, predictResponse, batchRequest, batchResponse, streamRequest };
}

export const streamItem = z
  .object({ index: z.number().int().nonnegative().meta({ example: 0 }), prediction: z.number().meta({ example: 0.0417 }), confidence: interval.optional() })
  .meta({ id: "StreamItem", description: "one line of the NDJSON stream (or the data of one SSE `prediction` event)" });

// What a line or an event's data holds, as JSON Schema's contentSchema (OpenAPI 3.1 has no
// item schema for a stream; 3.2's itemSchema is one).
const streamed = { contentSchema: { $ref: "#/components/schemas/StreamItem" } };

/**
 * POST /predict/stream's two formats; their lines and events carry StreamItem. Server-Sent Events
 * first: Swagger UI's Try it out asks for the first, and it parses anything called *json* as one
 * JSON document, which an NDJSON stream is not.
 */
export const streamFormats = {
  "text/event-stream": {
    schema: z.string().meta({
      description: "`prediction` events (data: a StreamItem), then `done` (or `error`)",
      ...streamed,
      example: 'event: prediction\ndata: {"index":0,"prediction":0.0417}\n\nevent: done\ndata: {"done":true,"count":1}\n\n',
    }),
  },
  "application/x-ndjson": {
    schema: z.string().meta({
      description: 'the default: one StreamItem per line, then {"done":true,"count":n} (or an Error line)',
      ...streamed,
      example: '{"index":0,"prediction":0.0417}\n{"done":true,"count":1}\n',
    }),
  },
};

/** GET /metrics: Prometheus's text exposition format. */
export const prometheusText = {
  "text/plain; version=0.0.4": {
    schema: z.string().meta({
      description: "Prometheus text exposition format 0.0.4",
      example: '# HELP model_bundle_ready 1 when every configured model is loaded\n# TYPE model_bundle_ready gauge\nmodel_bundle_ready 1\n',
    }),
  },
};

export const healthResponse = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    reasons: z.array(z.string()).meta({ description: "why not ready; empty when ready" }),
    bundle: bundleRef.optional(),
    models: z.record(z.string(), z.enum(["loaded", "loading", "not_loaded"])).meta({ example: { xgboost: "loaded", lstm: "loaded", transformer: "loaded", ensemble: "loaded" } }),
    loading: z.enum(["eager", "lazy"]),
    uptime_seconds: z.number().int().nonnegative().meta({ example: 3600 }),
    last_reload: z
      .object({ at: z.string().meta({ example: "2026-11-28T09:30:00.000Z" }), ok: z.boolean(), bundle: bundleRef.optional(), error: z.string().optional() })
      .optional(),
  })
  .meta({ id: "Health" });

export const modelsResponse = z
  .object({
    bundle: bundleRef.extend({ created: z.string(), description: z.string().optional() }),
    target: z.record(z.string(), z.unknown()),
    features: z.union([
      z.object({
        kind: z.literal("computed").meta({ description: "the server computes the features from prices or bars (or takes the vector)" }),
        names: z.array(z.string()),
        window: z.number().meta({ description: "days of lags per channel; a feature vector has window × channels values" }),
        channels: z.array(z.string()).meta({ description: "the per-day channels, in feature-vector order" }),
        min_prices: z.number().meta({ description: "days (prices or bars) one feature vector needs" }),
        inputs: z
          .array(z.enum(BAR_FIELDS))
          .meta({ description: 'what each day carries: ["close"] (send prices, or bars: their closes are used), or the bar fields the bundle reads (send bars)' }),
        series: z.string().meta({ description: "what the denoised channel (dn_ret / dn_sq) denoises" }),
        energy: z.object({ levels: z.number(), span: z.number() }).optional().meta({ description: "MODWT energy channels (wav_*): detail levels and days averaged" }),
        garch: z
          .object({ kind: z.string(), omega: z.number(), alpha: z.number(), gamma: z.number(), beta: z.number(), trailing: z.number(), horizon: z.number() })
          .optional()
          .meta({ description: "the gjr_vol channel's GJR-GARCH(1,1,1) parameters (fit on the training window), returns per recursion and forecast days" }),
        range: z
          .object({ estimator: z.string(), log_floor: z.number(), stale_open_rtol: z.number(), levels: z.number() })
          .optional()
          .meta({ description: "the range channels' (rng_*) daily variance estimator, the floor of its logs, the stale-open tolerance and the MODWT levels" }),
        garchx: z
          .object({
            kind: z.string(),
            omega: z.number(),
            alpha: z.number(),
            gamma: z.number(),
            beta: z.number(),
            delta: z.number(),
            kappa: z.number(),
            span: z.number(),
            trailing: z.number(),
            horizon: z.number(),
          })
          .optional()
          .meta({ description: "the gjrx_vol channel's GJR-GARCH-X parameters: GJR's, delta and kappa of the range term, days it averages, returns per recursion and forecast days" }),
      }),
      z.object({
        kind: z.literal("named").meta({ description: "an imported bundle: the caller sends the features, as the vector or keyed by name" }),
        names: z.array(z.string()).meta({ description: "the features in vector order: a vector's values in this order, or an object keyed by these names" }),
        sequence_length: z.number().meta({ description: "time steps a sequence model reads the vector as (names.length / sequence_length features each, oldest first)" }),
      }),
    ]),
    default_model: z.string(),
    models: z.array(
      z.object({
        name: z.string(),
        file: z.string(),
        sha256: z.string(),
        precision: z.string(),
        status: z.enum(["loaded", "loading", "not_loaded", "not_configured"]),
        load_seconds: z.number().optional(),
        confidence_level: z.number().optional().meta({ description: "its intervals' coverage; absent when it gives none (imported without calibration data)" }),
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
      z.union([
        z.object({
          name: z.string(),
          prices: z.array(z.number()),
          expected: z.record(z.string(), z.number()).meta({ description: "per served model, the prediction for the last day (POST /predict with these prices)" }),
        }),
        z.object({
          name: z.string(),
          bars: barColumnsSchema.meta({ description: "daily bars as columns, as POST /predict takes them (a bundle that reads bars)" }),
          expected: z.record(z.string(), z.number()).meta({ description: "per served model, the prediction for the last day (POST /predict with these bars)" }),
        }),
        z.object({
          name: z.string(),
          features: z.array(z.number()),
          expected: z.record(z.string(), z.number()).meta({ description: "per served model, the original framework's prediction (POST /predict with these features)" }),
        }),
      ]),
    ),
  })
  .meta({ id: "Golden" });

export const reloadResponse = z
  .object({
    reloaded: z.boolean(),
    bundle: bundleRef,
    previous: bundleRef.optional(),
    workers: z.number().int().min(1).meta({ description: "processes now serving the bundle (WORKERS)", example: 2 }),
    seconds: z.number().meta({ example: 1.84 }),
  })
  .meta({ id: "Reload" });
