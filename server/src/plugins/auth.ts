import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Config } from "../config.js";
import { authErrors } from "../schemas/api.js";
import type { Realm } from "./context.js";
import { AppError, unavailable } from "./errors.js";
import { KeysUnavailable, scopesOf, TokenRefused, tokenVerifier } from "./jwt.js";

/**
 * Who may call a route, decided in onRequest, before the body is read or validated: an
 * unauthenticated caller learns nothing about the schema and costs no parsing.
 *
 * Routes name their realm in `config.auth`. A realm accepts API keys (X-API-Key, or
 * Authorization: Bearer <key>) and, with OAUTH_ISSUER, OAuth2 access tokens (Authorization:
 * Bearer <JWT>) carrying the realm's scope; each realm needs its own scope, so an admin token
 * does not predict unless it also has the predict scope. The prediction realm takes API_KEY
 * and is open when neither keys nor an issuer are configured. The admin realm takes
 * ADMIN_API_KEY only (prediction keys never grant admin rights); with neither admin keys nor
 * an issuer it answers only direct loopback clients (the host itself; SIGHUP also reloads).
 * The metrics realm (GET /metrics, whose histograms carry every tenant's predictions) takes
 * METRICS_API_KEY; on the API port it is open only while the server has no credentials at
 * all, and otherwise refuses until METRICS_API_KEY is set. On METRICS_PORT, a listener whose
 * reach the network decides, only METRICS_API_KEY guards it.
 *
 * Keys are compared as sha256 digests with timingSafeEqual, so neither a key's content nor
 * its length leaks through timing; several keys may be valid at once (rotation). Anything but
 * a known key or a token verified before is charged to the caller's address (rateLimit.ts)
 * before it is checked, so guessing keys and forging tokens spend a budget.
 */

const digest = (key: string) => createHash("sha256").update(key).digest();
const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);
// The names of this host a local client uses; a page that reaches 127.0.0.1 under a name of
// its own (DNS rebinding) sends that name.
const LOOPBACK_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/i;
// Headers a proxy adds to what it relays: with any of them, the peer is not the client.
const FORWARDING = /^(forwarded|via|x-forwarded-.+|x-original-forwarded-for|x-real-ip|x-client-ip|true-client-ip|cf-connecting-ip|fastly-client-ip|x-cluster-client-ip)$/;
// Three base64url segments: a JWS in compact form (anything else is taken for an API key).
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

interface Policy {
  keys: Buffer[];
  /** The OAuth scope the realm requires, when tokens are accepted. */
  scope: string | undefined;
  /** What the realm does while it accepts no credential: admit anyone, only this host, or no one. */
  unguarded: "open" | "local" | "refused";
}

/**
 * Which credentials each realm accepts. `listener` is where the routes are served: the API
 * port, or METRICS_PORT (which serves only /metrics).
 */
function policies(config: Config, listener: "api" | "metrics"): Record<Realm, Policy> {
  const oauth = config.OAUTH_ISSUER !== undefined;
  const metricsKeys = (config.METRICS_API_KEY ?? []).map(digest);
  const credentials = config.API_KEY !== undefined || metricsKeys.length > 0 || oauth;
  return {
    predict: { keys: (config.API_KEY ?? []).map(digest), scope: oauth ? config.OAUTH_PREDICT_SCOPE : undefined, unguarded: "open" },
    admin: { keys: (config.ADMIN_API_KEY ?? []).map(digest), scope: oauth ? config.OAUTH_ADMIN_SCOPE : undefined, unguarded: "local" },
    metrics:
      listener === "metrics"
        ? { keys: metricsKeys, scope: oauth && metricsKeys.length ? config.OAUTH_METRICS_SCOPE : undefined, unguarded: "open" }
        : { keys: metricsKeys, scope: oauth ? config.OAUTH_METRICS_SCOPE : undefined, unguarded: credentials ? "refused" : "open" },
  };
}

/** Why an unguarded realm refuses a caller. */
const REFUSALS = {
  local: "admin routes answer only local clients until ADMIN_API_KEY (or OAUTH_ISSUER) is set",
  refused: "/metrics shows every client's predictions, so it needs credentials once the API does: set METRICS_API_KEY and scrape with it, or scrape METRICS_PORT",
};

const guarded = (policy: Policy) => policy.keys.length > 0 || policy.scope !== undefined;

/** The key's identity if it is one of `keys`: every digest is compared, whichever matches. */
function matchKey(keys: Buffer[], key: string): string | undefined {
  const given = digest(key);
  let ok = false;
  for (const d of keys) ok = timingSafeEqual(d, given) || ok;
  return ok ? `key:${given.toString("base64url").slice(0, 16)}` : undefined;
}

/** A connection from this host, to a name of this host, not relayed by a proxy on it (which would make every client look local). */
function direct(request: FastifyRequest): boolean {
  return (
    LOOPBACK.has(request.socket.remoteAddress ?? "") &&
    LOOPBACK_HOST.test(request.headers.host ?? "") &&
    !Object.keys(request.headers).some((name) => FORWARDING.test(name))
  );
}

/** "Bearer" is matched case-insensitively (RFC 7235 §2.1). */
function bearer(request: FastifyRequest): string | undefined {
  const match = /^bearer[ \t]+(.+)$/i.exec(request.headers.authorization ?? "");
  return match?.[1]!.trim() || undefined;
}

/** RFC 6750 §3: the challenge, with the error and the scope needed when there is one. */
function challenge(reply: FastifyReply, realm: Realm, error?: { code: "invalid_token" | "insufficient_scope"; scope?: string }) {
  const params = [`realm="${realm}"`];
  if (error) params.push(`error="${error.code}"`);
  if (error?.scope) params.push(`scope="${error.scope}"`);
  void reply.header("www-authenticate", `Bearer ${params.join(", ")}`);
}

/** OpenAPI security schemes; the bearer one says JWT when tokens are accepted. */
export function securitySchemes(config: Config) {
  const oauth = config.OAUTH_ISSUER !== undefined;
  return {
    apiKey: { type: "apiKey" as const, in: "header", name: "X-API-Key" },
    bearer: {
      type: "http" as const,
      scheme: "bearer",
      ...(oauth
        ? {
            bearerFormat: "JWT",
            description: `An OAuth2 access token from ${config.OAUTH_ISSUER} (RS256 or ES256, audience ${config.OAUTH_AUDIENCE}) with the route's scope, or an API key.`,
          }
        : { description: "An API key." }),
    },
  };
}

export const authPlugin = fp(async (app: FastifyInstance, opts: { config: Config; listener?: "api" | "metrics" }) => {
  const { config } = opts;
  const realms = policies(config, opts.listener ?? "api");
  const tokens = config.OAUTH_ISSUER && config.OAUTH_AUDIENCE ? tokenVerifier({ ...config, OAUTH_ISSUER: config.OAUTH_ISSUER, OAUTH_AUDIENCE: config.OAUTH_AUDIENCE }, app.log) : undefined;

  /**
   * One unit of the route's budget, on the caller's address (no identity yet): a credential
   * that is not a known key or a remembered token is refused (or its signature checked, which
   * costs as much as a prediction) only while the address has budget left. Routes that spend
   * no budget when called (/metrics, which Prometheus must always reach; /models) charge the
   * prediction budget for it.
   */
  async function chargeAddress(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const budget = request.routeOptions.config.budget ?? "predict";
    if (app.hasDecorator("chargeBudget")) await app.chargeBudget(request, reply, budget, 1);
  }

  /** The caller's identity, or an AppError saying why not. */
  async function authenticate(request: FastifyRequest, reply: FastifyReply, realm: Realm, policy: Policy): Promise<string> {
    const header = request.headers["x-api-key"];
    const key = typeof header === "string" && header ? header : undefined;
    const credential = key ?? bearer(request);
    if (credential === undefined) {
      await chargeAddress(request, reply);
      challenge(reply, realm);
      const accepted = [policy.keys.length ? "an API key (X-API-Key or Authorization: Bearer)" : "", policy.scope ? "an access token (Authorization: Bearer)" : ""];
      throw new AppError(401, "unauthorized", `missing credentials: send ${accepted.filter(Boolean).join(" or ")}`);
    }
    const identity = matchKey(policy.keys, credential);
    if (identity) return identity;
    if (key !== undefined || !tokens || !policy.scope || !JWT_SHAPE.test(credential)) {
      await chargeAddress(request, reply);
      throw new AppError(403, "forbidden", "API key not accepted");
    }
    if (!tokens.remembered(credential)) await chargeAddress(request, reply);
    try {
      const claims = await tokens.verify(credential);
      if (!scopesOf(claims).has(policy.scope)) {
        challenge(reply, realm, { code: "insufficient_scope", scope: policy.scope });
        throw new AppError(403, "insufficient_scope", `the token lacks the ${policy.scope} scope`);
      }
      return `jwt:${claims.iss}#${claims.sub}`;
    } catch (error) {
      if (error instanceof TokenRefused) {
        challenge(reply, realm, { code: "invalid_token" });
        throw new AppError(401, "invalid_token", `token refused: ${error.message}`);
      }
      // Logged where the keys are fetched, once per failed fetch, not once per token.
      if (error instanceof KeysUnavailable) {
        void reply.header("retry-after", String(error.retryAfterSeconds));
        throw unavailable("cannot verify access tokens now; retry later");
      }
      throw error;
    }
  }

  app.addHook("onRequest", async (request, reply) => {
    const realm = request.routeOptions.config.auth;
    if (!realm) return;
    const policy = realms[realm];
    if (guarded(policy)) {
      request.identity = await authenticate(request, reply, realm, policy);
      return;
    }
    if (policy.unguarded === "refused" || (policy.unguarded === "local" && !direct(request))) {
      throw new AppError(403, "forbidden", REFUSALS[policy.unguarded]);
    }
  });

  // The OpenAPI document states what the hook above enforces: the credentials a route takes and,
  // on a route that documents its answers, the answers without them; an open route lists neither.
  app.addHook("onRoute", (route) => {
    const realm = route.config?.auth;
    if (!realm) return;
    const policy = realms[realm];
    // A status the route declares itself keeps the route's description.
    const declared = route.schema?.response as object | undefined;
    const answers = (responses: object) => (declared ? { response: { ...responses, ...declared } } : {});
    if (!guarded(policy)) {
      if (policy.unguarded !== "open") route.schema = { ...route.schema, ...answers({ 403: authErrors[policy.unguarded] }) };
      return;
    }
    const security: Record<string, string[]>[] = [
      ...(policy.keys.length ? [{ apiKey: [] }] : []),
      { bearer: policy.scope ? [policy.scope] : [] },
    ];
    route.schema = { ...route.schema, security, ...answers({ 401: authErrors[401], 403: authErrors[403] }) };
  });
});
