import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { PredictionCache } from "../plugins/cache.js";
import { unavailable } from "../plugins/errors.js";
import type { ModelType } from "../inference/bundle.js";
import type { ModelRegistry, Serving } from "../inference/registry.js";
import {
  type Predictor,
  type Rows,
  rowFromPrices,
  rowsFromPrices,
  rowsFromSeries,
  rowsFromVectors,
} from "../inference/predictor.js";
import "../plugins/context.js";
import { apiSchemas, errorSchema, type FeatureShape, type Limits } from "../schemas/api.js";

export interface PredictRoutesOptions {
  registry: ModelRegistry;
  predictor: Predictor;
  cache: PredictionCache;
  limits: Limits;
  shape: FeatureShape;
  defaultModel: ModelType;
}

// Stream rows go through the model this many at a time: small enough that the first lines
// leave at once and the event loop stays responsive, large enough to batch well.
const STREAM_CHUNK = 64;

/** The bundle to serve `model` from, held until the response is done (a reload may swap it meanwhile). */
function enter(registry: ModelRegistry, model: ModelType): Serving {
  const serving = registry.serving;
  if (!serving) throw unavailable("no bundle loaded", registry.readiness().reasons);
  if (!serving.bundle.isConfigured(model)) throw unavailable(`Model ${model} not loaded`);
  serving.enter();
  return serving;
}

/** Run `fn` on the bundle serving `model`, holding it for the duration. */
async function withServing<T>(registry: ModelRegistry, model: ModelType, fn: (serving: Serving) => Promise<T>): Promise<T> {
  const serving = enter(registry, model);
  try {
    return await fn(serving);
  } finally {
    serving.leave();
  }
}

export async function predictRoutes(app: FastifyInstance, opts: PredictRoutesOptions) {
  const { registry, predictor, cache, limits } = opts;
  const s = apiSchemas(limits, opts.shape, opts.defaultModel);
  const api = app.withTypeProvider<ZodTypeProvider>();
  const errors = {
    400: errorSchema,
    401: errorSchema,
    403: errorSchema,
    413: errorSchema,
    415: errorSchema,
    422: errorSchema.meta({ description: "the model produced a non-finite value for these inputs" }),
    429: errorSchema,
    503: errorSchema,
  };
  const common = {
    config: { auth: "predict" as const, budget: "predict" as const },
  };
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
        summary: "One prediction from a feature vector or from raw prices",
        tags: ["predict"],
        body: s.predictRequest,
        response: { 200: s.predictResponse, ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      const model = body.model_type;
      return withServing(registry, model, async (serving) => {
        const rows = body.features ? rowsFromVectors(serving.bundle, [body.features]) : rowFromPrices(serving.bundle, body.prices!);
        const key = cache.enabled ? PredictionCache.key(serving.bundle.entry(model).sha256, rows.data) : undefined;
        const hit = key === undefined ? undefined : await cache.get(key);
        let values: Float64Array;
        if (hit === undefined) {
          values = (await predictor.predict(serving, model, rows, false)).values;
          if (key !== undefined) cache.set(key, values[0]!);
        } else {
          values = Float64Array.of(hit);
          predictor.observe(serving.bundle, model, values);
        }
        const interval = body.return_confidence ? intervalAt(predictor.intervals(serving, model, rows, values), 0) : undefined;
        return {
          prediction: values[0]!,
          model_type: model,
          bundle: bundleRef(serving),
          target: target(serving),
          ...(interval ? { confidence: interval } : {}),
          input: body.features ? ("features" as const) : ("prices" as const),
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
        summary: "Predictions for many feature vectors in one ONNX run",
        tags: ["predict"],
        body: s.batchRequest,
        response: { 200: s.batchResponse, ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      return withServing(registry, body.model_type, async (serving) => {
        const rows = rowsFromVectors(serving.bundle, body.samples);
        const out = await predictor.predict(serving, body.model_type, rows, body.return_confidence);
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
        rows: (body: z.infer<typeof s.streamRequest>) =>
          body.features ? body.features.length - opts.shape.window + 1 : body.prices!.length - opts.shape.minPrices + 1,
      },
      schema: {
        summary: "One prediction per sliding window, streamed as they are computed",
        description:
          "NDJSON (application/x-ndjson) by default: one StreamItem per line, then {\"done\":true,\"count\":n}. " +
          "With Accept: text/event-stream, Server-Sent Events: `prediction` events, then a `done` event. " +
          "A client that disconnects stops the computation.",
        tags: ["predict"],
        body: s.streamRequest,
        response: {
          200: {
            description: "the stream",
            content: {
              "application/x-ndjson": { schema: z.string().meta({ description: "StreamItem lines, then a done line" }) },
              "text/event-stream": { schema: z.string().meta({ description: "`prediction` events (StreamItem), then `done`" }) },
            },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const serving = enter(registry, body.model_type);
      let rows: Rows;
      try {
        const bundle = serving.bundle;
        rows = body.features ? rowsFromSeries(bundle, body.features) : rowsFromPrices(bundle, body.prices!);
        await serving.runner(body.model_type); // fail before the 200 if the model cannot load
      } catch (error) {
        serving.leave();
        throw error;
      }
      const sse = (request.headers.accept ?? "").includes("text/event-stream");
      const format = sse
        ? (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
        : (_event: string, data: unknown) => `${JSON.stringify(data)}\n`;
      const w = serving.bundle.window;
      // Released when the generator ends or the stream closes, whichever comes first (a
      // client gone before the first line never runs the generator's finally).
      let held = true;
      const release = () => {
        if (held) serving.leave();
        held = false;
      };

      async function* lines(): AsyncGenerator<string> {
        try {
          for (let start = 0; start < rows.n; start += STREAM_CHUNK) {
            const n = Math.min(STREAM_CHUNK, rows.n - start);
            const chunk = { data: rows.data.subarray(start * w, (start + n) * w), n };
            const out = await predictor.predict(serving, body.model_type, chunk, body.return_confidence);
            for (let i = 0; i < n; i++) {
              const item = { index: start + i, prediction: out.values[i]!, ...(out.interval ? { confidence: intervalAt(out.interval, i) } : {}) };
              yield format("prediction", item);
            }
          }
          yield format("done", { done: true, count: rows.n });
        } finally {
          release();
        }
      }

      void reply
        .type(sse ? "text/event-stream" : "application/x-ndjson")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no");
      const stream = Readable.from(lines(), { objectMode: false, highWaterMark: 16 * 1024 });
      stream.once("close", release);
      return reply.send(stream as never); // a stream, not the JSON the route schema describes
    },
  );
}

function intervalAt(interval: { level: number; lower: Float64Array; upper: Float64Array }, i: number) {
  return { level: interval.level, lower: interval.lower[i]!, upper: interval.upper[i]! };
}
