import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import "../plugins/context.js";
import { prometheusText } from "../schemas/api.js";

/**
 * Prometheus text exposition of one registry (the app's, or the cluster's aggregate), in the
 * metrics realm: its histograms carry every client's predictions (auth.ts).
 */
export async function metricsRoute(app: FastifyInstance, opts: { metrics: () => Promise<{ body: string; contentType: string }> }) {
  const schema = {
    summary: "Prometheus metrics",
    tags: ["operations"],
    response: { 200: { description: "the metrics, in the text format Prometheus scrapes", content: prometheusText } },
  };
  // The body is prom-client's text, sent as it is: the schema documents it (and on the separate
  // metrics listener, a plain Fastify, the default compiler would try to build a serializer from
  // it). An error (a refused scrape) is the error handler's JSON.
  const serializerCompiler = () => (data: unknown) => (typeof data === "string" ? data : JSON.stringify(data));
  app.get("/metrics", { config: { auth: "metrics" }, schema, serializerCompiler }, async (_request, reply) => {
    const { body, contentType } = await opts.metrics();
    return reply.type(contentType).send(body);
  });
}

export const registryMetrics = (registry: Registry) => async () => ({ body: await registry.metrics(), contentType: registry.contentType });
