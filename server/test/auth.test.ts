import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { authPlugin } from "../src/plugins/auth.js";
import { errorsPlugin } from "../src/plugins/errors.js";
import { GUIDE_FEATURES, type ServerProcess, freePort, json, selfSigned, startServer, testApp, waitFor } from "./helpers.js";
import { AUDIENCE, type Issuer, type SigningKey, signingKey, startIssuer, unsignedToken } from "./issuer.js";

const KEY = "k".repeat(24);
const ADMIN_KEY = "a".repeat(24);
const REMOTE = "10.0.0.7";

let issuer: Issuer;
let rsa: SigningKey;
let ec: SigningKey;
beforeAll(async () => {
  issuer = await startIssuer();
  rsa = await signingKey("RS256", "rsa-1");
  ec = await signingKey("ES256", "ec-1");
  issuer.publish([rsa, ec]);
});
afterAll(() => issuer.close());

const oauth = (env: Record<string, string> = {}) => ({ OAUTH_ISSUER: issuer.url, OAUTH_AUDIENCE: AUDIENCE, ...env });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function predict(app: FastifyInstance, headers: Record<string, string> = {}, body: unknown = { features: GUIDE_FEATURES }) {
  return app.inject({ method: "POST", url: "/predict", ...json(body), headers: { "content-type": "application/json", ...headers } });
}
function reload(app: FastifyInstance, headers: Record<string, string> = {}, remoteAddress = "127.0.0.1") {
  return app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json", ...headers }, remoteAddress });
}

describe("authentication comes before the body is read", () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp(oauth({ API_KEY: KEY }));
  });
  afterAll(() => app.close());

  it("an unauthenticated bad body gets 401, not a 400 describing the schema", async () => {
    const bad = { features: [1, 2], extra: true };
    const anonymous = await predict(app, {}, bad);
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().fields).toBeUndefined();
    expect(anonymous.headers["www-authenticate"]).toBe('Bearer realm="predict"');
    expect((await predict(app, { "x-api-key": "not-the-key-not-the-key" }, bad)).statusCode).toBe(403);
    expect((await predict(app, bearer(await issuer.token(rsa, { iss: "https://elsewhere.example" })), bad)).statusCode).toBe(401);
    // Neither the media type nor the size of an anonymous body is looked at.
    const form = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": "text/plain" }, payload: "x" });
    expect(form.statusCode).toBe(401);
    const huge = await predict(app, {}, { features: Array(300_000).fill(0.5) });
    expect(huge.statusCode).toBe(401);
    // Authenticated, the same body is judged on its merits.
    const judged = await predict(app, { "x-api-key": KEY }, bad);
    expect(judged.statusCode).toBe(400);
    expect(judged.json().error).toBe("validation_error");
  });

  it("the Bearer scheme is matched case-insensitively (RFC 7235)", async () => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      expect((await predict(app, { authorization: `${scheme} ${KEY}` })).statusCode, scheme).toBe(200);
      expect((await predict(app, { authorization: `${scheme} ${await issuer.token(ec)}` })).statusCode, scheme).toBe(200);
    }
    expect((await predict(app, { authorization: `Basic ${KEY}` })).statusCode).toBe(401);
  });
});

describe("admin routes are never open by accident", () => {
  it("without admin credentials they answer only direct loopback clients", async () => {
    const app = await testApp({ API_KEY: KEY });
    for (const local of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) expect((await reload(app, {}, local)).statusCode, local).toBe(200);
    const remote = await reload(app, {}, REMOTE);
    expect(remote.statusCode).toBe(403);
    expect(remote.json().message).toContain("ADMIN_API_KEY");
    // A proxy on this host relays remote clients over loopback.
    expect((await reload(app, { "x-forwarded-for": "203.0.113.9" })).statusCode).toBe(403);
    expect((await reload(app, { forwarded: "for=203.0.113.9" })).statusCode).toBe(403);
    // Prediction keys are not admin keys.
    expect((await reload(app, { "x-api-key": KEY }, REMOTE)).statusCode).toBe(403);
    expect((await reload(app, bearer(KEY), REMOTE)).statusCode).toBe(403);
    await app.close();
  });

  // The address the rule reads is the socket's: here a real one, on a dual-stack listener.
  const external = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === "IPv4")?.address;
  it.skipIf(!external)("over real sockets: IPv4 and IPv6 loopback admitted, this host's external address refused", async () => {
    const app = await testApp();
    await app.listen({ host: "::", port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const status = async (host: string) => (await fetch(`http://${host}:${port}/admin/reload`, { method: "POST", headers: { "content-type": "application/json" } })).status;
    try {
      expect(await status("127.0.0.1")).toBe(200); // seen as ::ffff:127.0.0.1
      expect(await status("[::1]")).toBe(200);
      expect(await status(external!)).toBe(403);
    } finally {
      await app.close();
    }
  });

  it("with ADMIN_API_KEY they need it, from anywhere, and prediction keys do not do", async () => {
    const app = await testApp({ API_KEY: KEY, ADMIN_API_KEY: ADMIN_KEY });
    expect((await reload(app, {}, "127.0.0.1")).statusCode).toBe(401);
    expect((await reload(app, { "x-api-key": KEY }, REMOTE)).statusCode).toBe(403);
    expect((await reload(app, { "x-api-key": ADMIN_KEY }, REMOTE)).statusCode).toBe(200);
    expect((await predict(app, { "x-api-key": ADMIN_KEY })).statusCode).toBe(403);
    await app.close();
  });
});

describe("OAuth2 access tokens", () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp(oauth({ API_KEY: KEY, ADMIN_API_KEY: ADMIN_KEY }));
  });
  afterAll(() => app.close());

  it("RS256 and ES256 tokens with the predict scope are admitted; the key set is fetched once, not per token", async () => {
    const before = issuer.fetches();
    for (const key of [rsa, ec, rsa, ec]) {
      const res = await predict(app, bearer(await issuer.token(key)));
      expect(res.statusCode, key.alg).toBe(200);
    }
    expect(issuer.fetches() - before).toBeLessThanOrEqual(1);
  });

  it("refuses bad tokens with 401 invalid_token", async () => {
    const now = Math.floor(Date.now() / 1000);
    const valid = await issuer.token(rsa);
    const [header, , signature] = valid.split(".");
    const escalated = Buffer.from(JSON.stringify(issuer.claims({ sub: "admin" }))).toString("base64url");
    const cases: [string, string][] = [
      ["expired", await issuer.token(rsa, { iat: now - 900, exp: now - 600 })],
      ["not yet valid", await issuer.token(ec, { nbf: now + 600 })],
      ["wrong issuer", await issuer.token(rsa, { iss: "https://evil.example" })],
      ["wrong audience", await issuer.token(rsa, { aud: "https://other.example/api" })],
      ["no expiry", await issuer.token(rsa, { exp: undefined })],
      ["no subject", await issuer.token(ec, { sub: undefined })],
      // HS256 keyed with the public key (the classic algorithm confusion), and no signature at all.
      ["HS256", await new SignJWT(issuer.claims({})).setProtectedHeader({ alg: "HS256", kid: rsa.kid }).sign(new TextEncoder().encode(JSON.stringify(rsa.jwk)))],
      ["alg none", unsignedToken({ alg: "none", typ: "JWT" }, issuer.claims({}))],
      ["forged with a published kid", await issuer.token(await signingKey("RS256", rsa.kid))],
      ["forged with an unknown kid", await issuer.token(await signingKey("ES256", "intruder"))],
      ["claims changed after signing", `${header}.${escalated}.${signature}`],
      ["malformed", "abc.def.ghi"],
    ];
    for (const [name, token] of cases) {
      const res = await predict(app, bearer(token));
      expect(res.statusCode, name).toBe(401);
      expect(res.json().error, name).toBe("invalid_token");
      expect(res.headers["www-authenticate"], name).toBe('Bearer realm="predict", error="invalid_token"');
    }
  });

  it("each realm needs its own scope (scope or scp)", async () => {
    const adminOnly = await issuer.token(rsa, { scope: "admin" });
    const refused = await predict(app, bearer(adminOnly));
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toBe("insufficient_scope");
    expect(refused.headers["www-authenticate"]).toBe('Bearer realm="predict", error="insufficient_scope", scope="predict"');
    expect((await predict(app, bearer(await issuer.token(rsa, { scope: "openid profile" })))).statusCode).toBe(403);
    expect((await reload(app, bearer(await issuer.token(rsa)), REMOTE)).statusCode).toBe(403);
    expect((await reload(app, bearer(adminOnly), REMOTE)).statusCode).toBe(200);
    const both = await issuer.token(ec, { scope: undefined, scp: ["predict", "admin"] });
    expect((await predict(app, bearer(both))).statusCode).toBe(200);
    expect((await reload(app, bearer(both), REMOTE)).statusCode).toBe(200);
  });

  it("/metrics takes a token with the metrics scope, and no other (issue 22, item 1)", async () => {
    const scrape = (headers: Record<string, string>) => app.inject({ method: "GET", url: "/metrics", headers });
    const anonymous = await scrape({});
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers["www-authenticate"]).toBe('Bearer realm="metrics"');
    const predictOnly = await scrape(bearer(await issuer.token(rsa)));
    expect(predictOnly.statusCode).toBe(403);
    expect(predictOnly.headers["www-authenticate"]).toBe('Bearer realm="metrics", error="insufficient_scope", scope="metrics"');
    expect((await scrape({ "x-api-key": KEY })).statusCode).toBe(403);
    const metricsToken = await issuer.token(ec, { scope: "metrics" });
    expect((await scrape(bearer(metricsToken))).statusCode).toBe(200);
    expect((await predict(app, bearer(metricsToken))).statusCode).toBe(403);
  });

  it("API keys keep working beside tokens", async () => {
    expect((await predict(app, { "x-api-key": KEY })).statusCode).toBe(200);
    expect((await predict(app, bearer(KEY))).statusCode).toBe(200);
    expect((await reload(app, bearer(ADMIN_KEY), REMOTE)).statusCode).toBe(200);
    // A token is not an API key.
    expect((await predict(app, { "x-api-key": await issuer.token(rsa) })).statusCode).toBe(403);
  });

  it("honours the clock skew on expiry and not-before", async () => {
    const now = Math.floor(Date.now() / 1000);
    const justExpired = await issuer.token(rsa, { iat: now - 300, exp: now - 10 });
    const almostValid = await issuer.token(rsa, { nbf: now + 10 });
    expect((await predict(app, bearer(justExpired))).statusCode).toBe(200); // within the default 30 s
    expect((await predict(app, bearer(almostValid))).statusCode).toBe(200);
    const strict = await testApp(oauth({ OAUTH_CLOCK_SKEW_SECONDS: "0" }));
    expect((await predict(strict, bearer(justExpired))).statusCode).toBe(401);
    expect((await predict(strict, bearer(almostValid))).statusCode).toBe(401);
    await strict.close();
  });

  it("a remembered verification ends with the token's expiry", { timeout: 30_000 }, async () => {
    const strict = await testApp(oauth({ OAUTH_CLOCK_SKEW_SECONDS: "0" }));
    const shortLived = await issuer.token(ec, { exp: Math.floor(Date.now() / 1000) + 2 });
    expect((await predict(strict, bearer(shortLived))).statusCode).toBe(200);
    expect((await predict(strict, bearer(shortLived))).statusCode).toBe(200);
    await waitFor("the expired token refused", async () => (await predict(strict, bearer(shortLived))).statusCode === 401, 15_000);
    await strict.close();
  });

  it("sets the identity the rate limit keys on", async () => {
    const bare = Fastify({ logger: false });
    await bare.register(errorsPlugin);
    await bare.register(authPlugin, { config: parseConfig(oauth({ API_KEY: KEY })) });
    bare.get("/who", { config: { auth: "predict" } }, async (request) => ({ identity: request.identity }));
    const who = async (headers: Record<string, string>) => (await bare.inject({ method: "GET", url: "/who", headers })).json().identity;
    const keyId = `key:${createHash("sha256").update(KEY).digest("base64url").slice(0, 16)}`;
    expect(await who({ "x-api-key": KEY })).toBe(keyId);
    expect(await who(bearer(KEY))).toBe(keyId);
    expect(await who(bearer(await issuer.token(ec, { sub: "alice" })))).toBe(`jwt:${issuer.url}#alice`);
    await bare.close();
  });
});

describe("the issuer's keys", () => {
  it("unreachable keys answer 503 with Retry-After (when the next fetch may be tried), generic, while API keys keep working", async () => {
    const app = await testApp(oauth({ API_KEY: KEY, OAUTH_JWKS_URL: `http://127.0.0.1:${await freePort()}/jwks` }));
    const res = await predict(app, bearer(await issuer.token(rsa)));
    expect(res.statusCode).toBe(503);
    expect(res.headers["retry-after"]).toBe("30"); // OAUTH_JWKS_COOLDOWN_SECONDS
    expect(res.json()).toEqual({ error: "unavailable", message: "cannot verify access tokens now; retry later", request_id: expect.any(String) });
    expect((await predict(app, { "x-api-key": KEY })).statusCode).toBe(200);
    await app.close();
  });

  it("are discovered from the issuer, again after a failed discovery (once the cool-down is over), and only from a document naming it", async () => {
    const app = await testApp(oauth({ OAUTH_JWKS_COOLDOWN_SECONDS: "1" }));
    const token = await issuer.token(ec);
    issuer.fail(500);
    try {
      expect((await predict(app, bearer(token))).statusCode).toBe(503);
    } finally {
      issuer.fail(undefined);
    }
    await waitFor("discovery retried", async () => (await predict(app, bearer(token))).statusCode === 200, 5000);
    await app.close();
    // The document names issuer.url; an issuer configured as issuer.url + "/" is another one.
    const other = await testApp(oauth({ OAUTH_ISSUER: `${issuer.url}/` }));
    expect((await predict(other, bearer(await issuer.token(ec, { iss: `${issuer.url}/` })))).statusCode).toBe(503);
    await other.close();
  });

  it("rotation: a new key is admitted at once, a removed key is refused once the cache expires", { timeout: 30_000 }, async () => {
    const own = await startIssuer();
    const [old, next] = [await signingKey("RS256", "2026-01"), await signingKey("ES256", "2026-02")];
    own.publish([old]);
    const app = await testApp({
      OAUTH_ISSUER: own.url,
      OAUTH_AUDIENCE: AUDIENCE,
      OAUTH_JWKS_URL: own.jwksUrl,
      OAUTH_JWKS_CACHE_SECONDS: "1",
      OAUTH_JWKS_COOLDOWN_SECONDS: "1",
    });
    try {
      const oldToken = await own.token(old);
      const nextToken = await own.token(next);
      expect((await predict(app, bearer(oldToken))).statusCode).toBe(200);
      expect((await predict(app, bearer(nextToken))).statusCode).toBe(401); // not published yet
      own.publish([old, next]);
      // A token naming an unknown key refetches the set, at most once per cool-down.
      await waitFor("the new key admitted", async () => (await predict(app, bearer(nextToken))).statusCode === 200, 5000);
      own.publish([next]);
      // Tokens under the removed key verify until the cached set is older than OAUTH_JWKS_CACHE_SECONDS.
      await waitFor("the removed key refused", async () => (await predict(app, bearer(oldToken))).statusCode === 401, 15_000);
      expect((await predict(app, bearer(nextToken))).statusCode).toBe(200);
    } finally {
      await app.close();
      await own.close();
    }
  });
});

/** A prediction over real HTTP, with these headers: status, Retry-After and the body. */
async function predictOver(server: ServerProcess, headers: Record<string, string>) {
  const res = await fetch(`${server.url}/predict`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ features: GUIDE_FEATURES }) });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { error?: string; message?: string } };
}
const lines = (output: string, text: string) => output.split("\n").filter((l) => l.includes(text)).length;

describe("loose tokens and discovered key sets are refused, each with its reason (the real server)", () => {
  it("a subject that is not a string of 1 to 255 characters, an issue time in the future", { timeout: 30_000 }, async () => {
    const server = await startServer(oauth({ MODELS: "xgboost" }));
    try {
      const now = Math.floor(Date.now() / 1000);
      const cases: [string, object, RegExp][] = [
        ["sub a number", { sub: 42 }, /"sub"/],
        ["sub an object", { sub: {} }, /"sub"/],
        ["sub empty", { sub: "" }, /"sub"/],
        ["sub of 256 characters", { sub: "u".repeat(256) }, /"sub"/],
        ["sub with a control character", { sub: "user\n1" }, /"sub"/],
        ["iat in the future", { iat: now + 3600 }, /"iat".*future/],
      ];
      for (const [name, claims, reason] of cases) {
        const res = await predictOver(server, bearer(await issuer.token(ec, claims as never)));
        expect(res.status, name).toBe(401);
        expect(res.body.error, name).toBe("invalid_token");
        expect(res.body.message, name).toMatch(reason);
      }
      // Within the clock skew an issuer's clock may run ahead.
      expect((await predictOver(server, bearer(await issuer.token(ec, { iat: now + 10 })))).status).toBe(200);
    } finally {
      server.child.kill("SIGKILL");
    }
  });

  it("a discovered jwks_uri on another host or scheme than the issuer is not fetched: 503, the reason logged", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "issuer-"));
    const tls = { cert: selfSigned(dir, "issuer"), key: readFileSync(join(dir, "key.pem")) };
    const plain = await startIssuer();
    const issuers = {
      // The same keys at the same address under another name: only the host differs.
      elsewhere: await startIssuer({ jwksUri: (url) => `${url.replace("127.0.0.1", "localhost")}/jwks` }),
      // An HTTPS issuer whose document sends the key fetch to plain HTTP.
      downgraded: await startIssuer({ tls, jwksUri: () => plain.jwksUrl }),
      honest: await startIssuer({ tls }),
    };
    const expected = { elsewhere: 503, downgraded: 503, honest: 200 };
    try {
      for (const [name, own] of Object.entries(issuers)) {
        for (const i of [own, plain]) i.publish([ec]);
        const server = await startServer({ OAUTH_ISSUER: own.url, OAUTH_AUDIENCE: AUDIENCE, MODELS: "xgboost", NODE_EXTRA_CA_CERTS: join(dir, "cert.pem") });
        try {
          expect((await predictOver(server, bearer(await own.token(ec)))).status, name).toBe(expected[name as keyof typeof expected]);
          if (name !== "honest") await waitFor(`${name}: the reason logged`, () => /names jwks_uri .* on another scheme or host than the issuer/.test(server.output()), 5000);
        } finally {
          server.child.kill("SIGKILL");
        }
      }
    } finally {
      await Promise.all([plain, ...Object.values(issuers)].map((i) => i.close()));
    }
  });
});

describe("an issuer outage and forged tokens cost bounded work (the real server)", () => {
  it("an issuer answering 500: 20 forged tokens cost one fetch and one warning, not 20; it is retried after the cool-down", { timeout: 30_000 }, async () => {
    const own = await startIssuer();
    own.publish([ec]);
    own.fail(500);
    const server = await startServer({ OAUTH_ISSUER: own.url, OAUTH_AUDIENCE: AUDIENCE, OAUTH_JWKS_COOLDOWN_SECONDS: "2", MODELS: "xgboost" });
    try {
      const forger = await signingKey("ES256", ec.kid);
      for (let i = 0; i < 20; i++) {
        const res = await predictOver(server, bearer(await own.token(forger, { sub: `forger-${i}` })));
        expect(res.status).toBe(503);
        expect(Number(res.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(Number(res.retryAfter)).toBeLessThanOrEqual(2);
      }
      expect(own.requests()).toBe(1);
      await waitFor("the warning", () => lines(server.output(), "issuer's keys") > 0, 5000);
      expect(lines(server.output(), "issuer's keys")).toBe(1);
      // Back up: the next fetch, once the cool-down is over, serves tokens again.
      own.fail(undefined);
      const token = await own.token(ec);
      await waitFor("the issuer's keys fetched again", async () => (await predictOver(server, bearer(token))).status === 200, 10_000);
      expect(own.requests()).toBeLessThanOrEqual(3); // one retry: discovery, then the key set
    } finally {
      server.child.kill("SIGKILL");
      await own.close();
    }
  });

  it("stale-if-error: past OAUTH_JWKS_CACHE_SECONDS with the issuer down, the last good keys keep verifying, refetched at most once per cool-down", { timeout: 30_000 }, async () => {
    const own = await startIssuer();
    own.publish([rsa, ec]);
    const server = await startServer({ OAUTH_ISSUER: own.url, OAUTH_AUDIENCE: AUDIENCE, OAUTH_JWKS_CACHE_SECONDS: "1", OAUTH_JWKS_COOLDOWN_SECONDS: "2", MODELS: "xgboost" });
    try {
      expect((await predictOver(server, bearer(await own.token(rsa)))).status).toBe(200);
      own.fail(500);
      const before = own.requests();
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 1200)); // the cached set is now older than the cache time
      // New tokens (none remembered) for 3 s: every one verified with the stale keys.
      const statuses: number[] = [];
      for (let i = 0; Date.now() - started < 4200; i++) {
        statuses.push((await predictOver(server, bearer(await own.token(i % 2 ? ec : rsa, { sub: `user-${i}` })))).status);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(new Set(statuses)).toEqual(new Set([200]));
      // Tried when the cache expired and then once per 2 s cool-down: 2 or 3 fetches in ~3 s, not one per token.
      expect(statuses.length).toBeGreaterThan(20);
      expect(own.requests() - before).toBeGreaterThanOrEqual(1);
      expect(own.requests() - before).toBeLessThanOrEqual(3);
      await waitFor("the warning", () => server.output().includes("the last good keys keep verifying"), 5000);
    } finally {
      server.child.kill("SIGKILL");
      await own.close();
    }
  });

  it("failed authentications spend the address's budget: once spent, credentials are refused before they are checked", { timeout: 30_000 }, async () => {
    const server = await startServer(oauth({ API_KEY: KEY, RATE_LIMIT_MAX: "20", MAX_BATCH_SAMPLES: "20", MAX_STREAM_LENGTH: "20", MODELS: "xgboost" }));
    try {
      const forger = await signingKey("ES256", ec.kid);
      const forged = await Promise.all(Array.from({ length: 21 }, (_, i) => issuer.token(forger, { sub: `forger-${i}` })));
      const statuses: number[] = [];
      for (const token of forged) statuses.push((await predictOver(server, bearer(token))).status);
      expect(statuses).toEqual([...Array<number>(20).fill(401), 429]);
      // The address's budget is spent for made-up keys and for tokens not yet verified too...
      expect((await predictOver(server, { "x-api-key": "made-up-key-0123456789" })).status).toBe(429);
      expect((await predictOver(server, bearer(await issuer.token(ec)))).status).toBe(429);
      // ...not for a known key, which has its own budget.
      expect((await predictOver(server, { "x-api-key": KEY })).status).toBe(200);
    } finally {
      server.child.kill("SIGKILL");
    }
  });
});

describe("failed authentications on routes without a budget of their own", () => {
  it("/metrics, /models: refused credentials spend the address's prediction budget; the scraper's key spends nothing", async () => {
    const metricsKey = "m".repeat(24);
    const app = await testApp({ API_KEY: KEY, METRICS_API_KEY: metricsKey, RATE_LIMIT_MAX: "20", MAX_BATCH_SAMPLES: "20", MAX_STREAM_LENGTH: "20" });
    try {
      const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: "GET", url, headers, remoteAddress: REMOTE });
      const statuses: number[] = [];
      for (let i = 0; i < 21; i++) statuses.push((await get("/metrics", { "x-api-key": `guessed-key-${String(i).padStart(12, "0")}` })).statusCode);
      expect(statuses).toEqual([...Array<number>(20).fill(403), 429]);
      expect((await get("/models")).statusCode).toBe(429);
      expect((await predict(app, {}, undefined)).statusCode).toBe(401); // another address: its own budget
      for (let i = 0; i < 30; i++) expect((await get("/metrics", { authorization: `Bearer ${metricsKey}` })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe("OpenAPI states the security the routes enforce", () => {
  const securityOf = async (env: Record<string, string>) => {
    const app = await testApp(env);
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    await app.close();
    return {
      schemes: spec.components.securitySchemes,
      predict: spec.paths["/predict"].post.security,
      admin: spec.paths["/admin/reload"].post.security,
      models: spec.paths["/models"].get.security,
      metrics: spec.paths["/metrics"].get,
    };
  };

  it("open, keys only, and keys with OAuth", async () => {
    // Open: no requirement and no scheme (Swagger UI shows no Authorize button).
    const open = await securityOf({});
    expect({ ...open, metrics: open.metrics.security }).toEqual({ schemes: undefined, predict: undefined, admin: undefined, models: undefined, metrics: undefined });
    expect(Object.keys(open.metrics.responses)).toEqual(["200"]);
    const keys = await securityOf({ API_KEY: KEY, ADMIN_API_KEY: ADMIN_KEY });
    expect(keys.predict).toEqual([{ apiKey: [] }, { bearer: [] }]);
    expect(keys.models).toEqual(keys.predict);
    expect(keys.schemes.bearer.bearerFormat).toBeUndefined();
    // Keys for the API but none for /metrics: it documents its refusal, and takes nothing.
    expect(keys.metrics.security).toBeUndefined();
    expect(keys.metrics.responses["403"].description).toContain("METRICS_API_KEY");
    const scraped = await securityOf({ API_KEY: KEY, METRICS_API_KEY: ADMIN_KEY.replace(/a/g, "m") });
    expect(scraped.metrics.security).toEqual([{ apiKey: [] }, { bearer: [] }]);
    expect(Object.keys(scraped.metrics.responses)).toEqual(["200", "401", "403"]);
    const tokens = await securityOf(oauth({ API_KEY: KEY }));
    expect(tokens.schemes.bearer).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(tokens.predict).toEqual([{ apiKey: [] }, { bearer: ["predict"] }]);
    expect(tokens.admin).toEqual([{ bearer: ["admin"] }]);
    expect(tokens.metrics.security).toEqual([{ bearer: ["metrics"] }]);
  });
});

describe("credentials never reach the logs", () => {
  it("the real server at LOG_LEVEL=trace logs only the headers it knows to be safe, and no query values, on every path", { timeout: 30_000 }, async () => {
    const server = await startServer(oauth({ API_KEY: KEY, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: "trace" }));
    try {
      const token = await issuer.token(rsa);
      const forged = await issuer.token(await signingKey("RS256", rsa.kid));
      const wrongKey = "w".repeat(24);
      // What proxies and identity-aware gateways add in front of a server (issue 22, item 8).
      const proxyTokens: Record<string, string> = {
        "x-forwarded-access-token": "oauth2-proxy-token-secret",
        "x-amzn-oidc-accesstoken": "alb-oidc-token-secret",
        "x-amzn-oidc-data": "alb-oidc-data-secret",
        "cf-access-jwt-assertion": "cloudflare-access-secret",
        "x-auth-token": "x-auth-token-secret",
        "x-probe": "unknown-header-secret",
      };
      const send = (path: string, headers: Record<string, string>, body: string = JSON.stringify({ features: GUIDE_FEATURES })) =>
        fetch(`${server.url}${path}?api_key=query-key-secret&probe=1`, {
          method: "POST",
          headers: { "content-type": "application/json", "user-agent": "visible-marker", ...proxyTokens, ...headers },
          body,
        });
      const statuses = [
        (await send("/predict", { "x-api-key": KEY })).status,
        (await send("/predict", { authorization: `bearer ${KEY}` })).status,
        (await send("/predict", bearer(token))).status,
        (await send("/predict", { "x-api-key": KEY }, "{not json")).status,
        (await send("/predict", { "x-api-key": wrongKey })).status,
        (await send("/predict", bearer(forged))).status,
        (await send("/admin/reload", bearer(KEY), "")).status,
        (await send("/admin/reload", { "x-api-key": ADMIN_KEY, cookie: `session=${wrongKey}` }, "{not json")).status,
      ];
      expect(statuses).toEqual([200, 200, 200, 400, 403, 401, 403, 400]);
      const logs = server.output();
      expect(logs).toContain("visible-marker"); // headers are logged: only the allowed ones' values
      expect(logs).toContain('"x-forwarded-access-token":"[redacted]"'); // the others are named
      expect(logs).toContain("/predict?api_key=[redacted]&probe=[redacted]");
      for (const secret of [KEY, ADMIN_KEY, wrongKey, token, forged, "query-key-secret", ...Object.values(proxyTokens)]) expect(logs).not.toContain(secret);
    } finally {
      server.child.kill("SIGKILL");
      await server.exit;
    }
  });
});
