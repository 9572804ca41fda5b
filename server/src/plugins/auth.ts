import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { AppError } from "./errors.js";

/**
 * API-key checks. Several keys may be valid at once (rotation). Keys are compared as
 * sha256 digests with timingSafeEqual, so neither a key's content nor its length leaks
 * through timing; the headers carrying them are redacted from logs (see app.ts).
 */

const digest = (key: string) => createHash("sha256").update(key).digest();

function presented(request: FastifyRequest): string | undefined {
  const header = request.headers["x-api-key"];
  if (typeof header === "string" && header) return header;
  const auth = request.headers.authorization;
  if (auth?.startsWith("Bearer ")) return auth.slice(7).trim();
  return undefined;
}

/** A preHandler that admits a request carrying any of `keys`; no keys means open. */
export function requireKey(keys: readonly string[] | undefined, realm: string) {
  if (!keys?.length) return undefined;
  const digests = keys.map(digest);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const key = presented(request);
    if (key === undefined) {
      void reply.header("www-authenticate", `Bearer realm="${realm}"`);
      throw new AppError(401, "unauthorized", "missing API key: send X-API-Key or Authorization: Bearer");
    }
    const given = digest(key);
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    if (!ok) throw new AppError(403, "forbidden", "API key not accepted");
  };
}
