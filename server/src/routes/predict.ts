import { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { PredictionCache } from "../plugins/cache.js";
import { AppError, errorBody, unavailable } from "../plugins/errors.js";
import type { Metrics } from "../plugins/metrics.js";
import { clientOf } from "../plugins/rateLimit.js";
import type { ModelType } from "../inference/bundle.js";
import type { ModelRegistry, Serving } from "../inference/registry.js";
import { calibrationOf, type History, historyRows, type Predictor, type RowSource, rowFromHistory, rowsFromFeatures, seriesRows, stepRows } from "../inference/predictor.js";
import "../plugins/context.js";
import { apiSchemas, type FeatureShape, isNamedValues, type Limits, type NamedValues, predictErrors, streamFormats } from "../schemas/api.js";
import { type BarsInput, daysOf } from "../schemas/bars.js";
import { REFUSED_INPUT } from "../schemas/numbers.js";

export interface PredictRoutesOptions {
  registry: ModelRegistry;
  predictor: Predictor;
  cache: PredictionCache;
  limits: Limits;
  streams: StreamLimits;
  metrics: Metrics;
  shape: FeatureShape;
  /** The model_type values taken (fixed at start): the models served, and with MODELS set the guide's four. */
  modelTypes: readonly ModelType[];
  defaultModel: ModelType;
  /** Whether the bundle at start gives intervals (its models are calibrated): the document says so. */
  intervals: boolean;
}

export interface StreamLimits {
  /** MAX_STREAMS */
  max: number;
  /** Rows computed, run and written per step (MICRO_BATCH_MAX, the scheduler's run size). */
  chunkRows: number;
  /** STREAM_STALL_TIMEOUT_MS */
  stallMs: number;
  /** STREAM_IDLE_TIMEOUT_MS */
  idleMs: number;
}

/** Whether the client went away before its response was complete: its queued rows are then dropped. */
function abandonment(reply: FastifyReply): () => boolean {
  let gone = false;
  reply.raw.once("close", () => {
    gone = !reply.raw.writableFinished;
  });
  return () => gone;
}

/** The bundle to serve `model` from, held until the response is done (a reload may swap it meanwhile). */
function enter(registry: ModelRegistry, model: ModelType): Serving {
  const serving = registry.serving;
  if (!serving) throw unavailable("no bundle loaded", registry.readiness().reasons);
  if (!serving.bundle.isConfigured(model)) throw unavailable(`Model ${model} not loaded`);
  serving.enter();
  return serving;
}

/**
 * Run `fn` on the bundle serving `model`, holding it for the duration. Asked for intervals, a
 * model without calibration fails first (422), before any work.
 */
async function withServing<T>(registry: ModelRegistry, model: ModelType, intervals: boolean, fn: (serving: Serving) => Promise<T>): Promise<T> {
  const serving = enter(registry, model);
  try {
    if (intervals) calibrationOf(serving.bundle, model);
    return await fn(serving);
  } finally {
    serving.leave();
  }
}

export async function predictRoutes(app: FastifyInstance, opts: PredictRoutesOptions) {
  const { registry, predictor, cache, limits } = opts;
  const s = apiSchemas(limits, opts.shape, opts.modelTypes, opts.defaultModel, opts.intervals);
  const api = app.withTypeProvider<ZodTypeProvider>();
  const common = {
    config: { auth: "predict" as const, budget: "predict" as const },
  };
  // Predictions are per request and may be confidential: no cache, shared or private, keeps them.
  app.addHook("onRequest", (_request, reply, done) => {
    void reply.header("cache-control", "no-store");
    done();
  });
  // Input drift: numbers refused at validation as non-finite or out of bounds.
  app.addHook("onError", async (request, _reply, error) => {
    if (!error.validation?.some((v) => (v.params as { params?: Record<string, unknown> } | undefined)?.params?.[REFUSED_INPUT])) return;
    const given = (request.body as { model_type?: unknown } | undefined)?.model_type;
    const model = opts.modelTypes.find((m) => m === given) ?? opts.defaultModel;
    opts.metrics.inputsOutOfRange.inc({ model, reason: "refused" });
  });
  let openStreams = 0;
  const bundleRef = (serving: Serving) => ({
    name: serving.bundle.name,
    version: serving.bundle.version,
    digest: serving.bundle.digest,
  });
  const target = (serving: Serving) => {
    const t = serving.bundle.manifest.target;
    return { name: t.name, units: t.units, horizon: t.horizon };
  };

  api.post(
    "/predict",
    {
      ...common,
      schema: {
        summary: "One prediction from a feature vector (or, for an imported bundle, features keyed by name) or from raw prices or daily bars",
        tags: ["predict"],
        body: s.predictRequest,
        response: { 200: s.predictResponse.meta({ description: "the prediction, with the bundle and target that gave it" }), ...predictErrors },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const model = body.model_type;
      return withServing(registry, model, body.return_confidence, async (serving) => {
        // Named features become the vector in the bundle's order: the same features, the same cache entry.
        const rows = body.features ? rowsFromFeatures(serving.bundle, [body.features], () => "features") : rowFromHistory(serving.bundle, ...historyOf(body));
        const key = cache.enabled ? PredictionCache.key(clientOf(request), serving.bundle.entry(model).sha256, rows.data) : undefined;
        const hit = key === undefined ? undefined : await cache.get(key);
        let values: Float64Array;
        if (hit === undefined) {
          values = (await predictor.predict(serving, model, rows, false, abandonment(reply))).values;
          if (key !== undefined) cache.set(key, values[0]!);
        } else {
          values = Float64Array.of(hit);
          predictor.observeInputs(serving.bundle, model, rows);
          predictor.observe(serving.bundle, model, values);
        }
        const interval = body.return_confidence ? intervalAt(predictor.intervals(serving, model, rows, values), 0) : undefined;
        return {
          prediction: values[0]!,
          model_type: model,
          bundle: bundleRef(serving),
          target: target(serving),
          ...(interval ? { confidence: interval } : {}),
          input: body.features ? ("features" as const) : body.prices ? ("prices" as const) : ("bars" as const),
          cached: hit !== undefined,
        };
      });
    },
  );

  api.post(
    "/predict/batch",
    {
      ...common,
      config: { ...common.config, rows: (body: z.infer<typeof s.batchRequest>) => body.samples.length },
      schema: {
        summary: "Predictions for many feature vectors (or, for an imported bundle, features keyed by name; or bars to compute them from) in one ONNX run",
        tags: ["predict"],
        body: s.batchRequest,
        response: { 200: s.batchResponse.meta({ description: "one prediction per sample, in order, from one model run" }), ...predictErrors },
      },
    },
    async (request, reply) => {
      const body = request.body;
      return withServing(registry, body.model_type, body.return_confidence, async (serving) => {
        const rows = rowsFromFeatures(serving.bundle, body.samples, (i) => `samples[${i}]`);
        const out = await predictor.predict(serving, body.model_type, rows, body.return_confidence, abandonment(reply));
        return {
          predictions: Array.from(out.values),
          count: rows.n,
          model_type: body.model_type,
          bundle: bundleRef(serving),
          target: target(serving),
          ...(out.interval
            ? { confidence: { level: out.interval.level, lower: Array.from(out.interval.lower), upper: Array.from(out.interval.upper) } }
            : {}),
        };
      });
    },
  );

  api.post(
    "/predict/stream",
    {
      ...common,
      // The rows it will predict, known from the lengths alone (before any feature work).
      config: {
        ...common.config,
        rows: (body: z.infer<typeof s.streamRequest>) => {
          // One per time step of named features, a window_size above 1 starting them that much later.
          if (namedSteps(body.features)) return Math.max(0, body.features.length - (body.window_size ?? 1) + 1);
          // A window_size above the bundle's window starts the predictions that much later.
          const { window, minPrices = 0 } = opts.shape;
          const later = (body.window_size ?? window) - window;
          const days = body.features?.length ?? body.prices?.length ?? daysOf(body.bars!);
          return Math.max(0, (body.features ? days - window + 1 : days - minPrices + 1) - later);
        },
      },
      schema: {
        summary: "One prediction per sliding window, streamed as they are computed",
        description:
          "The features are a series (one window of window_size values or days per prediction), or, for an imported bundle, one object " +
          "of named features per time step; or prices or daily bars, one prediction per day with enough history. " +
          "NDJSON (application/x-ndjson) by default: one StreamItem per line, then {\"done\":true,\"count\":n}. " +
          "With Accept: text/event-stream, Server-Sent Events: `prediction` events, then a `done` event. " +
          "The headers X-Bundle-Name, X-Bundle-Version and X-Bundle-Digest name the bundle that computes the whole stream " +
          "(a reload meanwhile does not change it). An error after the first line ends the stream with an Error line " +
          "({\"error\":code,\"message\":...,\"request_id\":...}), or an `error` event, instead of the done line. " +
          "A client that disconnects stops the computation; one that reads nothing for STREAM_STALL_TIMEOUT_MS is cut. " +
          "Beyond MAX_STREAMS open streams, 503 overloaded with Retry-After.",
        tags: ["predict"],
        body: s.streamRequest,
        response: {
          200: { description: "the predictions as they are computed, as NDJSON or (Accept: text/event-stream) Server-Sent Events", content: streamFormats },
          ...predictErrors,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      if (openStreams >= opts.streams.max) {
        throw new AppError(503, "overloaded", `${openStreams} streams are open, the most this server takes; retry later`, undefined, undefined, {
          "retry-after": "1",
        });
      }
      const serving = enter(registry, body.model_type);
      let source: RowSource;
      try {
        const bundle = serving.bundle;
        if (body.return_confidence) calibrationOf(bundle, body.model_type);
        const features = body.features;
        if (namedSteps(features)) source = stepRows(bundle, features, body.window_size ?? 1);
        else {
          const windowSize = body.window_size ?? bundle.window;
          source = features ? seriesRows(bundle, features, windowSize) : historyRows(bundle, ...historyOf(body), windowSize);
        }
        await serving.runner(body.model_type); // fail before the 200 if the model cannot load
      } catch (error) {
        serving.leave();
        throw error;
      }
      openStreams++;
      const sse = (request.headers.accept ?? "").includes("text/event-stream");
      const format = sse
        ? (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
        : (_event: string, data: unknown) => `${JSON.stringify(data)}\n`;
      const abandoned = abandonment(reply);
      // When the generator last stopped at a yield for the client to take its lines.
      let waitingSince: number | undefined;
      // Released when the generator ends or the stream closes, whichever comes first (a
      // client gone before the first line never runs the generator's finally).
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        openStreams--;
        clearInterval(watchdog);
        serving.leave();
      };

      async function* lines(): AsyncGenerator<string> {
        try {
          // A chunk at a time: its features, its run (queued fairly with every other
          // request), its lines; then the client's pace decides when the next one starts.
          for (let start = 0; start < source.n; start += opts.streams.chunkRows) {
            const n = Math.min(opts.streams.chunkRows, source.n - start);
            const out = await predictor.predict(serving, body.model_type, source.rows(start, n), body.return_confidence, abandoned);
            let text = "";
            for (let i = 0; i < n; i++) {
              const item = { index: start + i, prediction: out.values[i]!, ...(out.interval ? { confidence: intervalAt(out.interval, i) } : {}) };
              text += format("prediction", item);
            }
            waitingSince = performance.now();
            yield text;
            waitingSince = undefined;
          }
          yield format("done", { done: true, count: source.n });
        } catch (error) {
          if (abandoned()) return;
          const { status, body: errorLine } = errorBody(error as AppError, request.id);
          if (status >= 500) request.log.error({ err: error }, "stream failed");
          else request.log.info({ status, error: errorLine.error }, errorLine.message);
          yield format("error", errorLine);
        } finally {
          release();
        }
      }

      const stream = Readable.from(lines(), { objectMode: false, highWaterMark: 16 * 1024 });
      stream.once("close", release);
      // A client that stops reading would otherwise hold the stream, and the bundle, forever.
      const { stallMs } = opts.streams;
      const watchdog =
        stallMs > 0
          ? setInterval(() => {
              if (waitingSince !== undefined && performance.now() - waitingSince > stallMs) {
                request.log.info({ stallMs }, "stream cut: the client stopped reading");
                reply.raw.destroy();
                stream.destroy();
              }
            }, Math.max(50, Math.min(1000, stallMs / 4))).unref()
          : undefined;
      if (opts.streams.idleMs > 0) reply.raw.setTimeout(opts.streams.idleMs, () => reply.raw.destroy());
      void reply
        .type(sse ? "text/event-stream" : "application/x-ndjson")
        .header("x-accel-buffering", "no")
        .header("x-bundle-name", serving.bundle.name)
        .header("x-bundle-version", serving.bundle.version)
        .header("x-bundle-digest", serving.bundle.digest);
      return reply.send(stream as never); // a stream, not the JSON the route schema describes
    },
  );
}

/** A request's history (prices or bars, whichever it sent) and how errors name it. */
const historyOf = (body: { prices?: readonly number[] | undefined; bars?: BarsInput | undefined }): [History, string] =>
  body.prices ? [{ prices: body.prices }, "prices"] : [{ bars: body.bars! }, "bars"];

/** A stream's features sent as named features, one object a time step (the schema checked that all are). */
const namedSteps = (features: readonly unknown[] | undefined): features is NamedValues[] => features !== undefined && isNamedValues(features[0]);

function intervalAt(interval: { level: number; lower: Float64Array; upper: Float64Array }, i: number) {
  return { level: interval.level, lower: interval.lower[i]!, upper: interval.upper[i]! };
}
