import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { GUIDE_FEATURES, RETURN_BUNDLE, json, replaceBundle, type ServerProcess, startServer, testApp } from "./helpers.js";
import { PARITY_ROWS, namedBundle } from "./named-bundle.js";

/**
 * Which models a server serves (issue 23 follow-up): with MODELS unset, those of the bundle it
 * starts with, whatever their names (an import holds the user's models: maybe only xgboost,
 * maybe a TorchScript `gru`); model_type takes exactly those, and a reload must bring them all.
 */

const GUIDE_MODELS = ["xgboost", "lstm", "transformer", "ensemble"];
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/**
 * Adds model `name` to a bundle of named features, before its ensemble as the importer lists a
 * TorchScript model: a copy of `from`'s graph, with its manifest entry and parity answers.
 */
function withModel(dir: string, name = "gru", from = "lstm"): string {
  const path = (file: string) => join(dir, file);
  const manifest = JSON.parse(readFileSync(path("manifest.json"), "utf8"));
  const file = `${name}_optimized.onnx`;
  copyFileSync(path(manifest.models[from].file), path(file));
  const parity = JSON.parse(readFileSync(path("vectors/parity.json"), "utf8"));
  for (const c of parity.cases) {
    c.predictions[name] = c.predictions[from];
    c.onnx_predictions[name] = c.onnx_predictions[from];
  }
  writeFileSync(path("vectors/parity.json"), JSON.stringify(parity));
  const { ensemble, ...others } = manifest.models;
  const entry = { ...manifest.models[from], file, source: { format: "torchscript", file: `${name}_optimized.pt`, sha256: sha256(name) } };
  manifest.models = { ...others, [name]: entry, ...(ensemble ? { ensemble } : {}) };
  for (const f of [file, "vectors/parity.json"]) manifest.files[f] = sha256(readFileSync(path(f)));
  manifest.models[name].sha256 = manifest.files[file];
  writeFileSync(path("manifest.json"), JSON.stringify(manifest, null, 2));
  return dir;
}

const post = (url: string, body: unknown) => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
// The answers are checked field by field below: a loose shape is enough here.
const body = (res: Response): Promise<any> => res.json();
const get = async (url: string) => body(await fetch(url));
/** Every model_type enum of the OpenAPI document, by where it is. */
const modelTypeEnums = (spec: { components: { schemas: Record<string, { properties?: { model_type?: { enum?: string[] } } }> } }) =>
  Object.fromEntries(Object.entries(spec.components.schemas).flatMap(([name, s]) => (s.properties?.model_type ? [[name, s.properties.model_type.enum]] : [])));

describe("MODELS unset: the server serves the models of the bundle it starts with", () => {
  const servers: ServerProcess[] = [];
  afterAll(() => servers.forEach((s) => s.child.kill("SIGKILL")));
  const start = async (env: Record<string, string>) => {
    const server = await startServer(env);
    servers.push(server);
    return server;
  };

  it("an imported bundle of one model becomes ready and answers; model_type takes that model only", async () => {
    const { url } = await start({ MODEL_DIR: await namedBundle({ models: ["xgboost"] }) });
    const answer = await post(`${url}/predict`, { features: PARITY_ROWS[0] });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ model_type: "xgboost", bundle: { name: "guide-import" } });
    expect((await get(`${url}/health`)).models).toEqual({ xgboost: "loaded" });
    expect((await get(`${url}/models`)).models.map((m: { name: string }) => m.name)).toEqual(["xgboost"]);
    const enums = Object.values(modelTypeEnums(await get(`${url}/openapi.json`)));
    expect(enums.length).toBeGreaterThan(0);
    for (const e of enums) expect(e).toEqual(["xgboost"]);
    // A model of the guide's that this bundle lacks is no model of this API.
    const lstm = await post(`${url}/predict`, { features: PARITY_ROWS[0], model_type: "lstm" });
    expect(lstm.status).toBe(400);
    expect(await lstm.json()).toMatchObject({ error: "validation_error", fields: [{ field: "model_type" }] });
  });

  it("a model of any name (gru) is served, listed in /models, the OpenAPI enum and the metrics; an unknown one is a 400", async () => {
    const { url } = await start({ MODEL_DIR: withModel(await namedBundle()) });
    const order = ["xgboost", "lstm", "transformer", "gru", "ensemble"];
    const gru = await post(`${url}/predict/batch`, { samples: PARITY_ROWS, model_type: "gru" });
    expect(gru.status).toBe(200);
    const lstm = await body(await post(`${url}/predict/batch`, { samples: PARITY_ROWS, model_type: "lstm" }));
    expect(await gru.json()).toMatchObject({ model_type: "gru", predictions: lstm.predictions }); // the same graph
    expect((await body(await post(`${url}/predict`, { features: PARITY_ROWS[1] }))).model_type).toBe("ensemble");
    const models = await get(`${url}/models`);
    expect(models.models.map((m: { name: string; status: string }) => [m.name, m.status])).toEqual(order.map((m) => [m, "loaded"]));
    expect(Object.keys((await get(`${url}/health`)).models)).toEqual(order);
    const golden = await get(`${url}/models/golden`);
    expect(Object.keys(golden.cases[0].expected)).toEqual(order);
    const spec = await get(`${url}/openapi.json`);
    for (const [where, e] of Object.entries(modelTypeEnums(spec))) expect(e, where).toEqual(order);
    expect(spec.components.schemas.BatchRequest.properties.model_type.default).toBe("ensemble");
    const unknown = await post(`${url}/predict`, { features: PARITY_ROWS[0], model_type: "arima" });
    expect(unknown.status).toBe(400);
    expect((await body(unknown)).fields).toEqual([expect.objectContaining({ field: "model_type" })]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/model_inference_rows_total\{model="gru"\} 6\n/);
    expect(metrics).not.toContain('model="arima"');
  });

  it("without an ensemble, the bundle's default_model answers requests naming none", async () => {
    const dir = withModel(await namedBundle({ models: ["xgboost", "lstm"] }));
    const path = join(dir, "manifest.json");
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, "utf8")), default_model: "gru" }));
    const app = await testApp({ MODEL_DIR: dir });
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: PARITY_ROWS[0] }) })).json().model_type).toBe("gru");
    await app.close();
  });
});

describe("MODELS set: as before, and it may name any model", () => {
  it("MODELS=xgboost,gru serves those two; a guide model left out answers 503 as before", async () => {
    const app = await testApp({ MODEL_DIR: withModel(await namedBundle()), MODELS: "xgboost,gru" });
    const predict = (model_type: string) => app.inject({ method: "POST", url: "/predict", ...json({ features: PARITY_ROWS[0], model_type }) });
    expect((await predict("gru")).json()).toMatchObject({ model_type: "gru" });
    expect((await app.inject({ method: "GET", url: "/health" })).json().models).toEqual({ xgboost: "loaded", gru: "loaded" });
    expect((await predict("lstm")).statusCode).toBe(503);
    expect((await predict("arima")).statusCode).toBe(400);
    await app.close();
  });

  it("a model the bundle lacks: unready, saying what it holds", async () => {
    const app = await testApp({ MODELS: "xgboost,gru" });
    expect((await app.inject({ method: "GET", url: "/health" })).json().reasons).toEqual([
      "bundle spx-return-1d has no model gru (it holds xgboost, lstm, transformer, ensemble): set MODELS to the models to serve",
    ]);
    await app.close();
  });

  it("takes model names, not an int8 variant or another spelling", () => {
    expect(parseConfig({ MODELS: "xgboost,gru_2" }).MODELS).toEqual(["xgboost", "gru_2"]);
    for (const [models, message] of [
      ["GRU", /MODELS="GRU": expected model names/],
      ["lstm_int8", /an _int8 variant is served under its model's name, with QUANTIZED=true/],
      [`m${"x".repeat(32)}`, /expected model names/],
    ] as const) {
      expect(() => parseConfig({ MODELS: models })).toThrow(message);
    }
  });
});

describe("DEFAULT_MODEL with MODELS unset", () => {
  it("answers requests naming none; one the bundle lacks leaves the server unready, saying so", async () => {
    const dir = withModel(await namedBundle());
    const app = await testApp({ MODEL_DIR: dir, DEFAULT_MODEL: "gru" });
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: PARITY_ROWS[0] }) })).json().model_type).toBe("gru");
    await app.close();
    const unready = await testApp({ DEFAULT_MODEL: "gru" });
    expect((await unready.inject({ method: "GET", url: "/health" })).json().reasons).toEqual([
      "bundle spx-return-1d has no model gru (it holds xgboost, lstm, transformer, ensemble), which DEFAULT_MODEL names",
    ]);
    await unready.close();
  });
});

describe("reloads with MODELS unset: the new bundle must hold every model served", () => {
  const reload = (app: Awaited<ReturnType<typeof testApp>>) => app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });

  it("a bundle without gru is refused, naming it; the old one keeps serving", async () => {
    const dir = withModel(await namedBundle());
    const app = await testApp({ MODEL_DIR: dir });
    const digest = (await app.inject({ method: "GET", url: "/health" })).json().bundle.digest;
    replaceBundle(dir, await namedBundle({ version: "1.1.0" }));
    const res = await reload(app);
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ error: "bundle_rejected" });
    expect(res.json().message).toContain(
      "bundle guide-import has no model gru (it holds xgboost, lstm, transformer, ensemble), a model the API this process publishes serves " +
        "(MODELS unset: the models of the bundle it started with, guide-import); restart the server to serve it",
    );
    expect((await app.inject({ method: "GET", url: "/health" })).json()).toMatchObject({ status: "ok", bundle: { digest } });
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: PARITY_ROWS[0], model_type: "gru" }) })).statusCode).toBe(200);
    await app.close();
  });

  it("a bundle holding more is taken, serving the same models (the others not configured)", async () => {
    const dir = await namedBundle({ models: ["xgboost"] });
    const app = await testApp({ MODEL_DIR: dir });
    replaceBundle(dir, withModel(await namedBundle({ version: "1.1.0" })));
    expect((await reload(app)).json()).toMatchObject({ reloaded: true, bundle: { version: "1.1.0" } });
    const models = (await app.inject({ method: "GET", url: "/models" })).json().models;
    expect(models.map((m: { name: string; status: string }) => [m.name, m.status])).toEqual([
      ["xgboost", "loaded"],
      ["lstm", "not_configured"],
      ["transformer", "not_configured"],
      ["gru", "not_configured"],
      ["ensemble", "not_configured"],
    ]);
    expect((await app.inject({ method: "GET", url: "/health" })).json()).toMatchObject({ status: "ok", models: { xgboost: "loaded" } });
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: PARITY_ROWS[0], model_type: "gru" }) })).statusCode).toBe(400);
    await app.close();
  });

  it("started without a bundle, the API takes the guide's four models, and a bundle must hold them", async () => {
    const dir = await namedBundle({ models: ["xgboost"] });
    const manifest = readFileSync(join(dir, "manifest.json"));
    writeFileSync(join(dir, "manifest.json"), "{"); // no bundle at start
    const app = await testApp({ MODEL_DIR: dir, MODEL_LOADING: "lazy" });
    expect((await app.inject({ method: "GET", url: "/health" })).statusCode).toBe(503);
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    for (const [where, e] of Object.entries(modelTypeEnums(spec))) expect(e, where).toEqual(GUIDE_MODELS);
    writeFileSync(join(dir, "manifest.json"), manifest);
    const res = await reload(app);
    expect(res.statusCode).toBe(422);
    expect(res.json().message).toContain(
      "bundle guide-import has no model lstm (it holds xgboost), a model the API this process publishes serves " +
        "(MODELS unset: the guide's models, as it started without a bundle); restart the server to serve it",
    );
    replaceBundle(dir, RETURN_BUNDLE);
    expect((await reload(app)).statusCode).toBe(200);
    expect((await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES, model_type: "lstm" }) })).statusCode).toBe(200);
    await app.close();
  });
});

describe("the default bundle: nothing visible changes", () => {
  let app: Awaited<ReturnType<typeof testApp>>;
  beforeAll(async () => {
    app = await testApp();
  });
  afterAll(() => app.close());

  it("model_type's enum is the guide's four, in their order, everywhere in the OpenAPI document; /models and /health list them", async () => {
    const spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const enums = modelTypeEnums(spec);
    // As main's build published it (snapshot taken before this change): seven schemas name a model.
    expect(Object.keys(enums).sort()).toEqual(
      ["BatchRequest", "BatchResponse", "PredictFeaturesRequest", "PredictPricesRequest", "PredictResponse", "StreamFeaturesRequest", "StreamPricesRequest"],
    );
    for (const [where, e] of Object.entries(enums)) expect(e, where).toEqual(GUIDE_MODELS);
    expect(spec.components.schemas.PredictFeaturesRequest.properties.model_type).toEqual({
      default: "ensemble",
      description: "which model answers (default ensemble)",
      type: "string",
      enum: GUIDE_MODELS,
    });
    expect((await app.inject({ method: "GET", url: "/models" })).json().models.map((m: { name: string }) => m.name)).toEqual(GUIDE_MODELS);
    expect(Object.keys((await app.inject({ method: "GET", url: "/health" })).json().models)).toEqual(GUIDE_MODELS);
  });
});
