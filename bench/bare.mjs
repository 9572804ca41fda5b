// Baseline (a): a bare Fastify route that parses the same JSON body and returns a constant.
import Fastify from "fastify";

const app = Fastify({ logger: false });
app.post("/predict", async () => ({ prediction: 0 }));
await app.listen({ host: "127.0.0.1", port: Number(process.env.PORT ?? 8200) });
