import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/**
 * Settings come from the environment, are parsed once at start, and a bad value stops the
 * process with a message naming every offending variable. There are no default secrets.
 */

// server/src (or server/dist) → repository root → models/, whose bundles/ holds the defaults.
export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../models");
export const MODEL_TYPES = ["xgboost", "lstm", "transformer", "ensemble"] as const;

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(["true", "false", "1", "0", "yes", "no", "on", "off"]))
  .transform((v) => ["true", "1", "yes", "on"].includes(v));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const port = int(1, 65535);
const list = z
  .string()
  .transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean));
const keys = list.pipe(z.array(z.string().min(16, "API keys must be at least 16 characters")).min(1, "no key given"));

const configFields = z.object({
  HOST: z.string().default("0.0.0.0"),
  PORT: port.default(8000),
  MODEL_DIR: z.string().min(1).default(DEFAULT_MODEL_DIR),
  MODEL_BUNDLE: z
    .string()
    .regex(/^[\w.-]+$/, "expected a bundle directory name (letters, digits, . _ -)")
    .refine((v) => v !== "." && v !== "..", "expected a bundle directory name")
    .optional(),
  MODELS: list.pipe(z.array(z.enum(MODEL_TYPES)).min(1)).default([...MODEL_TYPES]),
  DEFAULT_MODEL: z.enum(MODEL_TYPES).optional(),
  MODEL_LOADING: z.enum(["eager", "lazy"]).default("eager"),
  QUANTIZED: bool.default(false),
  EXPECTED_BUNDLE_DIGEST: z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex digits>").optional(),
  LOG_LEVEL: z
    .string()
    .trim()
    .toLowerCase()
    .transform((v) => (v === "warning" ? "warn" : v === "critical" ? "fatal" : v))
    .pipe(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]))
    .default("info"),
  WORKERS: int(1, 64).default(1),
  API_KEY: keys.optional(),
  ADMIN_API_KEY: keys.optional(),
  ALLOWED_ORIGINS: list.default([]),
  ENABLE_METRICS: bool.default(true),
  METRICS_PORT: port.optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "expected redis://host:port/db" }).optional(),
  CACHE_TTL: int(0, 7 * 24 * 3600).default(300),
  CACHE_MAX_ENTRIES: int(0, 10_000_000).default(100_000),
  BODY_LIMIT: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  RATE_LIMIT_MAX: int(0, 10_000_000).default(6000),
  RATE_LIMIT_WINDOW_MS: int(1000, 24 * 3600 * 1000).default(60_000),
  MAX_BATCH_SAMPLES: int(1, 1_000_000).default(10_000),
  MAX_STREAM_LENGTH: int(1, 10_000_000).default(100_000),
  MICRO_BATCH: bool.default(true),
  // Rows in one model run at most: small requests are coalesced up to it, bigger ones sliced to it.
  MICRO_BATCH_MAX: int(1, 65536).default(256),
  MICRO_BATCH_WAIT_MS: z.coerce.number().min(0).max(100).default(0),
  // Rows waiting for the model at most, across requests; beyond it 503 overloaded + Retry-After.
  MAX_QUEUED_ROWS: int(1, 100_000_000).default(100_000),
  // Streams open at once at most; beyond it 503 overloaded + Retry-After.
  MAX_STREAMS: int(1, 100_000).default(64),
  // A stream whose client takes nothing for this long while lines wait is cut (0: never).
  STREAM_STALL_TIMEOUT_MS: int(0, 3_600_000).default(30_000),
  // A stream's socket with no traffic either way for this long is closed (0: never).
  STREAM_IDLE_TIMEOUT_MS: int(0, 3_600_000).default(60_000),
  // After SIGTERM, how long to keep serving (health 503, every answer Connection: close)
  // while endpoint removal propagates and keep-alive clients move to other pods.
  SHUTDOWN_DELAY_MS: int(0, 600_000).default(5_000),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(20_000),
  REQUEST_TIMEOUT_MS: int(0, 3_600_000).default(60_000),
});

export const configSchema = configFields
  .refine((c) => c.DEFAULT_MODEL === undefined || c.MODELS.includes(c.DEFAULT_MODEL), {
    path: ["DEFAULT_MODEL"],
    message: "must be one of MODELS",
  })
  .refine((c) => c.METRICS_PORT === undefined || c.METRICS_PORT !== c.PORT, {
    path: ["METRICS_PORT"],
    message: "must differ from PORT",
  })
  .refine((c) => c.WORKERS === 1 || !c.ENABLE_METRICS || c.METRICS_PORT !== undefined, {
    path: ["METRICS_PORT"],
    message: "is required when WORKERS > 1 (the primary process serves the workers' combined metrics there)",
  })
  .refine((c) => c.MAX_QUEUED_ROWS >= c.MAX_BATCH_SAMPLES, {
    path: ["MAX_QUEUED_ROWS"],
    message: "must be at least MAX_BATCH_SAMPLES (a batch of that size must fit in an empty queue)",
  })
  // Without a choice, the ensemble answers if it is loaded, else the first loaded model.
  .transform((c) => ({ ...c, DEFAULT_MODEL: c.DEFAULT_MODEL ?? (c.MODELS.includes("ensemble") ? "ensemble" : c.MODELS[0]!) }));

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parse the environment; empty strings count as unset. */
export function parseConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined>): Config {
  const present = Object.fromEntries(
    Object.keys(configFields.shape).flatMap((k) => (env[k] === undefined || env[k] === "" ? [] : [[k, env[k]]])),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? "config");
      const shown = key.includes("KEY") ? "(hidden)" : JSON.stringify(present[key] ?? null);
      return `  ${key}=${shown}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}
