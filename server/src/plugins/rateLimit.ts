import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Redis } from "ioredis";
import { AppError } from "./errors.js";
import type { Metrics } from "./metrics.js";

/**
 * Per-client rate limit (@fastify/rate-limit). With Redis the counters are shared, so the
 * limit holds across replicas; when Redis fails the same request is counted locally
 * instead, so limits keep holding per replica and nothing errors.
 */

type Callback = (err: Error | null, res?: { current: number; ttl: number }) => void;
interface Store {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
  child(routeOptions: { routeInfo: { method: string; url: string } } & Record<string, unknown>): Store;
}
type StoreCtor = new (params: { continueExceeding: boolean; exponentialBackoff: boolean }) => Store;

const require = createRequire(import.meta.url);
const RedisStore = require("@fastify/rate-limit/store/RedisStore.js") as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  redis: Redis,
  prefix?: string,
) => Store;
const LocalStore = require("@fastify/rate-limit/store/LocalStore.js") as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  size?: number,
) => Store;

const LOCAL_KEYS = 100_000;

function fallbackStore(redis: Redis, metrics: Metrics): StoreCtor {
  return class FallbackStore implements Store {
    private readonly remote: Store;
    private readonly local: Store;

    constructor(params: { continueExceeding: boolean; exponentialBackoff: boolean }, remote?: Store, local?: Store) {
      this.remote = remote ?? new RedisStore(params.continueExceeding, params.exponentialBackoff, redis, "ratelimit:");
      this.local = local ?? new LocalStore(params.continueExceeding, params.exponentialBackoff, LOCAL_KEYS);
    }

    incr(key: string, cb: Callback, timeWindow: number, max: number): void {
      if (redis.status !== "ready") {
        metrics.redisFallbacks.inc({ operation: "rate_limit" });
        return this.local.incr(key, cb, timeWindow, max);
      }
      this.remote.incr(
        key,
        (err, res) => {
          if (!err) return cb(null, res);
          metrics.redisErrors.inc({ operation: "rate_limit" });
          metrics.redisFallbacks.inc({ operation: "rate_limit" });
          this.local.incr(key, cb, timeWindow, max);
        },
        timeWindow,
        max,
      );
    }

    child(routeOptions: Parameters<Store["child"]>[0]): Store {
      return new FallbackStore(
        routeOptions as unknown as { continueExceeding: boolean; exponentialBackoff: boolean },
        this.remote.child(routeOptions),
        this.local.child(routeOptions),
      );
    }
  };
}

/** Clients are told apart by API key when they send one (hashed), else by address. */
function clientKey(request: FastifyRequest): string {
  const key = request.headers["x-api-key"] ?? request.headers.authorization;
  if (typeof key === "string" && key) return `key:${createHash("sha256").update(key).digest("base64url").slice(0, 22)}`;
  return `ip:${request.ip}`;
}

export interface RateLimitOptions {
  max: number;
  windowMs: number;
  redis: Redis | undefined;
  metrics: Metrics;
}

export const rateLimitPlugin = fp(async (app: FastifyInstance, opts: RateLimitOptions) => {
  await app.register(rateLimit, {
    global: false,
    max: opts.max,
    timeWindow: opts.windowMs,
    keyGenerator: clientKey,
    ...(opts.redis ? { store: fallbackStore(opts.redis, opts.metrics) as never } : {}),
    onExceeded: () => opts.metrics.rateLimited.inc(),
    errorResponseBuilder: (_request, context) =>
      new AppError(429, "rate_limited", `rate limit of ${context.max} requests per ${context.after} exceeded; retry later`),
  });
});
