import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";

/**
 * One error shape for every route, and one handler that produces it. Client errors name
 * the field at fault; server errors say nothing beyond a request id, which is in the log
 * next to the full error.
 */

export interface ErrorBody {
  error: string;
  message: string;
  request_id: string;
  fields?: { field: string; message: string }[];
  details?: unknown;
}

export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly fields?: { field: string; message: string }[],
    readonly details?: unknown,
    /** Response headers that go with the error, e.g. Retry-After on 503 overloaded. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const unavailable = (message: string, details?: unknown) => new AppError(503, "unavailable", message, undefined, details);

// A 400 names this many fields at most, each name cut to this many characters: the rest is
// counted, never echoed (30k unknown keys in a 779 KB body once made a 2.94 MB answer).
export const SHOWN_FIELDS = 5;
const SHOWN_NAME = 32;
export const clip = (name: string) => (name.length > SHOWN_NAME ? `${name.slice(0, SHOWN_NAME)}…` : name);

/** "/features/3" in the body → "features[3]". */
function fieldName(path: string): string {
  return path
    .split("/")
    .filter(Boolean)
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join("");
}

// Fastify's own client errors, with the codes our API documents for them.
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "bad_request",
  FST_ERR_CTP_EMPTY_JSON_BODY: "bad_request",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_BAD_URL: "bad_request",
};

export function errorBody(error: FastifyError | AppError, requestId: string): { status: number; body: ErrorBody } {
  if (error instanceof AppError) {
    const body: ErrorBody = { error: error.code, message: error.message, request_id: requestId };
    if (error.fields) body.fields = error.fields;
    if (error.details !== undefined) body.details = error.details;
    return { status: error.statusCode, body };
  }
  if (error.validation) {
    const fields = error.validation.flatMap((v) => {
      const at = fieldName(v.instancePath);
      // Unknown keys are reported at their parent, all in one message: name each key instead.
      const keys = (v.params as { keys?: string[] } | undefined)?.keys;
      if (keys?.length) return keys.map((key) => ({ field: at ? `${at}.${clip(key)}` : clip(key), message: "unknown field" }));
      return [{ field: clip(at || (error.validationContext ?? "body")), message: v.message ?? "invalid" }];
    });
    const shown = fields.slice(0, SHOWN_FIELDS);
    const more = fields.length - shown.length;
    const message = shown.map((f) => `${f.field}: ${f.message}`).join("; ") + (more ? `; and ${more} more` : "");
    return { status: 400, body: { error: "validation_error", message, request_id: requestId, fields: shown } };
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = FASTIFY_CODES[error.code] ?? (error instanceof SyntaxError ? "invalid_json" : "bad_request");
    return { status, body: { error: code, message: error.message, request_id: requestId } };
  }
  return { status: 500, body: { error: "internal_error", message: "Internal server error", request_id: requestId } };
}

export const errorsPlugin = fp(async (app: FastifyInstance) => {
  // Which methods each path answers, so a known path with another method gets 405.
  const methods = new Map<string, Set<string>>();
  app.addHook("onRoute", (route) => {
    const set = methods.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) set.add(m);
    methods.set(route.url, set);
  });
  /** 405 with Allow for a known path and another method; 404 otherwise. */
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split("?")[0]!;
    const allowed = methods.get(path);
    if (allowed) {
      void reply.status(405).header("allow", [...allowed].join(", ")).send({
        error: "method_not_allowed",
        message: `${request.method} is not allowed on ${path}; use ${[...allowed].join(" or ")}`,
        request_id: request.id,
      } satisfies ErrorBody);
      return;
    }
    void reply.status(404).send({
      error: "not_found",
      message: `no route ${request.method} ${path}`,
      request_id: request.id,
    } satisfies ErrorBody);
  };
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    // Errors raised before routing (e.g. a body on an unknown method) are routing answers.
    if (request.is404) return notFound(request, reply);
    const { status, body } = errorBody(error, request.id);
    if (status >= 500) request.log.error({ err: error }, "request failed");
    else request.log.info({ status, error: body.error }, body.message);
    if (error instanceof AppError && error.headers) void reply.headers(error.headers);
    void reply.status(status).type("application/json").send(body);
  });
  app.setNotFoundHandler(notFound);
});
