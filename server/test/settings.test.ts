import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_MODEL_DIR, parseConfig } from "../src/config.js";
import { GUIDE_FEATURES, RETURN_BUNDLE, SERVER_JS, copyBundle, json, testApp } from "./helpers.js";

const KEY = "k".repeat(24);
const OTHER_KEY = "o".repeat(24);

describe("configuration", () => {
  it("has working defaults and no default secrets", () => {
    const c = parseConfig({});
    expect(c.PORT).toBe(8000);
    expect(c.MODEL_DIR).toBe(DEFAULT_MODEL_DIR);
    expect(c.MODELS).toBeUndefined(); // the models of the bundle served at start
    expect(c.DEFAULT_MODEL).toBeUndefined(); // the bundle's default_model if served
    expect(c.API_KEY).toBeUndefined();
    expect(c.ADMIN_API_KEY).toBeUndefined();
    expect(c.ENABLE_METRICS).toBe(true);
    expect(c.SHUTDOWN_DELAY_MS).toBe(5000);
    expect(parseConfig({ SHUTDOWN_DELAY_MS: "0" }).SHUTDOWN_DELAY_MS).toBe(0);
    expect(c.RELOAD_TIMEOUT_MS).toBe(60_000);
    expect(c.TLS_CERT_FILE).toBeUndefined();
  });

  it("reads the guide's production settings", () => {
    const c = parseConfig({
      MODEL_DIR: "/app/models",
      LOG_LEVEL: "INFO",
      WORKERS: "4",
      API_KEY: `${KEY}, ${OTHER_KEY}`,
      ALLOWED_ORIGINS: "https://yourdomain.com",
      ENABLE_METRICS: "true",
      METRICS_PORT: "9090",
      REDIS_URL: "redis://redis:6379/0",
      CACHE_TTL: "300",
    });
    expect(c).toMatchObject({ LOG_LEVEL: "info", WORKERS: 4, API_KEY: [KEY, OTHER_KEY], ALLOWED_ORIGINS: ["https://yourdomain.com"], METRICS_PORT: 9090 });
  });

  it("stops on bad values with one readable line per variable, secrets hidden", () => {
    let message = "";
    try {
      parseConfig({
        PORT: "eighty",
        WORKERS: "0",
        LOG_LEVEL: "LOUD",
        REDIS_URL: "http://x",
        API_KEY: "short-secret",
        METRICS_API_KEY: "short-scrape",
        MODELS: "xgboost,ARIMA",
        MODEL_BUNDLE: "../elsewhere",
        SHUTDOWN_DELAY_MS: "-1",
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    for (const name of ["PORT=", "WORKERS=", "LOG_LEVEL=", "REDIS_URL=", "API_KEY=(hidden)", "METRICS_API_KEY=(hidden)", "MODELS=", "MODEL_BUNDLE=", "SHUTDOWN_DELAY_MS="]) {
      expect(message).toContain(name);
    }
    expect(message).not.toContain("short-secret");
    expect(message).not.toContain("short-scrape");
  });

  it("OAuth: defaults, and an issuer needs an audience", () => {
    const issuer = "https://login.example.com/realms/markets";
    const c = parseConfig({ OAUTH_ISSUER: issuer, OAUTH_AUDIENCE: "wavelet-api" });
    expect(c).toMatchObject({
      OAUTH_ISSUER: issuer,
      OAUTH_AUDIENCE: "wavelet-api",
      OAUTH_PREDICT_SCOPE: "predict",
      OAUTH_ADMIN_SCOPE: "admin",
      OAUTH_METRICS_SCOPE: "metrics",
      OAUTH_CLOCK_SKEW_SECONDS: 30,
      OAUTH_JWKS_CACHE_SECONDS: 600,
      OAUTH_JWKS_COOLDOWN_SECONDS: 30,
    });
    expect(c.OAUTH_JWKS_URL).toBeUndefined();
    expect(parseConfig({}).OAUTH_ISSUER).toBeUndefined();
    expect(() => parseConfig({ OAUTH_ISSUER: issuer })).toThrow(/OAUTH_AUDIENCE=null: is required with OAUTH_ISSUER/);
    expect(() => parseConfig({ OAUTH_AUDIENCE: "wavelet-api" })).toThrow(/OAUTH_ISSUER=null: is required when OAUTH_AUDIENCE/);
    expect(() => parseConfig({ OAUTH_ISSUER: "login.example.com" })).toThrow(/OAUTH_ISSUER=.*expected the issuer's URL/);
    expect(() => parseConfig({ OAUTH_ISSUER: issuer, OAUTH_AUDIENCE: "a", OAUTH_PREDICT_SCOPE: "predict admin" })).toThrow(/OAUTH_PREDICT_SCOPE=.*one scope name/);
    expect(() => parseConfig({ OAUTH_ISSUER: issuer, OAUTH_AUDIENCE: "a", OAUTH_JWKS_URL: "ftp://x/jwks" })).toThrow(/OAUTH_JWKS_URL=/);
  });

  it("OAuth and key settings that would fetch keys in clear or merge the realms stop the start, each with its reason", () => {
    const issuer = "https://login.example.com/realms/markets";
    const base = { OAUTH_ISSUER: issuer, OAUTH_AUDIENCE: "wavelet-api" };
    expect(() => parseConfig({ ...base, OAUTH_ISSUER: "http://login.example.com" })).toThrow(/OAUTH_ISSUER="http:\/\/login\.example\.com": must be https:\/\//);
    for (const local of ["http://127.0.0.1:8080", "http://localhost:8080/realms/dev", "http://[::1]:8080"]) {
      expect(parseConfig({ ...base, OAUTH_ISSUER: local }).OAUTH_ISSUER, local).toBe(local);
    }
    expect(() => parseConfig({ ...base, OAUTH_JWKS_URL: "http://keys.example.com/jwks" })).toThrow(/OAUTH_JWKS_URL=.*must be https:\/\//);
    expect(() => parseConfig({ ...base, OAUTH_ADMIN_SCOPE: "predict" })).toThrow(/OAUTH_ADMIN_SCOPE="predict": must differ from OAUTH_PREDICT_SCOPE/);
    expect(() => parseConfig({ API_KEY: `${KEY},${OTHER_KEY}`, ADMIN_API_KEY: OTHER_KEY })).toThrow(/ADMIN_API_KEY=\(hidden\): shares a key with API_KEY/);
    // The metrics realm (issue 22, item 1) is a realm of its own too.
    for (const taken of ["predict", "admin"]) {
      expect(() => parseConfig({ ...base, OAUTH_METRICS_SCOPE: taken })).toThrow(new RegExp(`OAUTH_METRICS_SCOPE="${taken}": must differ from OAUTH_PREDICT_SCOPE and OAUTH_ADMIN_SCOPE`));
    }
    for (const other of ["API_KEY", "ADMIN_API_KEY"]) {
      expect(() => parseConfig({ [other]: KEY, METRICS_API_KEY: `${OTHER_KEY},${KEY}` })).toThrow(/METRICS_API_KEY=\(hidden\): shares a key with API_KEY or ADMIN_API_KEY/);
    }
    // The real process: exit 2, one line per offending setting, no key shown.
    const run = spawnSync(process.execPath, [SERVER_JS], {
      env: { ...process.env, ...base, OAUTH_ISSUER: "http://login.example.com", OAUTH_PREDICT_SCOPE: "wavelet", OAUTH_ADMIN_SCOPE: "wavelet", API_KEY: KEY, ADMIN_API_KEY: KEY },
      encoding: "utf8",
      timeout: 25_000,
    });
    expect(run.status).toBe(2);
    const lines = run.stderr.trim().split("\n");
    expect(lines[0]).toBe("invalid configuration:");
    expect(lines.slice(1).map((l) => l.trim().split("=")[0]).sort()).toEqual(["ADMIN_API_KEY", "OAUTH_ADMIN_SCOPE", "OAUTH_ISSUER"]);
    expect(run.stderr).not.toContain(KEY);
  }, 30_000);

  it("requires a metrics port for several workers", () => {
    expect(() => parseConfig({ WORKERS: "2" })).toThrow(/METRICS_PORT.*required when WORKERS > 1/);
    expect(() => parseConfig({ METRICS_PORT: "8000" })).toThrow(/must differ from PORT/);
  });

  it("TLS_RELOAD_INTERVAL_MS: 10 s by default, 0 turns the polling off, else 100 ms to an hour, a bad value one line", () => {
    expect(parseConfig({}).TLS_RELOAD_INTERVAL_MS).toBe(10_000);
    for (const [value, parsed] of [["0", 0], ["100", 100], [" 2500 ", 2500], ["3600000", 3_600_000]] as const) {
      expect(parseConfig({ TLS_RELOAD_INTERVAL_MS: value }).TLS_RELOAD_INTERVAL_MS).toBe(parsed);
    }
    for (const value of ["-1", "50", "99", "1.5", "3600001", "10s", "off"]) {
      let message = "";
      try {
        parseConfig({ TLS_RELOAD_INTERVAL_MS: value });
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        message = (error as Error).message;
      }
      const lines = message.split("\n");
      expect(lines[0]).toBe("invalid configuration:");
      expect(lines.slice(1)).toHaveLength(1);
      expect(lines[1]).toMatch(new RegExp(`^  TLS_RELOAD_INTERVAL_MS="${value.replace(".", "\\.")}": expected `));
    }
  });
});

describe("API keys", () => {
  it("guard prediction routes, accept several keys in header or bearer form, and leave health open", async () => {
    const app = await testApp({ API_KEY: `${KEY},${OTHER_KEY}` });
    const predict = (headers: Record<string, string>) => app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }), headers: { "content-type": "application/json", ...headers } });
    expect((await predict({})).statusCode).toBe(401);
    expect((await predict({ "x-api-key": "wrong-key-wrong-key-wrong" })).statusCode).toBe(403);
    expect((await predict({ "x-api-key": KEY })).statusCode).toBe(200);
    expect((await predict({ authorization: `Bearer ${OTHER_KEY}` })).statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/health" })).statusCode).toBe(200);
    await app.close();
  });
});

describe("CORS", () => {
  it("allows only the configured origins", async () => {
    const app = await testApp({ ALLOWED_ORIGINS: "https://yourdomain.com" });
    const preflight = (origin: string) =>
      app.inject({ method: "OPTIONS", url: "/predict", headers: { origin, "access-control-request-method": "POST" } });
    expect((await preflight("https://yourdomain.com")).headers["access-control-allow-origin"]).toBe("https://yourdomain.com");
    expect((await preflight("https://evil.example")).headers["access-control-allow-origin"]).toBeUndefined();
    await app.close();
  });

  it("lets a browser read the auth challenge, rate-limit and bundle headers", async () => {
    const app = await testApp({ ALLOWED_ORIGINS: "https://yourdomain.com", API_KEY: "a-prediction-key-0123" });
    const res = await app.inject({ method: "POST", url: "/predict", headers: { origin: "https://yourdomain.com" } });
    expect(res.statusCode).toBe(401);
    expect(res.headers["www-authenticate"]).toBeDefined();
    const exposed = String(res.headers["access-control-expose-headers"]).toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(["www-authenticate", "retry-after", "x-ratelimit-remaining", "x-bundle-digest", "x-request-id"]));
    await app.close();
  });

  it("sends no CORS headers when no origin is allowed", async () => {
    const app = await testApp();
    const res = await app.inject({ method: "GET", url: "/health", headers: { origin: "https://yourdomain.com" } });
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    await app.close();
  });
});

describe("which models load, and when", () => {
  it("MODELS loads only those; asking another answers 503 as the guide shows", async () => {
    const app = await testApp({ MODELS: "xgboost,ensemble" });
    const health = (await app.inject({ method: "GET", url: "/health" })).json();
    expect(health.models).toEqual({ xgboost: "loaded", ensemble: "loaded" });
    const res = await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES, model_type: "lstm" }) });
    expect(res.statusCode).toBe(503);
    expect(res.json().message).toBe("Model lstm not loaded");
    await app.close();
  });

  it("DEFAULT_MODEL answers requests that name no model, and must be loaded", async () => {
    expect(() => parseConfig({ MODELS: "xgboost", DEFAULT_MODEL: "lstm" })).toThrow(/DEFAULT_MODEL.*must be one of MODELS/);
    expect(parseConfig({ MODELS: "lstm,transformer" }).DEFAULT_MODEL).toBe("lstm");
    const app = await testApp({ MODELS: "xgboost,ensemble", DEFAULT_MODEL: "xgboost" });
    const res = await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) });
    expect(res.json().model_type).toBe("xgboost");
    await app.close();
  });

  it("MODEL_LOADING=lazy is ready once verified and loads a model on its first request", async () => {
    const app = await testApp({ MODEL_LOADING: "lazy" });
    const before = await app.inject({ method: "GET", url: "/health" });
    expect(before.statusCode).toBe(200);
    expect(before.json().models.transformer).toBe("not_loaded");
    const res = await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES, model_type: "transformer" }) });
    expect(res.statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/health" })).json().models).toMatchObject({ transformer: "loaded", xgboost: "not_loaded" });
    await app.close();
  });

  it("QUANTIZED serves the int8 variants the bundle ships", async () => {
    const app = await testApp({ QUANTIZED: "true" });
    const models = (await app.inject({ method: "GET", url: "/models" })).json().models;
    const lstm = models.find((m: { name: string }) => m.name === "lstm");
    expect(lstm.file).toBe("lstm_optimized.int8.onnx");
    expect(lstm.precision).toBe("int8-static");
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES, model_type: "lstm" }) })).statusCode).toBe(200);
    await app.close();
  });

  it("EXPECTED_BUNDLE_DIGEST that differs keeps the server unready and refuses predictions", async () => {
    const app = await testApp({ EXPECTED_BUNDLE_DIGEST: `sha256:${"0".repeat(64)}` });
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.statusCode).toBe(503);
    expect(res.json().reasons[0]).toMatch(/is not the expected sha256:0000/);
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) })).statusCode).toBe(503);
    await app.close();
  });

  it("a bundle that fails verification at start leaves the server up, unready, with the reason", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const graph = join(dir, "xgboost_optimized.onnx");
    writeFileSync(graph, Buffer.concat([readFileSync(graph), Buffer.from([0])]));
    const app = await testApp({ MODEL_DIR: dir });
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.statusCode).toBe(503);
    expect(res.json().reasons[0]).toContain("xgboost_optimized.onnx does not match its sha256");
    const predict = await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) });
    expect(predict.statusCode).toBe(503);
    await app.close();
  });
});

describe("errors and observability settings", () => {
  it("a server error answers a generic body with the request id, never the error's text", async () => {
    const { errorBody } = await import("../src/plugins/errors.js");
    const failure = Object.assign(new Error("ENOENT /secret/path/model.onnx"), { statusCode: 500, code: "X" });
    const { status, body } = errorBody(failure as never, "req-42");
    expect(status).toBe(500);
    expect(body).toEqual({ error: "internal_error", message: "Internal server error", request_id: "req-42" });
    expect(errorBody(new Error("boom") as never, "req-43").body.message).toBe("Internal server error");
  });

  it("ENABLE_METRICS=false serves no /metrics", async () => {
    const app = await testApp({ ENABLE_METRICS: "false" });
    expect((await app.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(404);
    await app.close();
  });
});
