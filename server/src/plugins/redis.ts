import type { FastifyBaseLogger } from "fastify";
import { Redis } from "ioredis";
import type { Metrics } from "./metrics.js";

/**
 * The shared Redis connection (cache and distributed rate limit). It fails fast: with the
 * connection down, commands error at once instead of queueing, callers fall back (cache
 * bypassed, local rate limit) and the client keeps reconnecting in the background.
 */
export function connectRedis(url: string, log: FastifyBaseLogger, metrics: Metrics): Redis {
  metrics.registry.registerMetric(metrics.redisUp);
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A backstop only: requests stop waiting after REDIS_TIMEOUT_MS (RedisGuard), and the
    // breaker keeps abandoned commands few. Long, so that an event loop blocked by a model
    // run does not fail a command whose reply is already waiting in the socket.
    commandTimeout: 2000,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
    lazyConnect: false,
  });
  let up = false;
  redis.on("ready", () => {
    up = true;
    metrics.redisUp.set(1);
    log.info("redis connected");
  });
  const down = (err?: Error) => {
    metrics.redisUp.set(0);
    if (up || err) {
      // Logged once per outage, not once per reconnect attempt.
      if (up) log.warn({ err }, "redis unavailable: cache bypassed, rate limit local until it returns");
      up = false;
    }
  };
  redis.on("error", (err: Error) => down(err));
  redis.on("close", () => down());
  metrics.redisUp.set(0);
  return redis;
}

/** Bounded label values of the Redis metrics. */
export const REDIS_OPERATIONS = ["cache_get", "cache_set", "rate_limit"] as const;
export type RedisOperation = (typeof REDIS_OPERATIONS)[number];

export interface RedisGuardOptions {
  timeoutMs: number;
  threshold: number;
  cooldownMs: number;
}

const TIMED_OUT = Symbol("timed out");

/**
 * Every Redis call goes through here, so a slow or hung Redis costs a request at most
 * `timeoutMs`: the call is then abandoned (the caller falls back) and counted as a
 * failure. After `threshold` consecutive failures the breaker opens and Redis is skipped
 * outright for `cooldownMs`; then one call probes it, and its success closes the breaker.
 */
export class RedisGuard {
  private failures = 0;
  /** While the breaker is open: when the next probe may go. 0 when closed. */
  private openUntil = 0;
  private probing = false;

  constructor(
    readonly redis: Redis,
    private readonly opts: RedisGuardOptions,
    private readonly metrics: Metrics,
    private readonly log: FastifyBaseLogger,
  ) {
    metrics.registry.registerMetric(metrics.redisBreakerOpen);
    metrics.redisBreakerOpen.set(0);
    metrics.cacheHits.inc({ backend: "redis" }, 0);
    metrics.cacheMisses.inc({ backend: "redis" }, 0);
    for (const operation of REDIS_OPERATIONS) for (const counter of [metrics.redisErrors, metrics.redisFallbacks, metrics.redisTimeouts]) counter.inc({ operation }, 0);
  }

  /** `call`'s result, or undefined when Redis is down, skipped, too slow or failing. */
  async run<T>(operation: RedisOperation, call: (redis: Redis) => Promise<T>): Promise<T | undefined> {
    if (this.redis.status !== "ready" || !this.admit()) {
      this.metrics.redisFallbacks.inc({ operation });
      return undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    // Given up only after one more poll phase: when a model run blocked the event loop past
    // the deadline, a reply already waiting in the socket still counts as in time.
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => setImmediate(resolve, TIMED_OUT), this.opts.timeoutMs)));
    try {
      // The abandoned call's late rejection is handled by race's own subscription.
      const result = await Promise.race([call(this.redis), timeout]);
      if (result !== TIMED_OUT) {
        this.succeeded();
        return result;
      }
      this.metrics.redisTimeouts.inc({ operation });
    } catch (err) {
      this.metrics.redisErrors.inc({ operation });
      this.log.debug({ err, operation }, "redis call failed; falling back");
    } finally {
      clearTimeout(timer);
    }
    this.failed();
    this.metrics.redisFallbacks.inc({ operation });
    return undefined;
  }

  /** Whether a call may go to Redis now: always when closed, one probe after the cool-down when open. */
  private admit(): boolean {
    if (this.openUntil === 0) return true;
    if (this.probing || Date.now() < this.openUntil) return false;
    this.probing = true;
    return true;
  }

  private succeeded(): void {
    this.failures = 0;
    if (this.openUntil === 0) return;
    this.openUntil = 0;
    this.probing = false;
    this.metrics.redisBreakerOpen.set(0);
    this.log.info("redis answers again: breaker closed");
  }

  private failed(): void {
    if (this.probing) {
      this.probing = false;
      this.openUntil = Date.now() + this.opts.cooldownMs;
      return;
    }
    if (++this.failures < this.opts.threshold || this.openUntil !== 0) return;
    this.openUntil = Date.now() + this.opts.cooldownMs;
    this.metrics.redisBreakerOpen.set(1);
    this.log.warn({ failures: this.failures, cooldownMs: this.opts.cooldownMs }, "redis slow or failing: skipped for the cool-down (breaker open)");
  }
}
