import { readFileSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECURITY_HEADERS } from "../src/plugins/securityHeaders.js";
import { metricsRoute } from "../src/routes/metrics.js";
import { manifestSchema } from "../src/schemas/manifest.js";
import { json, RETURN_BUNDLE, testApp } from "./helpers.js";

// The document as parsed JSON, read by path (openapi-types' unions would want a cast at every step).
type Document = any;

const PREDICTION_ROUTES = ["/predict", "/predict/batch", "/predict/stream"];

async function specOf(app: FastifyInstance): Promise<Document> {
  return (await app.inject({ method: "GET", url: "/openapi.json" })).json();
}

function operations(spec: Document): [string, Document][] {
  return Object.entries(spec.paths as Record<string, Record<string, Document>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]): [string, Document] => [`${method.toUpperCase()} ${path}`, op]),
  );
}

/** Every value of `key` anywhere in the document. */
function valuesOf(node: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) node.forEach((n) => valuesOf(n, key, out));
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push(v);
      valuesOf(v, key, out);
    }
  }
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

describe("the OpenAPI document, auth off", () => {
  let app: FastifyInstance;
  let spec: Document;
  beforeAll(async () => {
    app = await testApp();
    spec = await specOf(app);
  });
  afterAll(() => app.close());

  it("every status of every operation has its own description and a schema for its body", () => {
    const ops = operations(spec);
    expect(ops.length).toBeGreaterThanOrEqual(9);
    for (const [name, op] of ops) {
      for (const [status, response] of Object.entries(op.responses ?? {}) as [string, Document][]) {
        expect(response.description, `${name} ${status}`).toBeTruthy();
        expect(response.description, `${name} ${status}`).not.toBe("Default Response");
        const media: Document[] = Object.values(response.content ?? {});
        expect(media.length, `${name} ${status} has a body`).toBeGreaterThan(0);
        for (const m of media) expect(m.schema, `${name} ${status}`).toBeTruthy();
      }
    }
  });

  it("one schema per concept, under its plain name, each one used", () => {
    const schemas = spec.components.schemas;
    const names = Object.keys(schemas);
    expect(names.filter((n) => n.endsWith("Input"))).toEqual([]);
    const refs = new Set(valuesOf(spec, "$ref") as string[]);
    expect([...refs].filter((r) => !names.includes(r.replace("#/components/schemas/", "")))).toEqual([]);
    expect(names.filter((n) => !refs.has(`#/components/schemas/${n}`))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(["PredictRequest", "PredictResponse", "BatchRequest", "BatchResponse", "StreamRequest", "Error", "Health", "Models"]));
  });

  it("a request that takes features or prices is a oneOf of the two named shapes", () => {
    const schemas = spec.components.schemas;
    const body = (path: string) => (spec.paths[path].post.requestBody.content["application/json"].schema);
    for (const [path, name] of [["/predict", "Predict"], ["/predict/stream", "Stream"]] as const) {
      expect(body(path)).toEqual(ref(`${name}Request`));
      expect(schemas[`${name}Request`].oneOf).toEqual([ref(`${name}FeaturesRequest`), ref(`${name}PricesRequest`)]);
      expect(schemas[`${name}FeaturesRequest`]).toMatchObject({ type: "object", required: ["features"], additionalProperties: false });
      expect(schemas[`${name}PricesRequest`]).toMatchObject({ type: "object", required: ["prices"], additionalProperties: false });
      expect(schemas[`${name}FeaturesRequest`].properties.prices).toBeUndefined();
      expect(schemas[`${name}PricesRequest`].properties.features).toBeUndefined();
    }
  });

  it("examples look like real answers, and the request examples are accepted", async () => {
    // No integer left to zod's ±2^53 bounds, which Swagger UI shows as the example.
    expect(valuesOf(spec, "minimum")).not.toContain(Number.MIN_SAFE_INTEGER);
    const schemas = spec.components.schemas;
    const predict = schemas.PredictResponse.properties;
    expect(predict.target.properties.horizon).toMatchObject({ type: "integer", minimum: 1, maximum: 252 });
    expect(predict.model_type.example).toBe("ensemble");
    expect(schemas.BatchResponse.properties.model_type.example).toBe("ensemble");
    const requests: [string, string][] = [
      ["/predict", "PredictFeaturesRequest"],
      ["/predict", "PredictPricesRequest"],
      ["/predict/batch", "BatchRequest"],
      ["/predict/stream", "StreamFeaturesRequest"],
      ["/predict/stream", "StreamPricesRequest"],
    ];
    for (const [url, name] of requests) {
      const res = await app.inject({ method: "POST", url, ...json(schemas[name].example) });
      expect(res.statusCode, name).toBe(200);
    }
  });

  it("a bundle is held to the horizon the document states", () => {
    const manifest = JSON.parse(readFileSync(join(RETURN_BUNDLE, "manifest.json"), "utf8"));
    const withHorizon = (horizon: number) => manifestSchema.safeParse({ ...manifest, target: { ...manifest.target, horizon } }).success;
    expect([withHorizon(1), withHorizon(252), withHorizon(253), withHorizon(0)]).toEqual([true, true, false, false]);
  });

  it("the stream declares NDJSON and Server-Sent Events, Server-Sent Events first (Swagger UI's Try it out asks for the first)", () => {
    const ok = spec.paths["/predict/stream"].post.responses["200"];
    expect(Object.keys(ok.content)).toEqual(["text/event-stream", "application/x-ndjson"]);
    for (const media of Object.values(ok.content) as Document[]) expect(media.schema).toMatchObject({ type: "string", contentSchema: ref("StreamItem") });
  });

  it("/metrics declares the Prometheus text format, and answers in it", async () => {
    const ok = spec.paths["/metrics"].get.responses["200"];
    expect(Object.keys(ok.content)).toEqual(["text/plain; version=0.0.4"]);
    expect((await app.inject({ method: "GET", url: "/metrics" })).headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("with auth off, the prediction routes list no credentials and no 401 or 403; the admin route its local-only 403", () => {
    expect(spec.components.securitySchemes).toBeUndefined();
    for (const path of PREDICTION_ROUTES) {
      const op = spec.paths[path].post;
      expect(op.security, path).toBeUndefined();
      expect(Object.keys(op.responses), path).not.toEqual(expect.arrayContaining(["401"]));
      expect(Object.keys(op.responses), path).not.toEqual(expect.arrayContaining(["403"]));
    }
    const admin = spec.paths["/admin/reload"].post;
    expect(admin.security).toBeUndefined();
    expect(Object.keys(admin.responses)).not.toContain("401");
    expect(admin.responses["403"].description).toMatch(/only clients on this host/);
  });

  it("/favicon.ico is an icon, and not part of the API", async () => {
    const res = await app.inject({ method: "GET", url: "/favicon.ico" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("image/svg+xml");
    expect(res.body).toMatch(/^<svg /);
    expect(Object.keys(spec.paths)).not.toContain("/favicon.ico");
  });

  it("both documentation pages run under our CSP, which never upgrades requests to HTTPS", async () => {
    for (const url of ["/docs/", "/docs/static/swagger-ui-bundle.js", "/redoc"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.headers["content-security-policy"], url).toBe(SECURITY_HEADERS["content-security-policy"]);
      expect(res.headers["content-security-policy"], url).not.toMatch(/upgrade-insecure-requests/);
      // Ignored, with a console error, at any plain-HTTP address but localhost.
      expect(res.headers["cross-origin-opener-policy"], url).toBeUndefined();
    }
  });

  it("ReDoc as served fetches nothing from Redocly's CDN", async () => {
    const res = await app.inject({ method: "GET", url: "/redoc/redoc.standalone.js" });
    expect(res.statusCode).toBe(200);
    // (Not toContain: a failure would print the megabyte bundle.)
    expect(res.body.includes("API docs by Redocly")).toBe(true);
    expect(res.body.includes("cdn.redoc.ly")).toBe(false);
  });
});

describe("the OpenAPI document, auth on", () => {
  it("the prediction routes list their credentials and their 401 and 403", async () => {
    const app = await testApp({ API_KEY: "k".repeat(24), ADMIN_API_KEY: "a".repeat(24) });
    const spec = await specOf(app);
    await app.close();
    expect(Object.keys(spec.components.securitySchemes)).toEqual(["apiKey", "bearer"]);
    for (const path of [...PREDICTION_ROUTES, "/admin/reload"]) {
      const op = spec.paths[path].post;
      expect(op.security, path).toEqual([{ apiKey: [] }, { bearer: [] }]);
      expect(Object.keys(op.responses), path).toEqual(expect.arrayContaining(["401", "403"]));
      expect(op.responses["403"].description, path).toMatch(/not accepted/);
    }
  });

  it("the default model is the examples' model", async () => {
    const app = await testApp({ DEFAULT_MODEL: "lstm" });
    const schemas = (await specOf(app)).components.schemas;
    await app.close();
    expect(schemas.PredictResponse.properties.model_type.example).toBe("lstm");
    expect(schemas.PredictFeaturesRequest.example.model_type).toBe("lstm");
  });
});

describe("/metrics on the separate metrics listener", () => {
  it("a plain Fastify serves the route with its documented schema as it is", async () => {
    const bare = Fastify({ logger: false });
    await bare.register(metricsRoute, { metrics: async () => ({ body: "up 1\n", contentType: "text/plain; version=0.0.4; charset=utf-8" }) });
    const res = await bare.inject({ method: "GET", url: "/metrics" });
    await bare.close();
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe("up 1\n");
  });
});
