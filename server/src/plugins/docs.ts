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
 * /docs and ReDoc at /redoc, both served from local files so they work air-gapped.
 */

const REDOC_VERSION = "2.5.4";
export const REDOC_FILE = resolve(dirname(fileURLToPath(import.meta.url)), `../../vendor/redoc-${REDOC_VERSION}.standalone.js`);

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
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: "/docs", staticCSP: true });

  const script = await readFile(REDOC_FILE).catch(() => {
    throw new Error(`ReDoc bundle missing at ${REDOC_FILE}: run scripts/node-deps.sh`);
  });
  const hide = { schema: { hide: true } };
  app.get("/openapi.json", hide, async () => app.swagger());
  app.get("/redoc", hide, async (_request, reply) => reply.type("text/html; charset=utf-8").send(redocPage));
  app.get("/redoc/redoc.standalone.js", hide, async (_request, reply) =>
    reply.type("application/javascript").header("cache-control", "public, max-age=86400").send(script),
  );
  app.get("/redoc/init.js", hide, async (_request, reply) =>
    reply.type("application/javascript").send('Redoc.init("/openapi.json", {}, document.getElementById("redoc"));'),
  );
});
