import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import "../plugins/context.js";
import { AppError } from "../plugins/errors.js";
import type { Reload } from "../reloads.js";
import { reloadErrors, reloadResponse } from "../schemas/api.js";

export interface AdminRoutesOptions {
  /** Every process's reload (reloads.ts). */
  reload: Reload;
  /** ALLOWED_ORIGINS: the web pages that may call admin routes (exactly these; "*" is not one). */
  allowedOrigins: string[];
}

const isJson = (contentType: string | undefined) => contentType?.split(";")[0]!.trim().toLowerCase() === "application/json";

/**
 * Admin calls come from people and scripts. A web page could otherwise send one with the
 * browser's ambient reach (this host, for loopback-only admin): a request from a page carries
 * Origin, refused unless ALLOWED_ORIGINS names it; and only JSON is taken, which a page cannot
 * send cross-site without a CORS preflight (a text/plain "simple" request needs none).
 */
export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions) {
  app.addHook("onRequest", async (request) => {
    const origin = request.headers.origin;
    if (origin !== undefined && !opts.allowedOrigins.includes(origin)) {
      throw new AppError(403, "forbidden", "admin routes do not answer web pages: this Origin is not in ALLOWED_ORIGINS");
    }
    if (!isJson(request.headers["content-type"])) {
      throw new AppError(415, "unsupported_media_type", "admin requests are sent as Content-Type: application/json (the body may be empty)");
    }
  });
  // An empty body is fine with the JSON type: it stands for {}, as these routes take no fields.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => {
    try {
      done(null, body === "" ? {} : JSON.parse(body as string));
    } catch (error) {
      done(Object.assign(error as Error, { statusCode: 400 }), undefined);
    }
  });
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
          "A reload asked for while another runs is refused with 409 reload_in_progress. " +
          "Send it as Content-Type: application/json, with an empty body or {}; a request carrying an Origin that ALLOWED_ORIGINS does not list (a web page) is refused with 403.",
        tags: ["admin"],
        body: z.strictObject({}).meta({ description: "no fields: an empty body, or {}", example: {} }),
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
