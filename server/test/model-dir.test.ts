import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { RETURN_BUNDLE, VOL_BUNDLE, nextVersion, startServer, testApp, waitFor } from "./helpers.js";

/** The repository's models/, which the guide mounts as MODEL_DIR (bundles under bundles/). */
const MODELS_DIR = resolve(import.meta.dirname, "../../models");

/** A fresh directory holding a copy of each source bundle under the given name. */
function bundlesDir(bundles: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "models-"));
  for (const [name, source] of Object.entries(bundles)) cpSync(source, join(dir, name), { recursive: true });
  return dir;
}

describe("MODEL_DIR holding several bundles", () => {
  it("the guide's MODEL_DIR=models/ serves the default bundle spx-return-1d", async () => {
    const server = await startServer({ MODEL_DIR: MODELS_DIR });
    try {
      expect(((await (await fetch(`${server.url}/health`)).json()) as { bundle: { name: string } }).bundle.name).toBe("spx-return-1d");
      expect(((await (await fetch(`${server.url}/models`)).json()) as { bundle: { name: string } }).bundle.name).toBe("spx-return-1d");
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 30_000);

  it("MODEL_BUNDLE picks another one", async () => {
    const app = await testApp({ MODEL_DIR: MODELS_DIR, MODEL_BUNDLE: "spx-vol-5d" });
    const health = await app.inject({ method: "GET", url: "/health" });
    expect(health.statusCode).toBe(200);
    expect(health.json().bundle.name).toBe("spx-vol-5d");
    expect((await app.inject({ method: "GET", url: "/models" })).json().bundle.name).toBe("spx-vol-5d");
    await app.close();
  });

  it("a directory holding one bundle serves it, whatever its name", async () => {
    const app = await testApp({ MODEL_DIR: bundlesDir({ mine: VOL_BUNDLE }) });
    const health = await app.inject({ method: "GET", url: "/health" });
    expect(health.statusCode).toBe(200);
    expect(health.json().bundle.name).toBe("spx-vol-5d");
    await app.close();
  });

  it("several bundles, none of them spx-return-1d, no MODEL_BUNDLE: the server starts unready, naming them and MODEL_BUNDLE", async () => {
    const dir = bundlesDir({ alpha: RETURN_BUNDLE, beta: VOL_BUNDLE });
    const server = await startServer({ MODEL_DIR: dir }, false);
    try {
      const reasons = await waitFor("/health", async () => {
        const res = await fetch(`${server.url}/health`);
        return res.status === 503 ? ((await res.json()) as { reasons: string[] }).reasons : undefined;
      }, 20_000);
      expect(reasons).toEqual([`MODEL_DIR holds several bundles (alpha, beta) and none is spx-return-1d: set MODEL_BUNDLE to the one to serve`]);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 30_000);

  it("a MODEL_BUNDLE that is not there leaves the server unready, listing what is", async () => {
    const app = await testApp({ MODEL_DIR: MODELS_DIR, MODEL_BUNDLE: "spx-vol-20d" });
    const health = await app.inject({ method: "GET", url: "/health" });
    expect(health.statusCode).toBe(503);
    expect(health.json().reasons).toEqual([`MODEL_BUNDLE=spx-vol-20d is not a bundle in MODEL_DIR/bundles, which holds ndx-range-vol-5d, spx-range-vol-5d, spx-return-1d, spx-vol-5d`]);
    await app.close();
  });

  it("a reload looks again: the bundle that replaced the directory's contents is served", async () => {
    const dir = bundlesDir({ first: RETURN_BUNDLE });
    const app = await testApp({ MODEL_DIR: dir });
    expect((await app.inject({ method: "GET", url: "/health" })).json().bundle.name).toBe("spx-return-1d");
    const next = nextVersion();
    rmSync(join(dir, "first"), { recursive: true });
    cpSync(next.dir, join(dir, "second"), { recursive: true });
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(200);
    expect(reload.json().bundle.version).toBe(next.version);
    expect((await app.inject({ method: "GET", url: "/health" })).json().bundle.version).toBe(next.version);
    await app.close();
  });
});
