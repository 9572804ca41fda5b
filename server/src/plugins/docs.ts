import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { OpenAPIV3_1 } from "openapi-types";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";

/**
 * /openapi.json generated from the zod schemas the routes validate with; Swagger UI at
 * /docs and ReDoc at /redoc, both served from local files so they work air-gapped. Both pages
 * run under the one Content-Security-Policy of securityHeaders.ts: Swagger UI's own (its
 * staticCSP) has upgrade-insecure-requests, which at any plain-HTTP address but localhost
 * sends the page's scripts to https:// and leaves it blank.
 */

const REDOC_VERSION = "2.5.4";
export const REDOC_FILE = resolve(dirname(fileURLToPath(import.meta.url)), `../../vendor/redoc-${REDOC_VERSION}.standalone.js`);
// ReDoc's sidebar footer always shows Redocly's logo from their CDN, which the CSP blocks (and an
// air-gapped cluster cannot reach). An empty image fails to decode, and the footer then drops the
// logo, as it does when the CDN is down.
const REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg";

// A wave on a dark tile, for the browser tab; browsers ask for /favicon.ico whatever the page.
const FAVICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#173f5f"/>' +
  '<path d="M1.5 8c1.6-4.5 3.4-4.5 5 0s3.4 4.5 5 0 2-3 3-1.5" fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/></svg>';

const redocPage = `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>Financial Wavelet Prediction API – ReDoc</title>
    <meta name="viewport" content="width=device-width, initial-scale=1" />
  </head>
  <body>
    <div id="redoc"></div>
    <script src="/redoc/redoc.standalone.js"></script>
    <script src="/redoc/init.js"></script>
  </body>
</html>
`;

const SCHEMAS = "#/components/schemas/";

/** Every `$ref` to a schema component, anywhere under `node`. */
function schemaRefs(node: unknown, found: (name: string) => void): void {
  if (Array.isArray(node)) for (const item of node) schemaRefs(item, found);
  else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string" && value.startsWith(SCHEMAS)) found(value.slice(SCHEMAS.length));
      else schemaRefs(value, found);
    }
  }
}

/**
 * One schema per concept, under the name users know it by. The zod transform emits every
 * registered schema twice: an input flavour (`PredictRequestInput`: fields with defaults are
 * optional), which request bodies use, and an output one (`PredictRequest`), which responses
 * use. Keep the schemas the operations reach, a request schema under its plain name; and keep
 * only the security schemes some operation requires.
 */
function tidy(document: OpenAPIV3_1.Document): OpenAPIV3_1.Document {
  const schemas = document.components?.schemas ?? {};
  const reached = new Set<string>();
  const reach = (name: string) => {
    if (reached.has(name)) return;
    reached.add(name);
    schemaRefs(schemas[name], reach);
  };
  schemaRefs(document.paths, reach);
  const plain = (name: string) => {
    const base = name.replace(/Input$/, "");
    return reached.has(base) ? name : base;
  };
  const renamed = <T>(node: T): T =>
    JSON.parse(JSON.stringify(node), (key, value) =>
      key === "$ref" && typeof value === "string" && value.startsWith(SCHEMAS) ? SCHEMAS + plain(value.slice(SCHEMAS.length)) : value,
    );
  const paths = renamed(document.paths ?? {});
  const kept = renamed(Object.fromEntries([...reached].map((name) => [plain(name), schemas[name]!])));

  const required = new Set<string>();
  for (const path of Object.values(paths)) {
    for (const operation of Object.values(path ?? {})) {
      for (const requirement of (operation as OpenAPIV3_1.OperationObject).security ?? []) Object.keys(requirement).forEach((s) => required.add(s));
    }
  }
  const { securitySchemes = {}, ...components } = document.components ?? {};
  const schemes = Object.fromEntries(Object.entries(securitySchemes).filter(([name]) => required.has(name)));
  return { ...document, paths, components: { ...components, schemas: kept, ...(Object.keys(schemes).length ? { securitySchemes: schemes } : {}) } };
}

export const docsPlugin = fp(async (app: FastifyInstance, opts: { version: string; securitySchemes: Record<string, OpenAPIV3_1.SecuritySchemeObject> }) => {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Financial Wavelet Prediction API",
        version: opts.version,
        description:
          "Forecasts from causal wavelet features served from ONNX model bundles. Errors share one JSON shape (Error); " +
          "5xx bodies carry only a request id.",
      },
      components: { securitySchemes: opts.securitySchemes },
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => tidy(jsonSchemaTransformObject(document) as OpenAPIV3_1.Document),
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  const script = await readFile(REDOC_FILE, "utf8").catch(() => {
    throw new Error(`ReDoc bundle missing at ${REDOC_FILE}: run scripts/node-deps.sh`);
  });
  const redoc = script.replaceAll(REDOC_LOGO, "data:,");
  const hide = { schema: { hide: true } };
  app.get("/openapi.json", hide, async () => app.swagger());
  app.get("/redoc", hide, async (_request, reply) => reply.type("text/html; charset=utf-8").send(redocPage));
  app.get("/redoc/redoc.standalone.js", hide, async (_request, reply) =>
    reply.type("application/javascript").header("cache-control", "public, max-age=86400").send(redoc),
  );
  app.get("/redoc/init.js", hide, async (_request, reply) =>
    reply.type("application/javascript").send('Redoc.init("/openapi.json", {}, document.getElementById("redoc"));'),
  );
  app.get("/favicon.ico", hide, async (_request, reply) =>
    reply.type("image/svg+xml").header("cache-control", "public, max-age=86400").send(FAVICON),
  );
});
