import { isIP } from "node:net";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Redis } from "ioredis";
import { Buckets, type Count, type RemoteCharge } from "../buckets.js";
import { clientAddress } from "../proxies.js";
import type { Budget } from "./context.js";
import { AppError } from "./errors.js";
import type { Metrics } from "./metrics.js";
import type { RedisGuard } from "./redis.js";

/**
 * Per-client budgets over a fixed window. A route names its budget (config.budget) and, on
 * the prediction routes, what it costs in rows (config.rows, from the validated body):
 * one row is charged in onRequest, so an exhausted client is refused before its body is
 * read, the rest in preHandler. A charge that does not fit is refused (429) and spends
 * nothing, so a refused request has spent one row at most. The client is the verified identity (request.identity, set by auth
 * before this runs) or else the connection's address (clientAddress, which believes
 * X-Forwarded-For only as far as TRUST_PROXY says; an IPv6 client's /64), never an
 * unchecked header. With Redis
 * the counts are shared by replicas; with WORKERS > 1, by the workers through their primary
 * (buckets.ts), which also counts when Redis is slow or down; failing both, the process counts.
 */

declare module "fastify" {
  interface FastifyInstance {
    /** Charge `cost` to the caller's `budget` (its identity, else its address), or throw 429; nothing when the budget is off. */
    chargeBudget(request: FastifyRequest, reply: FastifyReply, budget: Budget, cost: number): Promise<void>;
  }
  interface FastifyContextConfig {
    /**
     * The rows a call costs its budget, from its validated body; 1 when absent. `never`
     * so that each route can type the body it declares.
     */
    rows?: (body: never) => number;
  }
}

export interface RateLimitOptions {
  /** Units per client per window; 0 turns a budget off. */
  max: Record<Budget, number>;
  windowMs: number;
  redis: RedisGuard | undefined;
  /** A cluster worker's charge to its primary's buckets. */
  primary?: RemoteCharge | undefined;
  metrics: Metrics;
}

const UNITS: Record<Budget, string> = { predict: "rows", admin: "requests" };
// Versioned like the cache keys: a change of meaning must not read older counters.
const PREFIX = "ratelimit:v2";

// Atomic: check, charge and start the window in one step, so replicas never overshoot.
const CHARGE = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return {used, ttl, 0} end
used = redis.call('INCRBY', KEYS[1], ARGV[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  ttl = tonumber(ARGV[3])
end
return {used, ttl, 1}`;

interface ChargingRedis extends Redis {
  rateCharge(key: string, cost: number, max: number, windowMs: number): Promise<Count>;
}

/**
 * The address a client cannot vary: IPv4 as is (also when mapped into IPv6), IPv6 by its
 * /64, since every host is given a whole /64 and may pick any address in it.
 */
export function network(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIP(ip) !== 6) return ip;
  const [head = "", tail] = ip.split("%")[0]!.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16)).join(":")}::/64`;
}

/** Whose budget a request draws on, and whose cached answers it may see: its verified identity, else its address. */
export const clientOf = (request: FastifyRequest): string => request.identity ?? `ip:${network(clientAddress(request))}`;

class Limiter {
  private readonly local: Buckets;

  constructor(private readonly opts: RateLimitOptions) {
    this.local = new Buckets(opts.windowMs);
    if (opts.primary) opts.metrics.registry.registerMetric(opts.metrics.rateLimitPrimaryFallbacks);
    opts.redis?.redis.defineCommand("rateCharge", { numberOfKeys: 1, lua: CHARGE });
  }

  enabled(budget: Budget | undefined): budget is Budget {
    return budget !== undefined && this.opts.max[budget] > 0;
  }

  /** Charge `cost` to the caller's `budget`, or throw 429; the X-RateLimit-* headers say where it stands. */
  async charge(request: FastifyRequest, reply: FastifyReply, budget: Budget, cost: number): Promise<void> {
    const max = this.opts.max[budget];
    const key = `${PREFIX}:${budget}:${clientOf(request)}`;
    const [used, resetMs, charged] =
      (await this.opts.redis?.run("rate_limit", (r) => (r as ChargingRedis).rateCharge(key, cost, max, this.opts.windowMs))) ??
      (await this.chargePrimary(key, cost, max)) ??
      this.local.charge(key, cost, max);
    const resetSeconds = Math.max(1, Math.ceil((resetMs < 0 ? this.opts.windowMs : resetMs) / 1000));
    void reply.headers({
      "x-ratelimit-limit": max,
      "x-ratelimit-remaining": Math.max(0, max - used),
      "x-ratelimit-reset": resetSeconds,
    });
    if (charged) return;
    this.opts.metrics.rateLimited.inc();
    void reply.header("retry-after", resetSeconds);
    const asked = cost > 1 ? `; this request costs ${cost} more` : "";
    throw new AppError(429, "rate_limited", `rate limit of ${max} ${UNITS[budget]} per ${this.opts.windowMs / 1000} s exceeded${asked}; retry in ${resetSeconds} s`);
  }

  private async chargePrimary(key: string, cost: number, max: number): Promise<Count | undefined> {
    if (!this.opts.primary) return undefined;
    const count = await this.opts.primary(key, cost, max);
    if (!count) this.opts.metrics.rateLimitPrimaryFallbacks.inc();
    return count;
  }
}

export const rateLimitPlugin = fp(async (app: FastifyInstance, opts: RateLimitOptions) => {
  const limiter = new Limiter(opts);
  // For auth (registered first, so that identities are known here): refused credentials are charged to their address.
  app.decorate("chargeBudget", async (request: FastifyRequest, reply: FastifyReply, budget: Budget, cost: number) => {
    if (limiter.enabled(budget)) await limiter.charge(request, reply, budget, cost);
  });
  app.addHook("onRequest", async (request, reply) => {
    const { budget } = request.routeOptions.config;
    if (limiter.enabled(budget)) await limiter.charge(request, reply, budget, 1);
  });
  app.addHook("preHandler", async (request, reply) => {
    const { budget, rows } = request.routeOptions.config;
    if (!rows || !limiter.enabled(budget)) return;
    const rest = rows(request.body as never) - 1;
    if (rest > 0) await limiter.charge(request, reply, budget, rest);
  });
});
