import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, freePort, startServer, waitFor } from "./helpers.js";

/**
 * SIGTERM in a Kubernetes rollout: the pod must lose no request while keep-alive clients
 * still hold connections to it and endpoint removal is still propagating.
 */

// Long enough that "readiness fails well before the listener closes" holds on a loaded
// 2-core CI machine, where a worker can wait a second for CPU (CI saw 1 s missed once).
const DELAY_MS = 3000;

interface Answer {
  status: number;
  connection: string | undefined;
  reused: boolean;
  body: string;
}

/** One request over node:http; `agent: false` forces a fresh connection. */
function send(url: string, agent: Agent | false, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: body ? "POST" : "GET", headers: body ? { "content-type": "application/json" } : {} }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection, reused: req.reusedSocket, body: text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function connected(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => (text += d));
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

async function drain(env: Record<string, string>) {
  const server = await startServer({ SHUTDOWN_DELAY_MS: String(DELAY_MS), CACHE_TTL: "0", ...env });
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const outcomes: { startedAt: number; answer?: Answer; error?: string }[] = [];
  let sending = true;
  const client = async () => {
    for (let i = 0; sending; i++) {
      const startedAt = Date.now();
      try {
        outcomes.push({ startedAt, answer: await send(`${server.url}/predict`, agent, { features: GUIDE_FEATURES.map((v) => v + i) }) });
      } catch (error) {
        outcomes.push({ startedAt, error: String(error) });
      }
    }
  };
  const clients = Array.from({ length: 4 }, client);
  // If a step hangs, say which, with the server's log, before the test's timeout ends it silently.
  let step = "keep-alive connections in use";
  const watchdog = setTimeout(() => console.error(`drain test still at "${step}" after 45 s; server output:\n${server.output()}`), 45_000);
  try {
    await waitFor(step, () => outcomes.some((o) => o.answer?.reused), 5000);

    const signalledAt = Date.now();
    server.child.kill("SIGTERM");
    // Readiness fails at once, on every worker, while the listener still accepts.
    await waitFor(
      "/health 503 on fresh connections",
      async () => {
        for (let i = 0; i < 4; i++) {
          const health = await send(`${server.url}/health`, false);
          if (health.status !== 503 || !JSON.parse(health.body).reasons.includes("shutting down")) return false;
        }
        return true;
      },
      (DELAY_MS * 2) / 3,
    );
    const drainingAt = Date.now();

    step = "a request on a new connection during the delay";
    // During the delay: a new connection is accepted and served.
    expect((await send(`${server.url}/predict`, false, { features: GUIDE_FEATURES })).status).toBe(200);
    // A request in flight when the app closes: its headers are half sent.
    const late = await connected(server.port);
    // Read from the start: an answer or close that came early must fail the test, not be
    // missed (a listener attached later waits for an 'end' already emitted, and the test hangs).
    const lateAnswer = readAll(late).catch((error: unknown) => `error: ${String(error)}`);
    late.write("POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    sending = false;
    step = "the clients' last requests";
    await Promise.all(clients);
    step = "the listener to close";

    await waitFor(step, () => connected(server.port).then((s) => (s.destroy(), false), () => true), DELAY_MS * 2);
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(DELAY_MS);
    const payload = JSON.stringify({ features: GUIDE_FEATURES });
    late.write(`Content-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
    step = "the late request's answer";
    expect(await lateAnswer).toMatch(/^HTTP\/1\.1 200 [\s\S]*connection: close/i);
    step = "the server's exit";
    expect(await server.exit).toEqual({ code: 0, signal: null });

    expect(outcomes.filter((o) => o.error || o.answer!.status !== 200)).toEqual([]);
    const drained = outcomes.filter((o) => o.startedAt >= drainingAt);
    expect(drained.length).toBeGreaterThan(0);
    // Every answer during the delay sends the client away, so each of its 4 keep-alive
    // connections carries at most one more request; the rest come on new connections.
    expect(drained.filter((o) => o.answer!.connection !== "close")).toEqual([]);
    expect(drained.filter((o) => o.answer!.reused).length).toBeLessThanOrEqual(4);
  } finally {
    clearTimeout(watchdog);
    sending = false;
    agent.destroy();
    server.child.kill("SIGKILL"); // a no-op once it has exited
  }
}

describe("SIGTERM drain (SHUTDOWN_DELAY_MS)", () => {
  it("health turns 503 at once, keep-alive clients are answered with Connection: close until the delay ends, then in-flight work finishes, nothing fails, exit 0", async () => {
    await drain({});
  }, 60_000);

  it("the same with WORKERS=2: the primary forwards SIGTERM and each worker drains", async () => {
    await drain({ WORKERS: "2", METRICS_PORT: String(await freePort()) });
  }, 60_000);

  it("SIGINT (Ctrl-C at a terminal) stops at once: no load balancer to leave, no delay", async () => {
    for (const env of [{}, { WORKERS: "2", METRICS_PORT: String(await freePort()) }] as Record<string, string>[]) {
      const server = await startServer({ SHUTDOWN_DELAY_MS: "10000", ...env });
      const signalledAt = Date.now();
      server.child.kill("SIGINT");
      expect(await server.exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalledAt).toBeLessThan(5000);
    }
  }, 60_000);
});
