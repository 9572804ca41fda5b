import type { FastifyBaseLogger } from "fastify";
import { Redis } from "ioredis";
import type { Metrics } from "./metrics.js";

/**
 * The shared Redis connection (cache and distributed rate limit). It fails fast: with the
 * connection down, commands error at once instead of queueing, callers fall back (cache
 * bypassed, local rate limit) and the client keeps reconnecting in the background.
 */
export function connectRedis(url: string, log: FastifyBaseLogger, metrics: Metrics): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 250,
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
