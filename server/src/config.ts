import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { trustsEveryone } from "./proxies.js";

/**
 * Settings come from the environment, are parsed once at start, and a bad value stops the
 * process with a message naming every offending variable. There are no default secrets.
 */

// server/src (or server/dist) → repository root → models/, whose bundles/ holds the defaults.
export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../models");
/** The deployment guide's models: served when MODELS is unset and no bundle could be read at start. */
export const MODEL_TYPES = ["xgboost", "lstm", "transformer", "ensemble"] as const;
/** A model's name as MODELS, the API's model_type and the metrics' model label take it. */
export const MODEL_NAME = /^[a-z][a-z0-9_]{0,31}$/;
const modelName = z
  .string()
  .regex(MODEL_NAME, "expected model names: a lower-case letter, then up to 31 lower-case letters, digits or _")
  .refine((v) => !v.endsWith("_int8"), "an _int8 variant is served under its model's name, with QUANTIZED=true");

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
/** An IPv4 or IPv6 address, or a CIDR block of them (no zone: a proxy is not a link-local peer). */
const addressOrBlock = z.string().refine((v) => {
  const [address = "", prefix, ...rest] = v.split("/");
  const family = isIP(address);
  return family !== 0 && !address.includes("%") && rest.length === 0 && (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)));
}, "expected addresses or CIDR blocks");
// Whose X-Forwarded-For to believe: nobody (off), the last N hops, or proxies at these
// addresses (proxies.ts). Never everyone, however split: any client could then pick its address.
const trustProxy = z
  .string()
  .trim()
  .toLowerCase()
  .transform((v, ctx) => {
    if (["", "false", "off", "0", "no"].includes(v)) return false;
    if (/^\d+$/.test(v)) return Number(v);
    if (v === "true") {
      ctx.addIssue({ code: "custom", message: "trusting every proxy lets any client choose its address; give a hop count or the proxies' addresses" });
      return z.NEVER;
    }
    return v.split(",").map((s) => s.trim()).filter(Boolean);
  })
  .pipe(
    z.union([
      z.literal(false),
      z.number().int().min(1).max(32),
      z
        .array(addressOrBlock)
        .min(1)
        .superRefine((blocks, ctx) => {
          const everyone = trustsEveryone(blocks);
          if (everyone) ctx.addIssue({ code: "custom", message: `trusts every ${everyone}, so any client could choose its address; list only your proxies' addresses or networks` });
        }),
    ]),
  );
// RFC 6749 scope-token: printable ASCII without space, quote or backslash.
const scope = z.string().regex(/^[!#-[\]-~]+$/, "expected one scope name (no spaces or quotes)");
const keys = list.pipe(z.array(z.string().min(16, "API keys must be at least 16 characters")).min(1, "no key given"));
// Keys fetched over plain HTTP could be swapped on the way for an attacker's; a loopback issuer
// (development) is reached without a network.
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;
const httpsOrLoopback = (url: string | undefined) => url === undefined || !URL.canParse(url) || url.startsWith("https:") || LOOPBACK_HOST.test(new URL(url).hostname);

const RELOAD_INTERVAL = "expected 0 (off) or a whole number of ms from 100 to 3600000";

const configFields = z.object({
  HOST: z.string().default("0.0.0.0"),
  PORT: port.default(8000),
  MODEL_DIR: z.string().min(1).default(DEFAULT_MODEL_DIR),
  MODEL_BUNDLE: z
    .string()
    .regex(/^[\w.-]+$/, "expected a bundle directory name (letters, digits, . _ -)")
    .refine((v) => v !== "." && v !== "..", "expected a bundle directory name")
    .optional(),
  // Unset: the models of the bundle the server starts with (app.ts).
  MODELS: list.pipe(z.array(modelName).min(1)).optional(),
  DEFAULT_MODEL: modelName.optional(),
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
  // Keys for GET /metrics (Prometheus sends one as Authorization: Bearer).
  METRICS_API_KEY: keys.optional(),
  // OAuth2: access tokens (JWT) from this issuer, verified against its published keys.
  OAUTH_ISSUER: z.url({ protocol: /^https?$/, error: "expected the issuer's URL (the tokens' iss claim)" }).optional(),
  OAUTH_AUDIENCE: z.string().trim().min(1).optional(),
  // Unset: discovered from <issuer>/.well-known/openid-configuration (its jwks_uri).
  OAUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: "expected the URL of the issuer's JSON Web Key Set" }).optional(),
  OAUTH_PREDICT_SCOPE: scope.default("predict"),
  OAUTH_ADMIN_SCOPE: scope.default("admin"),
  OAUTH_METRICS_SCOPE: scope.default("metrics"),
  OAUTH_CLOCK_SKEW_SECONDS: int(0, 600).default(30),
  // How long fetched keys and verified tokens are trusted (a key removed from the set is
  // refused within twice this), and the least time between fetches other than the one due
  // when the keys expire: for a token naming an unknown key (a newly published key), and
  // after a failed fetch (the last good keys keep verifying meanwhile).
  OAUTH_JWKS_CACHE_SECONDS: int(1, 86_400).default(600),
  OAUTH_JWKS_COOLDOWN_SECONDS: int(1, 3600).default(30),
  ALLOWED_ORIGINS: list.default([]),
  ENABLE_METRICS: bool.default(true),
  METRICS_PORT: port.optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "expected redis://host:port/db" }).optional(),
  // A Redis call on the request path (cache get, rate-limit charge) is given up after this
  // long (a miss, a local count); this many consecutive failures skip Redis for the cool-down.
  REDIS_TIMEOUT_MS: int(1, 10_000).default(30),
  REDIS_BREAKER_THRESHOLD: int(1, 1000).default(5),
  REDIS_BREAKER_COOLDOWN_MS: int(100, 600_000).default(5_000),
  CACHE_TTL: int(0, 7 * 24 * 3600).default(300),
  CACHE_MAX_ENTRIES: int(0, 10_000_000).default(100_000),
  BODY_LIMIT: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  // Rows per client per window across the prediction routes (0: off); requests per client
  // per window on /admin/* (0: off). Clients are verified identities, else addresses.
  RATE_LIMIT_MAX: int(0, 1_000_000_000).default(100_000),
  RATE_LIMIT_WINDOW_MS: int(1000, 24 * 3600 * 1000).default(60_000),
  ADMIN_RATE_LIMIT_MAX: int(0, 1_000_000).default(10),
  TRUST_PROXY: trustProxy.default(false),
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
  // A reload (every worker opening, verifying and warming the new bundle) that has not
  // finished by then fails, changing nothing, instead of blocking later reloads.
  RELOAD_TIMEOUT_MS: int(1, 600_000).default(60_000),
  // PEM files; both set: HTTPS on PORT, re-read on SIGHUP and when their contents change,
  // looked at every TLS_RELOAD_INTERVAL_MS (0: only on SIGHUP).
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  TLS_RELOAD_INTERVAL_MS: z.coerce
    .number({ error: RELOAD_INTERVAL })
    .refine((v) => Number.isInteger(v) && (v === 0 || (v >= 100 && v <= 3_600_000)), RELOAD_INTERVAL)
    .default(10_000),
  TLS_MIN_VERSION: z.enum(["TLSv1.2", "TLSv1.3"], { error: "expected TLSv1.2 or TLSv1.3" }).default("TLSv1.2"),
  // Whether HSTS (sent over TLS) also covers every subdomain of the host: only its owner knows.
  HSTS_INCLUDE_SUBDOMAINS: bool.default(false),
});

export const configSchema = configFields
  .refine((c) => c.DEFAULT_MODEL === undefined || c.MODELS === undefined || c.MODELS.includes(c.DEFAULT_MODEL), {
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
  .refine((c) => (c.TLS_CERT_FILE === undefined) === (c.TLS_KEY_FILE === undefined), {
    path: ["TLS_CERT_FILE"],
    message: "TLS_CERT_FILE and TLS_KEY_FILE go together: set both (HTTPS) or neither",
  })
  // One request may cost this many rows; a budget smaller than that could never serve it.
  .refine((c) => c.RATE_LIMIT_MAX === 0 || c.RATE_LIMIT_MAX >= Math.max(c.MAX_BATCH_SAMPLES, c.MAX_STREAM_LENGTH), {
    path: ["RATE_LIMIT_MAX"],
    message: "counts rows, so it must be 0 (off) or at least MAX_BATCH_SAMPLES and MAX_STREAM_LENGTH (the largest batch and stream)",
  })
  .refine((c) => c.OAUTH_ISSUER === undefined || c.OAUTH_AUDIENCE !== undefined, {
    path: ["OAUTH_AUDIENCE"],
    message: "is required with OAUTH_ISSUER (the audience your tokens are issued for, e.g. this API's identifier)",
  })
  .refine((c) => c.OAUTH_ISSUER !== undefined || (c.OAUTH_AUDIENCE === undefined && c.OAUTH_JWKS_URL === undefined), {
    path: ["OAUTH_ISSUER"],
    message: "is required when OAUTH_AUDIENCE or OAUTH_JWKS_URL is set",
  })
  .refine((c) => httpsOrLoopback(c.OAUTH_ISSUER), {
    path: ["OAUTH_ISSUER"],
    message: "must be https:// (http:// only for an issuer on this host): its keys must not travel in clear",
  })
  .refine((c) => httpsOrLoopback(c.OAUTH_JWKS_URL), {
    path: ["OAUTH_JWKS_URL"],
    message: "must be https:// (http:// only on this host): the keys must not travel in clear",
  })
  .refine((c) => c.OAUTH_ADMIN_SCOPE !== c.OAUTH_PREDICT_SCOPE, {
    path: ["OAUTH_ADMIN_SCOPE"],
    message: "must differ from OAUTH_PREDICT_SCOPE, or every prediction token would be an admin token",
  })
  .refine((c) => !c.ADMIN_API_KEY?.some((k) => c.API_KEY?.includes(k)), {
    path: ["ADMIN_API_KEY"],
    message: "shares a key with API_KEY, which would then grant admin rights; give admin keys of their own",
  })
  .refine((c) => c.OAUTH_METRICS_SCOPE !== c.OAUTH_PREDICT_SCOPE && c.OAUTH_METRICS_SCOPE !== c.OAUTH_ADMIN_SCOPE, {
    path: ["OAUTH_METRICS_SCOPE"],
    message: "must differ from OAUTH_PREDICT_SCOPE and OAUTH_ADMIN_SCOPE, or those tokens would read every client's predictions in /metrics",
  })
  .refine((c) => !c.METRICS_API_KEY?.some((k) => c.API_KEY?.includes(k) || c.ADMIN_API_KEY?.includes(k)), {
    path: ["METRICS_API_KEY"],
    message: "shares a key with API_KEY or ADMIN_API_KEY, which would then read every client's predictions in /metrics; give the scraper keys of its own",
  })
  .refine((c) => c.MAX_QUEUED_ROWS >= c.MAX_BATCH_SAMPLES, {
    path: ["MAX_QUEUED_ROWS"],
    message: "must be at least MAX_BATCH_SAMPLES (a batch of that size must fit in an empty queue)",
  })
  // Without a choice, the ensemble answers if it is loaded, else the first loaded model (MODELS
  // unset: the bundle's default_model first, app.ts).
  .transform((c) => ({ ...c, DEFAULT_MODEL: c.DEFAULT_MODEL ?? (c.MODELS && defaultModel(c.MODELS)) }));

/** The model answering requests that name none, of those served: `preferred` (a bundle's default_model) if served, else the ensemble if served, else the first. */
export const defaultModel = (models: readonly string[], preferred?: string): string =>
  [preferred, "ensemble"].find((m) => m !== undefined && models.includes(m)) ?? models[0]!;

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * A setting's value as an error shows it: keys hidden, and in a URL its credentials (the
 * user:password@ part, the query's values) whatever the setting (REDIS_URL=http://:pw@...).
 */
function shown(key: string, value: string | undefined): string {
  if (/KEY|SECRET|PASSWORD|TOKEN/.test(key)) return "(hidden)";
  if (value === undefined) return "null";
  if (!value.includes("://")) return JSON.stringify(value);
  return JSON.stringify(value.replace(/\/\/[^/?#]*@/g, "//***@").replace(/([?&][^=&#]*=)[^&#]*/g, "$1***"));
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
      return `  ${key}=${shown(key, present[key])}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}
