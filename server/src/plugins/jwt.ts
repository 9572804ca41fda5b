import { createHash } from "node:crypto";
import { createRemoteJWKSet, type JWTPayload, type JWTVerifyGetKey, errors, jwtVerify } from "jose";
import { LRUCache } from "lru-cache";
import type { Config } from "../config.js";

/**
 * OAuth2 access tokens: JWTs signed by the issuer with RS256 or ES256, checked against the
 * issuer's JSON Web Key Set with jose (no hand-written crypto). The key set is fetched on the
 * first token and cached: a token naming a key not in the cache refetches it (at most once per
 * OAUTH_JWKS_COOLDOWN_SECONDS), so a newly published key is picked up at once; the cache is
 * refetched after OAUTH_JWKS_CACHE_SECONDS, so a removed key stops verifying.
 *
 * A verification (a signature check costs as much as a prediction) is remembered for the
 * token until it expires, but no longer than OAUTH_JWKS_CACHE_SECONDS: so a removed key's
 * tokens are refused at most twice OAUTH_JWKS_CACHE_SECONDS after the removal.
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
/** The issuer's keys cannot be fetched, so no token can be judged now (503). */
export class KeysUnavailable extends Error {}

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

/** The JWKS URL the issuer publishes in its OpenID Connect discovery document. */
async function discoverJwksUrl(issuer: string): Promise<URL> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const response = await fetch(url, { redirect: "error", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
  const doc = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was asked about.
  if (doc.issuer !== issuer) throw new Error(`${url} names issuer ${JSON.stringify(doc.issuer)}, not ${issuer}`);
  if (typeof doc.jwks_uri !== "string") throw new Error(`${url} has no jwks_uri`);
  return new URL(doc.jwks_uri);
}

/** A key lookup over the issuer's key set, discovered on first use (and again after a failed discovery). */
function keySet(config: OAuthConfig & { OAUTH_ISSUER: string }): JWTVerifyGetKey {
  let remote: Promise<JWTVerifyGetKey> | undefined;
  const resolve = () =>
    (remote ??= (config.OAUTH_JWKS_URL ? Promise.resolve(new URL(config.OAUTH_JWKS_URL)) : discoverJwksUrl(config.OAUTH_ISSUER)).then(
      (url) =>
        createRemoteJWKSet(url, {
          timeoutDuration: FETCH_TIMEOUT_MS,
          cacheMaxAge: config.OAUTH_JWKS_CACHE_SECONDS * 1000,
          cooldownDuration: config.OAUTH_JWKS_COOLDOWN_SECONDS * 1000,
        }),
    ));
  return async (header, token) => {
    const pending = resolve();
    const jwks = await pending.catch((error: unknown) => {
      if (remote === pending) remote = undefined;
      throw error;
    });
    return jwks(header, token);
  };
}

/** The granted scopes: `scope` (RFC 9068, space-separated) or `scp` (an array, or a string, as some issuers send it). */
export function scopesOf(payload: JWTPayload): Set<string> {
  return new Set(
    [payload.scope, payload.scp].flatMap((v) =>
      typeof v === "string" ? v.split(" ") : Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [],
    ),
  );
}

/** Verifies a token's signature, algorithm, issuer, audience, expiry and not-before; resolves to its claims. */
export function tokenVerifier(config: OAuthConfig & { OAUTH_ISSUER: string; OAUTH_AUDIENCE: string }) {
  type Claims = JWTPayload & { iss: string; sub: string };
  const getKey = keySet(config);
  const verified = new LRUCache<string, Claims>({ max: VERIFIED_TOKENS });
  return async (token: string): Promise<Claims> => {
    const id = createHash("sha256").update(token).digest("base64url");
    const known = verified.get(id);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms: ALGORITHMS,
        issuer: config.OAUTH_ISSUER,
        audience: config.OAUTH_AUDIENCE,
        clockTolerance: config.OAUTH_CLOCK_SKEW_SECONDS,
        // A token without an expiry would be good forever; one without a subject names no caller.
        requiredClaims: ["exp", "sub"],
      });
      const claims = payload as Claims;
      const expiresIn = (claims.exp! + config.OAUTH_CLOCK_SKEW_SECONDS) * 1000 - Date.now();
      verified.set(id, claims, { ttl: Math.max(1, Math.floor(Math.min(expiresIn, config.OAUTH_JWKS_CACHE_SECONDS * 1000))) });
      return claims;
    } catch (error) {
      if (error instanceof errors.JOSEError && TOKEN_FAULTS.has(error.code)) throw new TokenRefused(error.message);
      throw new KeysUnavailable("the issuer's keys could not be fetched", { cause: error });
    }
  };
}
