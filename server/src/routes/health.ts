import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { heldModels } from "../inference/bundle.js";
import type { ModelRegistry } from "../inference/registry.js";
import "../plugins/context.js";
import { unavailable } from "../plugins/errors.js";
import type { Features } from "../schemas/manifest.js";
import { goldenResponse, healthResponse, modelsResponse, noBundle } from "../schemas/api.js";

export interface HealthRoutesOptions {
  registry: ModelRegistry;
  loading: "eager" | "lazy";
  startedAt: number;
  shuttingDown: () => boolean;
}

/** The manifest's feature settings that say what a client sends and how the server computes it. */
function featuresShown(f: Features) {
  if (f.kind === "named") return { kind: "named" as const, names: f.names, sequence_length: f.sequence_length };
  return {
    kind: "computed" as const,
    names: f.names,
    window: f.window,
    channels: f.channels,
    min_prices: f.min_prices,
    inputs: [...f.inputs],
    series: f.series,
    ...(f.energy ? { energy: { levels: f.energy.levels, span: f.energy.span } } : {}),
    ...(f.garch
      ? { garch: { kind: f.garch.kind, omega: f.garch.omega, alpha: f.garch.alpha, gamma: f.garch.gamma, beta: f.garch.beta, trailing: f.garch.trailing, horizon: f.garch.horizon } }
      : {}),
    ...(f.range ? { range: { estimator: f.range.estimator, log_floor: f.range.log_floor, stale_open_rtol: f.range.stale_open_rtol, levels: f.range.levels } } : {}),
    ...(f.garchx
      ? {
          garchx: {
            kind: f.garchx.kind,
            omega: f.garchx.omega,
            alpha: f.garchx.alpha,
            gamma: f.garchx.gamma,
            beta: f.garchx.beta,
            delta: f.garchx.delta,
            kappa: f.garchx.kappa,
            span: f.garchx.span,
            trailing: f.garchx.trailing,
            horizon: f.garchx.horizon,
          },
        }
      : {}),
  };
}

export async function healthRoutes(app: FastifyInstance, opts: HealthRoutesOptions) {
  const { registry } = opts;
  const api = app.withTypeProvider<ZodTypeProvider>();
  const servedBundle = () => {
    const serving = registry.serving;
    if (!serving) throw unavailable("no bundle loaded", registry.readiness().reasons);
    return serving.bundle;
  };

  api.get(
    "/health",
    {
      schema: {
        summary: "Ready when every configured model is loaded, verified and warmed",
        description: "200 when ready; 503 with reasons otherwise (also while shutting down). Reports the bundle name, version and digest.",
        tags: ["operations"],
        response: {
          200: healthResponse.meta({ description: "ready: every configured model is loaded, verified and warmed" }),
          503: healthResponse.meta({ description: "not ready (reasons says why), or shutting down" }),
        },
      },
    },
    async (_request, reply) => {
      const { ready, reasons } = registry.readiness();
      if (opts.shuttingDown()) reasons.push("shutting down");
      const serving = registry.serving;
      const models = Object.fromEntries(
        (serving?.bundle.options.models ?? []).map((m) => [m, serving!.bundle.status(m)] as const),
      );
      void reply.status(ready && !opts.shuttingDown() ? 200 : 503);
      return {
        status: reply.statusCode === 200 ? ("ok" as const) : ("unavailable" as const),
        reasons,
        ...(serving ? { bundle: { name: serving.bundle.name, version: serving.bundle.version, digest: serving.bundle.digest } } : {}),
        models,
        loading: opts.loading,
        uptime_seconds: Math.round((Date.now() - opts.startedAt) / 1000),
        ...(registry.lastReload ? { last_reload: registry.lastReload } : {}),
      };
    },
  );

  api.get(
    "/livez",
    {
      schema: {
        summary: "Liveness: the process answers",
        tags: ["operations"],
        response: { 200: z.object({ status: z.literal("alive") }).meta({ description: "the process answers (it may not be ready: GET /health)" }) },
      },
    },
    async () => ({ status: "alive" as const }),
  );

  // What the bundle is and answers belongs to those who may ask it (the operator's analysis sends its key).
  const predictRealm = { auth: "predict" as const };
  api.get(
    "/models/golden",
    {
      config: predictRealm,
      schema: {
        summary: "The bundle's golden cases: prices or bars (or, for named features, feature vectors) and the predictions this server must answer for them",
        description:
          "From the bundle's vectors/parity.json (verified against the manifest). The operator's analysis sends each case to POST /predict on a new colour and compares the answers before it switches traffic. " +
          "A bundle that computes its features gives each case's prices (or bars, as columns) and the prediction for its last day; an imported bundle one case per feature row, with the original framework's predictions.",
        tags: ["models"],
        response: { 200: goldenResponse.meta({ description: "the served bundle's golden cases" }), 503: noBundle },
      },
    },
    async () => {
      const bundle = servedBundle();
      return { bundle: { name: bundle.name, version: bundle.version, digest: bundle.digest }, cases: await bundle.golden() };
    },
  );

  api.get(
    "/models",
    {
      config: predictRealm,
      schema: {
        summary: "The bundle being served: models, versions, digests and out-of-sample metrics",
        tags: ["models"],
        response: { 200: modelsResponse.meta({ description: "the served bundle, its models and their metrics" }), 503: noBundle },
      },
    },
    async () => {
      const bundle = servedBundle();
      const m = bundle.manifest;
      const evaluation = (m as { evaluation?: { models?: Record<string, Record<string, number>> } & Record<string, unknown> }).evaluation;
      return {
        bundle: { name: bundle.name, version: bundle.version, digest: bundle.digest, created: m.created, description: (m as { description?: string }).description },
        target: m.target,
        features: featuresShown(m.features),
        default_model: m.default_model,
        // Every model it holds (an imported bundle, those its user had), served or not.
        models: heldModels(m).map((name) => {
          const loaded = bundle.loadedModel(name);
          const entry = loaded?.entry ?? m.models[name]!;
          return {
            name,
            file: entry.file,
            sha256: entry.sha256,
            precision: entry.precision,
            status: bundle.isConfigured(name) ? bundle.status(name) : ("not_configured" as const),
            ...(loaded ? { load_seconds: loaded.loadSeconds } : {}),
            ...(entry.calibration ? { confidence_level: entry.calibration.level } : {}),
            ...(evaluation?.models?.[name] ? { metrics: evaluation.models[name] } : {}),
          };
        }),
        ...(evaluation ? { evaluation: { period: evaluation.period, baselines: evaluation.baselines, primary_metric: evaluation.primary_metric } } : {}),
      };
    },
  );
}
