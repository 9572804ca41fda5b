import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SERVER_JS, freePort, selfSigned, startServer, testApp, waitFor } from "./helpers.js";

/** HTTPS on PORT with TLS_CERT_FILE / TLS_KEY_FILE, the certificate re-read on SIGHUP. */

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
    const headers = { "x-api-key": ADMIN_KEY, ...(method === "POST" ? { "content-type": "application/json" } : {}) };
    const req = request(url, { ca, agent: false, method, headers }, (res) => {
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
        expect(ready).toMatchObject({ served: "first", hsts: "max-age=31536000" });
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

  it("plain HTTP sends no Strict-Transport-Security, whatever X-Forwarded-Proto a client sends", async () => {
    const app = await testApp();
    const res = await app.inject({ method: "GET", url: "/health" });
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["strict-transport-security"]).toBeUndefined();
    await app.close();
    // With a hop count the peer is taken for a proxy, so a direct client's header was believed.
    const server = await startServer({ TRUST_PROXY: "1", MODELS: "xgboost" });
    try {
      const forged = await fetch(`${server.url}/health`, { headers: { "x-forwarded-proto": "https" } });
      expect(forged.headers.get("x-content-type-options")).toBe("nosniff");
      expect(forged.headers.get("strict-transport-security")).toBeNull();
      expect(forged.headers.get("cross-origin-opener-policy")).toBeNull();
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 30_000);

  it("HSTS_INCLUDE_SUBDOMAINS=true adds includeSubDomains", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tls-"));
    const ca = selfSigned(dir, "hsts");
    const server = await startServer({ HSTS_INCLUDE_SUBDOMAINS: "true", MODELS: "xgboost", TLS_CERT_FILE: join(dir, "cert.pem"), TLS_KEY_FILE: join(dir, "key.pem") }, false);
    try {
      const answer = await waitFor("HTTPS /health", () => get(`https://127.0.0.1:${server.port}/health`, [ca]), 30_000);
      expect(answer.hsts).toBe("max-age=31536000; includeSubDomains");
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 45_000);

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

/** What a handshake offering only these ciphers and versions got: the protocol and suite, or the failure. */
function handshake(port: number, ca: Buffer, offer: { ciphers?: string; minVersion?: "TLSv1" | "TLSv1.2" | "TLSv1.3"; maxVersion?: "TLSv1.1" | "TLSv1.2" | "TLSv1.3" }): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, ca: [ca], ...offer }, () => {
      resolve(`${socket.getProtocol()} ${socket.getCipher().standardName}`);
      socket.end();
    });
    socket.on("error", () => resolve("refused"));
  });
}

describe("the TLS profile (Mozilla intermediate)", () => {
  // An RSA certificate: with it, static RSA key exchange (no forward secrecy) is possible at all.
  const start = async (env: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), "tls-"));
    const ca = selfSigned(dir, "rsa", "rsa");
    const server = await startServer({ ...env, MODELS: "xgboost", TLS_CERT_FILE: join(dir, "cert.pem"), TLS_KEY_FILE: join(dir, "key.pem") }, false);
    await waitFor("HTTPS /health", () => get(`https://127.0.0.1:${server.port}/health`, [ca]), 30_000);
    return { server, ca, dir };
  };
  const tls12 = (ciphers: string) => ({ ciphers, maxVersion: "TLSv1.2" as const });

  it("TLS 1.2 only with ECDHE and AEAD, and TLS 1.3; still so after SIGHUP re-reads the certificate", async () => {
    const { server, ca, dir } = await start();
    const check = async (ca: Buffer) => {
      const port = server.port;
      expect(await handshake(port, ca, tls12("AES128-SHA"))).toBe("refused"); // RSA key exchange, SHA-1 CBC
      expect(await handshake(port, ca, tls12("AES256-GCM-SHA384"))).toBe("refused"); // AEAD, but RSA key exchange
      expect(await handshake(port, ca, tls12("ECDHE-RSA-AES128-SHA"))).toBe("refused"); // forward secret, SHA-1 CBC
      expect(await handshake(port, ca, tls12("ECDHE-RSA-AES256-SHA384"))).toBe("refused"); // CBC
      expect(await handshake(port, ca, tls12("DHE-RSA-AES128-GCM-SHA256"))).toBe("refused"); // finite-field DHE
      expect(await handshake(port, ca, { minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "ECDHE-RSA-AES128-SHA:@SECLEVEL=0" })).toBe("refused");
      expect(await handshake(port, ca, tls12("ECDHE-RSA-AES128-GCM-SHA256"))).toBe("TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
      expect(await handshake(port, ca, tls12("ECDHE-RSA-AES256-GCM-SHA384"))).toBe("TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
      expect(await handshake(port, ca, tls12("ECDHE-RSA-CHACHA20-POLY1305"))).toBe("TLSv1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
      expect(await handshake(port, ca, {})).toMatch(/^TLSv1\.3 TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);
    };
    try {
      await check(ca);
      const next = selfSigned(dir, "rsa-next", "rsa");
      server.child.kill("SIGHUP");
      await waitFor("the new certificate", async () => (await get(`https://127.0.0.1:${server.port}/health`, [next]).catch(() => undefined))?.served === "rsa-next", 20_000);
      await check(next);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 60_000);

  it("TLS_MIN_VERSION=TLSv1.3 refuses TLS 1.2; anything but TLSv1.2 or TLSv1.3 stops the start", async () => {
    const { server, ca } = await start({ TLS_MIN_VERSION: "TLSv1.3" });
    try {
      expect(await handshake(server.port, ca, tls12("ECDHE-RSA-AES128-GCM-SHA256"))).toBe("refused");
      expect(await handshake(server.port, ca, {})).toMatch(/^TLSv1\.3 /);
    } finally {
      server.child.kill("SIGKILL");
    }
    const run = spawnSync(process.execPath, [SERVER_JS], { env: { ...process.env, TLS_MIN_VERSION: "TLSv1.1" }, encoding: "utf8", timeout: 25_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/TLS_MIN_VERSION="TLSv1.1": /);
  }, 60_000);
});
