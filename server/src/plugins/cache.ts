import type { FastifyBaseLogger } from "fastify";
import type { Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import type { Metrics } from "./metrics.js";

/**
 * Cache of single predictions, keyed by bundle digest, model and the exact feature bytes,
 * so a new bundle never answers from an old one's entries. An in-memory LRU sits in front
 * of Redis (shared by replicas) when REDIS_URL is set; a Redis failure only skips Redis.
 */
export class PredictionCache {
  private readonly memory: LRUCache<string, number> | undefined;

  constructor(
    private readonly ttlSeconds: number,
    maxEntries: number,
    private readonly redis: Redis | undefined,
    private readonly metrics: Metrics,
    private readonly log: FastifyBaseLogger,
  ) {
    this.memory = ttlSeconds > 0 && maxEntries > 0 ? new LRUCache({ max: maxEntries, ttl: ttlSeconds * 1000 }) : undefined;
  }

  get enabled(): boolean {
    return this.memory !== undefined;
  }

  static key(digest: string, model: string, features: Float64Array): string {
    return `pred:${digest}:${model}:${Buffer.from(features.buffer, features.byteOffset, features.byteLength).toString("base64")}`;
  }

  async get(key: string): Promise<number | undefined> {
    if (!this.memory) return undefined;
    const local = this.memory.get(key);
    if (local !== undefined) {
      this.metrics.cacheHits.inc({ backend: "memory" });
      return local;
    }
    this.metrics.cacheMisses.inc({ backend: "memory" });
    if (!this.redis) return undefined;
    if (this.redis.status !== "ready") {
      this.metrics.redisFallbacks.inc({ operation: "cache" });
      return undefined;
    }
    try {
      const remote = await this.redis.get(key);
      if (remote === null) {
        this.metrics.cacheMisses.inc({ backend: "redis" });
        return undefined;
      }
      this.metrics.cacheHits.inc({ backend: "redis" });
      const value = Number(remote);
      this.memory.set(key, value);
      return value;
    } catch (err) {
      this.failed("get", err);
      return undefined;
    }
  }

  set(key: string, value: number): void {
    if (!this.memory) return;
    this.memory.set(key, value);
    if (this.redis?.status === "ready") {
      this.redis.set(key, String(value), "EX", this.ttlSeconds).catch((err: unknown) => this.failed("set", err));
    }
  }

  private failed(operation: string, err: unknown): void {
    this.metrics.redisErrors.inc({ operation: `cache_${operation}` });
    this.log.debug({ err }, "redis cache operation failed; bypassed");
  }
}
