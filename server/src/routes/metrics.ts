import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";

/** Prometheus text exposition of one registry (the app's, or the cluster's aggregate). */
export async function metricsRoute(app: FastifyInstance, opts: { metrics: () => Promise<{ body: string; contentType: string }> }) {
  app.get("/metrics", { schema: { summary: "Prometheus metrics", tags: ["operations"] } }, async (_request, reply) => {
    const { body, contentType } = await opts.metrics();
    return reply.type(contentType).send(body);
  });
}

export const registryMetrics = (registry: Registry) => async () => ({ body: await registry.metrics(), contentType: registry.contentType });
