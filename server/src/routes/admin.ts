import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { BundleError } from "../inference/bundle.js";
import type { ModelRegistry } from "../inference/registry.js";
import { AppError } from "../plugins/errors.js";
import "../plugins/context.js";
import { errorSchema, reloadResponse } from "../schemas/api.js";

export interface AdminRoutesOptions {
  registry: ModelRegistry;
}

export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions) {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    "/admin/reload",
    {
      config: { auth: "admin", budget: "admin" },
      schema: {
        summary: "Atomically swap in the bundle now in MODEL_DIR (also on SIGHUP)",
        description: "The new bundle is verified and warmed first; if it fails, the old one keeps serving and the answer is 422.",
        tags: ["admin"],
        response: { 200: reloadResponse, 401: errorSchema, 403: errorSchema, 422: errorSchema, 503: errorSchema },
      },
    },
    async () => {
      const started = performance.now();
      const previous = opts.registry.serving?.bundle;
      try {
        const bundle = await opts.registry.reload();
        return {
          reloaded: true,
          bundle: { name: bundle.name, version: bundle.version, digest: bundle.digest },
          ...(previous ? { previous: { name: previous.name, version: previous.version, digest: previous.digest } } : {}),
          seconds: (performance.now() - started) / 1000,
        };
      } catch (error) {
        if (error instanceof BundleError) throw new AppError(422, "bundle_rejected", `${error.message}; the previous bundle keeps serving`);
        throw error;
      }
    },
  );
}
