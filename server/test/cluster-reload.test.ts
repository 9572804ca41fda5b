import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RETURN_BUNDLE, copyBundle, freePort, fresh, nextVersion, replaceBundle, startServer, waitFor } from "./helpers.js";

/**
 * WORKERS=2: a reload (POST /admin/reload on any worker, or SIGHUP to the primary) swaps the
 * bundle of every worker or of none. Each /health here goes over a fresh connection, which
 * the primary hands to the workers in turn (cluster's round-robin scheduling, Linux's default).
 */

const ADMIN_KEY = "admin-key-for-cluster-tests";

/** A request on a fresh connection, its JSON body parsed. */
async function freshJson(url: string, opts: Parameters<typeof fresh>[1] = {}) {
  const res = await fresh(url, opts);
  return { status: res.status, body: JSON.parse(res.body) as Record<string, any> };
}

/** The bundle digest and last reload of 20 /health answers. */
async function healthOfWorkers(url: string) {
  const answers = [];
  for (let i = 0; i < 20; i++) answers.push((await freshJson(`${url}/health`)).body);
  return answers;
}

const reload = (url: string) => freshJson(`${url}/admin/reload`, { method: "POST", headers: { "x-api-key": ADMIN_KEY, "content-type": "application/json" } });

/** The server with both workers up: startServer waits for one, a reload of the same bundle says how many take part. */
async function cluster(dir: string) {
  const server = await startServer({ MODEL_DIR: dir, WORKERS: "2", METRICS_PORT: String(await freePort()), ADMIN_API_KEY: ADMIN_KEY, SHUTDOWN_DELAY_MS: "0" });
  await waitFor("both workers", async () => (await reload(server.url)).body.workers === 2, 30_000).catch((error: Error) => {
    server.child.kill("SIGKILL");
    throw error;
  });
  return server;
}

describe("reload with WORKERS=2", () => {
  it("/admin/reload: a failing bundle changes no worker (422); a good one swaps both before the answer (200); concurrent ones get 409", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const server = await cluster(dir);
    try {
      const before = (await freshJson(`${server.url}/health`)).body.bundle;
      const next = nextVersion();

      replaceBundle(dir, next.dir);
      writeFileSync(join(dir, "lstm_optimized.onnx"), "not a graph");
      const refused = await reload(server.url);
      expect(refused.status).toBe(422);
      expect(refused.body.message).toContain("lstm_optimized.onnx does not match its sha256");
      for (const health of await healthOfWorkers(server.url)) {
        expect(health.bundle).toEqual(before);
        expect(health.last_reload).toMatchObject({ ok: false });
      }

      replaceBundle(dir, next.dir);
      const [first, second] = await Promise.all([reload(server.url), reload(server.url)]);
      const [ok, busy] = first.status === 200 ? [first, second] : [second, first];
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ reloaded: true, bundle: { version: next.version }, previous: before, workers: 2 });
      expect(busy.status).toBe(409);
      expect(busy.body.error).toBe("reload_in_progress");
      // No waiting: the 200 said every worker had swapped.
      const after = await healthOfWorkers(server.url);
      expect(after.map((h) => h.bundle.version)).toEqual(Array(20).fill(next.version));
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 90_000);

  it("SIGHUP to the primary reloads every worker", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const server = await cluster(dir);
    try {
      const next = nextVersion();
      replaceBundle(dir, next.dir);
      server.child.kill("SIGHUP");
      await waitFor("a worker to swap", async () => ((await freshJson(`${server.url}/health`)).body.bundle.version === next.version ? true : undefined), 30_000);
      // The primary swaps both together: once one serves the new bundle, so does the other.
      const after = await healthOfWorkers(server.url);
      expect(after.map((h) => h.bundle.version)).toEqual(Array(20).fill(next.version));
      server.child.kill("SIGTERM");
      expect((await server.exit).code).toBe(0);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 90_000);
});
