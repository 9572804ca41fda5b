import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GUIDE_FEATURES, RETURN_BUNDLE, VOL_BUNDLE, copyBundle, json, nextVersion, replaceBundle, testApp } from "./helpers.js";

/** What EXPECTED_BUNDLE_DIGEST names a bundle by: the sha256 of its manifest.json. */
const digestOf = (dir: string) => `sha256:${createHash("sha256").update(readFileSync(join(dir, "manifest.json"))).digest("hex")}`;

/** Add `file` to the manifest's files (with any hash: the path check comes first). */
function listInManifest(dir: string, file: string) {
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  manifest.files[file] = "0".repeat(64);
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
}

async function gauges(app: Awaited<ReturnType<typeof testApp>>) {
  const body = (await app.inject({ method: "GET", url: "/metrics" })).body;
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(body)?.[1]);
  return { ready: value("model_bundle_ready"), mismatch: value("model_bundle_digest_mismatch") };
}

const predictions = [
  { url: "/predict", body: { features: GUIDE_FEATURES } },
  { url: "/predict/batch", body: { samples: [GUIDE_FEATURES] } },
  { url: "/predict/stream", body: { features: [...GUIDE_FEATURES, 0.3] } },
];

describe("EXPECTED_BUNDLE_DIGEST is enforced", () => {
  it("at start: a real bundle with another digest is not served; /health 503 names the mismatch, predictions 503", async () => {
    const app = await testApp({ EXPECTED_BUNDLE_DIGEST: digestOf(VOL_BUNDLE) }); // serves RETURN_BUNDLE
    const health = await app.inject({ method: "GET", url: "/health" });
    expect(health.statusCode).toBe(503);
    expect(health.json().reasons).toEqual([`bundle digest ${digestOf(RETURN_BUNDLE)} is not the expected ${digestOf(VOL_BUNDLE)} (EXPECTED_BUNDLE_DIGEST)`]);
    for (const { url, body } of predictions) {
      const res = await app.inject({ method: "POST", url, ...json(body) });
      expect([url, res.statusCode]).toEqual([url, 503]);
    }
    // What the alerts WaveletModelNotReady and WaveletBundleDigestMismatch read.
    expect(await gauges(app)).toEqual({ ready: 0, mismatch: 1 });
    await app.close();
  });

  it("at reload: 422, the matching bundle keeps serving", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const app = await testApp({ MODEL_DIR: dir, EXPECTED_BUNDLE_DIGEST: digestOf(RETURN_BUNDLE) });
    expect((await app.inject({ method: "GET", url: "/health" })).statusCode).toBe(200);
    const next = nextVersion();
    replaceBundle(dir, next.dir);
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(422);
    expect(reload.json().message).toContain(`bundle digest ${digestOf(next.dir)} is not the expected ${digestOf(RETURN_BUNDLE)}`);
    const health = await app.inject({ method: "GET", url: "/health" });
    expect(health.statusCode).toBe(200);
    expect(health.json().bundle.digest).toBe(digestOf(RETURN_BUNDLE));
    const predict = await app.inject({ method: "POST", url: "/predict", ...json({ features: GUIDE_FEATURES }) });
    expect(predict.json().bundle.name).toBe("spx-return-1d");
    // Still ready (the old bundle serves), and the refused digest is flagged until a good reload.
    expect(await gauges(app)).toEqual({ ready: 1, mismatch: 1 });
    replaceBundle(dir, RETURN_BUNDLE);
    expect((await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } })).statusCode).toBe(200);
    expect(await gauges(app)).toEqual({ ready: 1, mismatch: 0 });
    await app.close();
  });
});

describe("reloads", () => {
  it("do not queue: one asked for while another runs is refused with 409 reload_in_progress", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    const app = await testApp({ MODEL_DIR: dir });
    replaceBundle(dir, nextVersion().dir);
    const answers = await Promise.all([1, 2, 3].map(() => app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } })));
    expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 409, 409]);
    expect(answers.find((a) => a.statusCode === 409)!.json().error).toBe("reload_in_progress");
    // Once it has ended, the next one runs.
    expect((await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } })).statusCode).toBe(200);
    await app.close();
  });

  it("time out after RELOAD_TIMEOUT_MS: 422 and the old bundle keeps serving", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    // 1 ms: no bundle verifies and warms four models that fast, so this reload is "hung".
    const app = await testApp({ MODEL_DIR: dir, RELOAD_TIMEOUT_MS: "1" });
    replaceBundle(dir, nextVersion().dir);
    const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(reload.statusCode).toBe(422);
    expect(reload.json().message).toContain("not verified and loaded within 1 ms (RELOAD_TIMEOUT_MS)");
    const health = await app.inject({ method: "GET", url: "/health" });
    expect(health.statusCode).toBe(200);
    expect(health.json().bundle.name).toBe("spx-return-1d");
    expect(health.json().last_reload).toMatchObject({ ok: false });
    await app.close();
  });
});

describe("answers never show the server's paths", () => {
  for (const [name, spoil] of [
    ["MODEL_DIR gone", (dir: string) => rmSync(join(dir, ".."), { recursive: true })],
    ["a file missing", (dir: string) => rmSync(join(dir, "lstm_optimized.onnx"))],
    ["manifest.json removed", (dir: string) => rmSync(join(dir, "manifest.json"))],
    ["a file changed", (dir: string) => writeFileSync(join(dir, "xgboost_optimized.onnx"), "x")],
  ] as const) {
    it(`${name}: /admin/reload, then /health and /models at a fresh start`, async () => {
      const dir = copyBundle(RETURN_BUNDLE);
      const app = await testApp({ MODEL_DIR: dir });
      spoil(dir);
      const reload = await app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
      expect(reload.statusCode).toBe(422);
      const after = await testApp({ MODEL_DIR: dir });
      const bodies = [reload.body, ...(await Promise.all([app, after].flatMap((a) => ["/health", "/models"].map((url) => a.inject({ method: "GET", url }))))).map((r) => r.body)];
      expect((await after.inject({ method: "GET", url: "/health" })).statusCode).toBe(503);
      for (const body of bodies) {
        expect(body).not.toContain(dir);
        expect(body).not.toContain(join(dir, "..")); // MODEL_DIR's parent, the temp directory
      }
      await Promise.all([app.close(), after.close()]);
    });
  }
});

describe("a manifest names files inside the bundle only", () => {
  for (const [name, prepare, reason] of [
    ["a path with ..", (dir: string) => listInManifest(dir, "../x"), '"../x" is not a relative path inside the bundle'],
    ["an absolute path", (dir: string) => listInManifest(dir, "/etc/passwd"), '"/etc/passwd" is not a relative path inside the bundle'],
    [
      "a symlink leading out of the bundle",
      (dir: string) => {
        symlinkSync("/etc/passwd", join(dir, "passwd"));
        listInManifest(dir, "passwd");
      },
      "passwd is outside the bundle",
    ],
    [
      "a FIFO (which would hang a plain read)",
      (dir: string) => {
        execFileSync("mkfifo", [join(dir, "pipe")]);
        listInManifest(dir, "pipe");
      },
      "pipe is not a regular file",
    ],
  ] as const) {
    it(`refuses ${name}`, async () => {
      const dir = copyBundle(RETURN_BUNDLE);
      prepare(dir);
      const app = await testApp({ MODEL_DIR: dir });
      const health = await app.inject({ method: "GET", url: "/health" });
      expect(health.statusCode).toBe(503);
      expect(health.json().reasons[0]).toContain(reason);
      await app.close();
    });
  }

  it("follows symlinks that stay inside the bundle (a Kubernetes volume's ..data layout)", async () => {
    const dir = copyBundle(RETURN_BUNDLE);
    cpSync(RETURN_BUNDLE, join(dir, "..data"), { recursive: true });
    rmSync(join(dir, "lstm_optimized.onnx"));
    symlinkSync("..data/lstm_optimized.onnx", join(dir, "lstm_optimized.onnx"));
    const app = await testApp({ MODEL_DIR: dir });
    expect((await app.inject({ method: "GET", url: "/health" })).statusCode).toBe(200);
    await app.close();
  });
});
