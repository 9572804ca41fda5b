import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SERVER_JS, freePort, startServer, testApp, waitFor } from "./helpers.js";

/** HTTPS on PORT with TLS_CERT_FILE / TLS_KEY_FILE, the certificate re-read on SIGHUP. */

/** A fresh self-signed certificate for 127.0.0.1 written to `dir`/cert.pem and key.pem. */
function selfSigned(dir: string, name: string): Buffer {
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  return readFileSync(join(dir, "cert.pem"));
}

interface Answer {
  status: number;
  body: string;
  hsts: string | undefined;
  /** The common name of the certificate the server presented. */
  served: string;
}

const ADMIN_KEY = "admin-key-for-the-tls-tests";

/** A request over a new TLS connection that trusts only `ca`. */
function get(url: string, ca: Buffer[], method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false, method, headers: { "x-api-key": ADMIN_KEY } }, (res) => {
      const served = String((res.socket as import("node:tls").TLSSocket).getPeerCertificate().subject.CN);
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, body, hsts: res.headers["strict-transport-security"] as string | undefined, served }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HTTPS", () => {
  for (const [name, env] of [
    ["", {}],
    [" (WORKERS=2: the primary has every worker re-read it)", { WORKERS: "2" }],
  ] as const) {
    it(`serves TLS with HSTS; SIGHUP serves the replaced certificate, and a bad one keeps the current${name}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "tls-"));
      const first = selfSigned(dir, "first");
      const extra: Record<string, string> = "WORKERS" in env ? { ...env, METRICS_PORT: String(await freePort()) } : {};
      const server = await startServer({ ...extra, ADMIN_API_KEY: ADMIN_KEY, TLS_CERT_FILE: join(dir, "cert.pem"), TLS_KEY_FILE: join(dir, "key.pem"), LOG_LEVEL: "info" }, false);
      const url = `https://127.0.0.1:${server.port}/health`;
      try {
        const ready = await waitFor("HTTPS /health 200", async () => {
          const answer = await get(url, [first]);
          return answer.status === 200 ? answer : undefined;
        }, 30_000);
        expect(ready).toMatchObject({ served: "first", hsts: "max-age=31536000; includeSubDomains" });
        // Every worker up (a reload of the same bundle counts them): one still starting would read the files itself.
        const workers = Number(extra.WORKERS ?? 1);
        await waitFor("every worker", async () => JSON.parse((await get(url.replace("/health", "/admin/reload"), [first], "POST")).body).workers === workers, 30_000);

        const second = selfSigned(dir, "second");
        server.child.kill("SIGHUP");
        // Every new connection (to either worker) presents the new certificate.
        await waitFor("the new certificate", async () => (await get(url, [second])).served === "second", 20_000);
        for (let i = 0; i < 6; i++) expect((await get(url, [second])).served).toBe("second");

        writeFileSync(join(dir, "cert.pem"), "not a certificate");
        server.child.kill("SIGHUP");
        await waitFor("the refusal in the log", () => server.output().includes("TLS certificate not reloaded"), 20_000);
        for (let i = 0; i < 6; i++) expect((await get(url, [second])).served).toBe("second");
      } finally {
        server.child.kill("SIGKILL");
      }
    }, 90_000);
  }

  it("plain HTTP sends no Strict-Transport-Security", async () => {
    const app = await testApp();
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["strict-transport-security"]).toBeUndefined();
    await app.close();
  });

  it("refuses to start when the files are unreadable, not a pair, or only one is set", () => {
    const dir = mkdtempSync(join(tmpdir(), "tls-"));
    selfSigned(dir, "ok");
    const other = mkdtempSync(join(tmpdir(), "tls-"));
    selfSigned(other, "other");
    for (const [env, message] of [
      [{ TLS_CERT_FILE: join(dir, "missing.pem"), TLS_KEY_FILE: join(dir, "key.pem") }, /TLS_CERT_FILE=".*missing\.pem": cannot read it/],
      [{ TLS_CERT_FILE: join(dir, "cert.pem"), TLS_KEY_FILE: join(other, "key.pem") }, /not a PEM certificate and its private key/],
      [{ TLS_CERT_FILE: join(dir, "cert.pem") }, /TLS_CERT_FILE and TLS_KEY_FILE go together/],
    ] as const) {
      const run = spawnSync(process.execPath, [SERVER_JS], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 25_000 });
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  }, 90_000);
});
