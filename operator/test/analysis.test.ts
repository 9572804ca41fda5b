import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { httpAnalyzer } from "../src/reconcile/analysis.js";
import { DIGEST_A, DIGEST_B, model } from "./fixtures.js";

/** A stand-in for one colour of the inference server: /health, /predict and /metrics over real HTTP. */
interface Behaviour {
  digest?: string;
  predictStatus?: number;
  delayMs?: number;
  serverErrors?: number;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function colour(b: Behaviour): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url === "/health") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ bundle: { digest: b.digest ?? DIGEST_A } }));
    if (req.url === "/metrics") {
      return void res.writeHead(200).end(`http_requests_total{route="/predict",method="POST",status="200"} 20\nhttp_requests_total{route="/predict",method="POST",status="500"} ${b.serverErrors ?? 0}\n`);
    }
    req.resume();
    req.on("end", () => setTimeout(() => res.writeHead(b.predictStatus ?? 200).end('{"prediction":0.1}'), b.delayMs ?? 0));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

// A generous p99 bound: only the latency test is about latency, and a busy machine answers slowly.
const analyzed = (over: Record<string, unknown> = {}) => model({ rollout: { analysis: { enabled: true, requests: 10, maxErrorRate: 0, maxP99LatencyMs: 2000, ...over } } });

describe("analysis against the preview and active colours", () => {
  it("passes a healthy preview serving the expected bundle", async () => {
    const verdict = await httpAnalyzer(analyzed(), { preview: await colour({}), active: await colour({}) });
    expect(verdict.result).toBe("pass");
  });

  it("fails a preview serving another bundle", async () => {
    const verdict = await httpAnalyzer(analyzed(), { preview: await colour({ digest: DIGEST_B }), active: await colour({}) });
    expect(verdict).toEqual({ result: "fail", message: `preview serves ${DIGEST_B}, not ${DIGEST_A}` });
  });

  it("fails on errors to golden requests", async () => {
    const verdict = await httpAnalyzer(analyzed(), { preview: await colour({ predictStatus: 500 }), active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview error rate 1\.000 > 0 \(HTTP 500/);
  });

  it("fails when the preview is slower than the p99 bound", async () => {
    const verdict = await httpAnalyzer(analyzed({ maxP99LatencyMs: 20 }), { preview: await colour({ delayMs: 40 }), active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview p99 \d+\.\d ms > 20 ms/);
  });

  it("fails when the preview's own metrics report server errors", async () => {
    const verdict = await httpAnalyzer(analyzed(), { preview: await colour({ serverErrors: 3 }), active: await colour({}) });
    expect(verdict).toEqual({ result: "fail", message: "preview metrics report 3 server errors" });
  });

  it("fails when the preview cannot be reached", async () => {
    const verdict = await httpAnalyzer(analyzed(), { preview: "http://127.0.0.1:1", active: await colour({}) });
    expect(verdict.result).toBe("fail");
    expect(verdict.message).toMatch(/^preview \/health unreachable/);
  });
});
