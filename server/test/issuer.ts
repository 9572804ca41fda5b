import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

/**
 * A local OAuth2 issuer for tests: a real HTTP server on a free port publishing an OpenID
 * Connect discovery document and a JSON Web Key Set that a test can change (rotation) or
 * break (outage), and signing keys to mint tokens with.
 */

export interface SigningKey {
  kid: string;
  alg: "RS256" | "ES256";
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function signingKey(alg: "RS256" | "ES256", kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

export interface Issuer {
  /** The issuer identifier (the tokens' iss), also the base of its URLs. */
  url: string;
  jwksUrl: string;
  /** The keys published now. */
  publish(keys: SigningKey[]): void;
  /** Answer the key set (and discovery) with this status instead of 200, or undefined for normal service. */
  fail(status: number | undefined): void;
  /** How many times the key set was fetched. */
  fetches(): number;
  /** How many requests of any kind (discovery, key set) it was sent, answered or failed. */
  requests(): number;
  /** Valid claims for this issuer and AUDIENCE (subject user-1, scope predict, 5 minutes), `extra` replacing them. */
  claims(extra: JWTPayload): JWTPayload;
  /** A token signed with `key` carrying claims(extra). */
  token(key: SigningKey, extra?: JWTPayload, header?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export const AUDIENCE = "https://wavelet.example/api";

export interface IssuerOptions {
  /** Serve HTTPS with this certificate and key. */
  tls?: { cert: Buffer; key: Buffer };
  /** The jwks_uri its discovery document names, given its own; its own /jwks unless set. */
  jwksUri?: (url: string) => string;
}

export async function startIssuer(opts: IssuerOptions = {}): Promise<Issuer> {
  let keys: SigningKey[] = [];
  let failing: number | undefined;
  let fetches = 0;
  let requests = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    if (failing !== undefined) {
      res.writeHead(failing).end();
      return;
    }
    const body =
      req.url === "/.well-known/openid-configuration"
        ? { issuer: url, jwks_uri: opts.jwksUri?.(url) ?? `${url}/jwks` }
        : req.url === "/jwks"
          ? (fetches++, { keys: keys.map((k) => k.jwk) })
          : undefined;
    if (!body) res.writeHead(404).end();
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  const server: Server = opts.tls ? createHttpsServer(opts.tls, handler) : createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${(server.address() as { port: number }).port}`;
  // Explicit claims replace the defaults; an undefined one is left out of the token.
  const claims = (extra: JWTPayload): JWTPayload => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: url, aud: AUDIENCE, sub: "user-1", scope: "predict", iat: now, exp: now + 300, ...extra };
  };
  return {
    url,
    jwksUrl: `${url}/jwks`,
    publish: (next) => (keys = next),
    fail: (status) => (failing = status),
    fetches: () => fetches,
    requests: () => requests,
    claims,
    token: (key, extra = {}, header = {}) =>
      new SignJWT(claims(extra)).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header }).sign(key.privateKey),
    close: () => {
      server.closeAllConnections(); // the verifier's fetches keep connections alive
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A JWT's three parts from explicit header and claims, with `signature` as the third (unsigned forms). */
export function unsignedToken(header: object, claims: object, signature = ""): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part(header)}.${part(claims)}.${signature}`;
}
