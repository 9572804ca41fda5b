import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import "../plugins/context.js";
import type { Reload } from "../reloads.js";
import { reloadErrors, reloadResponse } from "../schemas/api.js";

export interface AdminRoutesOptions {
  /** Every process's reload (reloads.ts). */
  reload: Reload;
}

export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions) {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    "/admin/reload",
    {
      config: { auth: "admin", budget: "admin" },
      schema: {
        summary: "Atomically swap in the bundle now in MODEL_DIR (also on SIGHUP)",
        description:
          "The new bundle is verified and warmed first, by every worker process; only when all succeeded do all swap. " +
          "If any fails or takes longer than RELOAD_TIMEOUT_MS, none swaps, the old bundle keeps serving and the answer is 422. " +
          "A reload asked for while another runs is refused with 409 reload_in_progress.",
        tags: ["admin"],
        response: { 200: reloadResponse.meta({ description: "every worker now serves the new bundle" }), ...reloadErrors },
      },
    },
    async () => {
      const started = performance.now();
      const result = await opts.reload();
      return { reloaded: true, ...result, seconds: (performance.now() - started) / 1000 };
    },
  );
}
