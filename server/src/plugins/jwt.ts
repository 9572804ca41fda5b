import { createHash } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey, errors, jwtVerify } from "jose";
import { LRUCache } from "lru-cache";
import type { Config } from "../config.js";

/**
 * OAuth2 access tokens: JWTs signed by the issuer with RS256 or ES256, checked against the
 * issuer's JSON Web Key Set with jose (no hand-written crypto). The key set is fetched on the
 * first token and kept: fetched again once older than OAUTH_JWKS_CACHE_SECONDS, so a removed
 * key stops verifying, and when a token names a key it lacks, so a newly published key is
 * picked up at once. Whatever asks, an issuer is not fetched more than once per
 * OAUTH_JWKS_COOLDOWN_SECONDS but when the kept keys expire, and a failed fetch keeps the
 * last good keys verifying (stale-if-error): an issuer outage, and tokens forged to provoke
 * fetches, cost one fetch and one warning per cool-down, not one per token.
 *
 * A verification (a signature check costs as much as a prediction) is remembered for the
 * token until it expires, but no longer than OAUTH_JWKS_CACHE_SECONDS: so a removed key's
 * tokens are refused at most twice OAUTH_JWKS_CACHE_SECONDS after the removal (the issuer up).
 */

const ALGORITHMS = ["RS256", "ES256"];

type OAuthConfig = Pick<
  Config,
  | "OAUTH_ISSUER"
  | "OAUTH_AUDIENCE"
  | "OAUTH_JWKS_URL"
  | "OAUTH_CLOCK_SKEW_SECONDS"
  | "OAUTH_JWKS_CACHE_SECONDS"
  | "OAUTH_JWKS_COOLDOWN_SECONDS"
>;

/** The token is not acceptable (401). */
export class TokenRefused extends Error {}
/** The issuer's keys cannot be had, so no token can be judged now (503); the next fetch may be tried in `retryAfterSeconds`. */
export class KeysUnavailable extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("the issuer's keys are unavailable");
  }
}

// jose errors that describe the token itself; any other failure is the key source's.
const TOKEN_FAULTS = new Set<string>([
  errors.JWTClaimValidationFailed.code,
  errors.JWTExpired.code,
  errors.JOSEAlgNotAllowed.code,
  errors.JOSENotSupported.code,
  errors.JWSInvalid.code,
  errors.JWTInvalid.code,
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JWSSignatureVerificationFailed.code,
]);

const FETCH_TIMEOUT_MS = 5000;
const VERIFIED_TOKENS = 10_000;
// OpenID Connect Core §2: a subject is at most 255 characters; none may be a control character.
const SUBJECT = /^[^\p{Cc}]{1,255}$/u;

async function getJson(url: URL | string): Promise<unknown> {
  const response = await fetch(url, { redirect: "error", headers: { accept: "application/json" }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`${url} answered ${response.status}`);
  }
  return response.json();
}

/** The JWKS URL the issuer publishes in its OpenID Connect discovery document, on the issuer's own scheme and host. */
async function discoverJwksUrl(issuer: string): Promise<URL> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const doc = (await getJson(url)) as { issuer?: unknown; jwks_uri?: unknown };
  // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was asked about.
  if (doc.issuer !== issuer) throw new Error(`${url} names issuer ${JSON.stringify(doc.issuer)}, not ${issuer}`);
  if (typeof doc.jwks_uri !== "string" || !URL.canParse(doc.jwks_uri)) throw new Error(`${url} has no jwks_uri`);
  // Else the document could send the key fetch to plain HTTP or to anyone's host.
  const jwks = new URL(doc.jwks_uri);
  const own = new URL(issuer);
  if (jwks.protocol !== own.protocol || jwks.hostname !== own.hostname) {
    throw new Error(`${url} names jwks_uri ${jwks.href}, on another scheme or host than the issuer; set OAUTH_JWKS_URL to use it`);
  }
  return jwks;
}

/** The issuer's keys (see the top of the file): a key lookup for jose, with the fetching bounded. */
class IssuerKeys {
  private keys: ReturnType<typeof createLocalJWKSet> | undefined;
  private jwksUrl: URL | undefined;
  private fetchedAt = -Infinity; // the last good fetch
  private triedAt = -Infinity; // the last attempt
  private failed = false; // whether the last attempt failed
  private pending: Promise<void> | undefined;

  constructor(
    private readonly config: OAuthConfig & { OAUTH_ISSUER: string },
    private readonly log: FastifyBaseLogger,
  ) {}

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (Date.now() - this.fetchedAt >= this.config.OAUTH_JWKS_CACHE_SECONDS * 1000) await this.refresh("expired");
    if (!this.keys) throw new KeysUnavailable(Math.max(1, Math.ceil(this.wait("expired") / 1000)));
    try {
      return await this.keys(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      await this.refresh("unknown key");
      return this.keys(header, token);
    }
  };

  /** ms until a fetch for this reason may be tried: expired keys at once, unless the last try failed. */
  private wait(reason: "expired" | "unknown key"): number {
    const gap = this.failed || reason === "unknown key" ? this.config.OAUTH_JWKS_COOLDOWN_SECONDS * 1000 : 0;
    return Math.max(0, this.triedAt + gap - Date.now());
  }

  /** Fetch the keys if one may be tried now (concurrent asks share one fetch); a failure keeps the last good keys. */
  private async refresh(reason: "expired" | "unknown key"): Promise<void> {
    if (!this.pending && this.wait(reason) === 0) {
      this.triedAt = Date.now();
      this.pending = this.fetch()
        .then(
          (keys) => {
            this.keys = keys;
            this.fetchedAt = Date.now();
            this.failed = false;
          },
          (error: unknown) => {
            this.failed = true;
            const retryInSeconds = this.config.OAUTH_JWKS_COOLDOWN_SECONDS;
            if (this.keys) this.log.warn({ err: error, retryInSeconds }, "the issuer's keys were not refreshed: the last good keys keep verifying");
            else this.log.warn({ err: error, retryInSeconds }, "the issuer's keys are unavailable: access tokens cannot be verified until a fetch succeeds");
          },
        )
        .finally(() => (this.pending = undefined));
    }
    await this.pending;
  }

  private async fetch() {
    this.jwksUrl ??= this.config.OAUTH_JWKS_URL ? new URL(this.config.OAUTH_JWKS_URL) : await discoverJwksUrl(this.config.OAUTH_ISSUER);
    return createLocalJWKSet((await getJson(this.jwksUrl)) as JSONWebKeySet);
  }
}

/** The granted scopes: `scope` (RFC 9068, space-separated) or `scp` (an array, or a string, as some issuers send it). */
export function scopesOf(payload: JWTPayload): Set<string> {
  return new Set(
    [payload.scope, payload.scp].flatMap((v) =>
      typeof v === "string" ? v.split(" ") : Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [],
    ),
  );
}

type Claims = JWTPayload & { iss: string; sub: string };

/**
 * Verifies a token's signature, algorithm, issuer, audience, expiry, not-before and issue time,
 * and that its subject can name a caller; resolves to its claims. `remembered` gives the claims
 * of a token verified before, without any work.
 */
export function tokenVerifier(config: OAuthConfig & { OAUTH_ISSUER: string; OAUTH_AUDIENCE: string }, log: FastifyBaseLogger) {
  const keys = new IssuerKeys(config, log);
  const verified = new LRUCache<string, Claims>({ max: VERIFIED_TOKENS });
  const id = (token: string) => createHash("sha256").update(token).digest("base64url");
  return {
    remembered: (token: string): Claims | undefined => verified.get(id(token)),
    async verify(token: string): Promise<Claims> {
      const known = verified.get(id(token));
      if (known) return known;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys.getKey, {
          algorithms: ALGORITHMS,
          issuer: config.OAUTH_ISSUER,
          audience: config.OAUTH_AUDIENCE,
          clockTolerance: config.OAUTH_CLOCK_SKEW_SECONDS,
          // A token without an expiry would be good forever; one without a subject names no caller.
          requiredClaims: ["exp", "sub"],
        }));
      } catch (error) {
        if (error instanceof KeysUnavailable) throw error;
        if (error instanceof errors.JOSEError && TOKEN_FAULTS.has(error.code)) throw new TokenRefused(error.message);
        log.warn({ err: error }, "an access token could not be verified");
        throw new KeysUnavailable(1);
      }
      // The subject becomes the caller's identity (rate limit, logs): a number or an object would
      // name no one, or everyone at once.
      if (typeof payload.sub !== "string" || !SUBJECT.test(payload.sub)) throw new TokenRefused('the "sub" claim must be a string of 1 to 255 characters, none a control character');
      // A token issued in the future comes from a wrong clock or a forger: jose checks "iat" only with a maximum age.
      const now = Math.floor(Date.now() / 1000);
      if (payload.iat !== undefined && payload.iat > now + config.OAUTH_CLOCK_SKEW_SECONDS) throw new TokenRefused('the "iat" claim (issued at) is in the future');
      const claims = payload as Claims;
      const expiresIn = (claims.exp! + config.OAUTH_CLOCK_SKEW_SECONDS) * 1000 - Date.now();
      verified.set(id(token), claims, { ttl: Math.max(1, Math.floor(Math.min(expiresIn, config.OAUTH_JWKS_CACHE_SECONDS * 1000))) });
      return claims;
    },
  };
}
