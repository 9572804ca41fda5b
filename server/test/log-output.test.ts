import { type ChildProcess, spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, SERVER_JS, freePort, fresh, startServer, waitFor } from "./helpers.js";

/**
 * A log reader that goes away must cost log lines, never requests or shutdowns. The server
 * runs as `node server.js 2>&1 | reader`: its stdout and stderr are the write end of a real
 * pipe whose only reader is another process, `head -1` (reads a line and exits: writes then
 * fail with EPIPE) or `sleep` (never reads: the pipe fills and writes fail with EAGAIN).
 */

const DELAY_MS = 500;
const GRACE_MS = 2000;

interface Piped {
  server: ChildProcess;
  reader: ChildProcess;
  url: string;
  metricsUrl: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function piped(reader: string[], env: Record<string, string>): Promise<Piped> {
  const port = await freePort();
  const workers = env.WORKERS !== undefined && env.WORKERS !== "1";
  const metricsPort = workers ? await freePort() : port;
  const sink = spawn(reader[0]!, reader.slice(1), { stdio: ["pipe", "ignore", "ignore"] });
  const server = spawn(process.execPath, [SERVER_JS], {
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      ...(workers ? { METRICS_PORT: String(metricsPort) } : {}),
      LOG_LEVEL: "info",
      MODELS: "xgboost",
      CACHE_TTL: "0",
      SHUTDOWN_DELAY_MS: String(DELAY_MS),
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
      ...env,
    },
    stdio: ["ignore", sink.stdin!, sink.stdin!],
    // Its own process group, so that the test can kill workers that outlive a wedged primary.
    detached: true,
  });
  // The server's copies are now the pipe's only write ends.
  sink.stdin!.destroy();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => server.once("exit", (code, signal) => r({ code, signal })));
  return { server, reader: sink, url: `http://127.0.0.1:${port}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, exit };
}

/** `promise`, or a failure naming `what` after `ms`: a wedged server fails the test instead of hanging it. */
function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const dropped = (metrics: string) => Number(/^log_lines_dropped_total (\d+)/m.exec(metrics)?.[1] ?? Number.NaN);

for (const workers of ["1", "2"]) {
  describe(`a log reader that goes away (WORKERS=${workers})`, () => {
    for (const [name, reader] of [
      ["exits after one line (EPIPE)", ["head", "-1"]],
      ["stays but stops reading (the pipe fills: EAGAIN)", ["sleep", "600"]],
    ] as const) {
      it(`${name}: requests are answered promptly, dropped lines are counted, SIGTERM drains and exits`, async () => {
        const run = await piped([...reader], { WORKERS: workers });
        try {
          await waitFor("the server", async () => (await within("/health", 2000, fresh(`${run.url}/health`))).status === 200, 30_000);
          // A reload answers how many workers took part.
          const reloaded = async () => JSON.parse((await fresh(`${run.url}/admin/reload`, { method: "POST", body: {} })).body).workers;
          if (workers !== "1") await waitFor("both workers", async () => (await reloaded()) === 2, 30_000);
          // Two log lines a request (~0.5 KB): requests until lines are dropped, each answered promptly.
          let slowest = 0;
          let metrics = "";
          for (let i = 0; i < 4000 && !(dropped(metrics) > 0); i++) {
            const started = performance.now();
            const path = i % 2 ? "/health" : "/predict";
            const res = await within(`request ${i} (${path})`, 2000, fresh(`${run.url}${path}`, i % 2 ? {} : { body: { features: GUIDE_FEATURES.map((v) => v + i) } }));
            expect(res.status).toBe(200);
            slowest = Math.max(slowest, performance.now() - started);
            if (i % 100 === 99) metrics = await within("/metrics", 2000, fetch(run.metricsUrl).then((r) => r.text()));
          }
          expect(dropped(metrics)).toBeGreaterThan(0);
          expect(slowest).toBeLessThan(1000);

          const signalled = Date.now();
          run.server.kill("SIGTERM");
          expect(await within("exit after SIGTERM", DELAY_MS + GRACE_MS + 3000, run.exit)).toEqual({ code: 0, signal: null });
          expect(Date.now() - signalled).toBeGreaterThanOrEqual(DELAY_MS);
        } finally {
          try {
            process.kill(-run.server.pid!, "SIGKILL");
          } catch {
            // the group has exited
          }
          run.reader.kill("SIGKILL");
        }
      }, 60_000);
    }
  });
}

describe("a log reader that keeps up", () => {
  it("gets every line whole, the workers' relayed by the primary (WORKERS=2)", async () => {
    const server = await startServer({ WORKERS: "2", METRICS_PORT: String(await freePort()), LOG_LEVEL: "info", MODELS: "xgboost", SHUTDOWN_DELAY_MS: "0" });
    try {
      await waitFor("both workers", () => server.output().includes("wavelet server listening (2 workers)"), 30_000);
      // Concurrent requests on new connections: both workers log at once.
      const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => fresh(`${server.url}/predict`, { body: { features: GUIDE_FEATURES.map((v) => v + i) } })));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      server.child.kill("SIGTERM");
      expect((await server.exit).code).toBe(0);
      const lines = server.output().split("\n").filter((line) => line && !line.startsWith("wavelet server listening") && !line.startsWith("  "));
      const records = lines.map((line) => JSON.parse(line) as { msg: string; pid: number; req?: { url: string } });
      const predictions = records.filter((r) => r.msg === "incoming request" && r.req?.url === "/predict");
      expect(predictions).toHaveLength(300);
      expect(new Set(predictions.map((r) => r.pid)).size).toBe(2);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 60_000);
});
