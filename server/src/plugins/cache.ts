import { createHash } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import { LRUCache } from "lru-cache";
import * as ort from "onnxruntime-node";
import type { Metrics } from "./metrics.js";
import type { RedisGuard } from "./redis.js";

// Bumped whenever what a key stands for changes, so entries written by older servers
// sharing the Redis are never read as this format.
const KEY_FORMAT = "pred:v3";

/**
 * Cache of single predictions. A key names whose entry it is (the client: its key or token
 * identity, else its address, as a digest), so a hit, and how fast it answers, never tells
 * one client what another asked; and everything the answer depends on: the model file's
 * sha256 (float32 and int8 variants differ; the same file in a new bundle version answers
 * alike), the runtime version, and the exact float32 feature values the model is fed. An
 * in-memory LRU sits in front of Redis (shared by replicas) when REDIS_URL is set; a slow or
 * failing Redis only skips Redis (RedisGuard).
 */
export class PredictionCache {
  private readonly memory: LRUCache<string, number> | undefined;

  constructor(
    private readonly ttlSeconds: number,
    maxEntries: number,
    private readonly redis: RedisGuard | undefined,
    private readonly metrics: Metrics,
  ) {
    this.memory = ttlSeconds > 0 && maxEntries > 0 ? new LRUCache({ max: maxEntries, ttl: ttlSeconds * 1000 }) : undefined;
  }

  get enabled(): boolean {
    return this.memory !== undefined;
  }

  /** `client`: rateLimit's clientOf; `modelSha256`: the manifest entry of the file serving the model (Bundle.entry). */
  static key(client: string, modelSha256: string, features: Float64Array): string {
    const fed = Float32Array.from(features);
    const owner = createHash("sha256").update(client).digest("base64url").slice(0, 22);
    return `${KEY_FORMAT}:${owner}:${modelSha256}:ort${ort.env.versions.common}:${Buffer.from(fed.buffer).toString("base64")}`;
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
    const remote = await this.redis.run("cache_get", (r) => r.get(key));
    if (remote === undefined) return undefined; // Redis unavailable: counted as a fallback
    if (remote === null) {
      this.metrics.cacheMisses.inc({ backend: "redis" });
      return undefined;
    }
    this.metrics.cacheHits.inc({ backend: "redis" });
    const value = Number(remote);
    this.memory.set(key, value);
    return value;
  }

  set(key: string, value: number): void {
    if (!this.memory) return;
    this.memory.set(key, value);
    void this.redis?.run("cache_set", (r) => r.set(key, String(value), "EX", this.ttlSeconds));
  }
}
