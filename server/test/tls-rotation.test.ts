import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import type { FastifyInstance } from "fastify";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { loggerOptions } from "../src/logging.js";
import { readTls } from "../src/tls.js";
import { freePort, selfSigned, startServer, testApp, waitFor } from "./helpers.js";

/**
 * Issue 26: the certificate is rotated without a restart or a signal. Kubernetes mounts a
 * kubernetes.io/tls Secret as `tls.crt` → `..data/tls.crt` (and `tls.key`), `..data` → a
 * timestamped directory; a renewal writes a new directory and renames a new `..data` symlink
 * over the old one. The server polls the files every TLS_RELOAD_INTERVAL_MS and serves a new
 * pair to new handshakes; open connections keep theirs, and a bad pair is refused.
 */

interface Pair {
  name: string;
  cert: Buffer;
  key: Buffer;
}

/** A fresh self-signed certificate for 127.0.0.1 (common name `name`) and its key. */
function pair(name: string): Pair {
  const dir = mkdtempSync(join(tmpdir(), "pair-"));
  const cert = selfSigned(dir, name);
  return { name, cert, key: readFileSync(join(dir, "key.pem")) };
}

const notAfter = (p: Pair) => Date.parse(new X509Certificate(p.cert).validTo) / 1000;

/** A Secret volume as kubelet writes it; publish() swaps in a new pair atomically, as kubelet does on a change. */
function secretVolume(first: Pair) {
  const dir = mkdtempSync(join(tmpdir(), "secret-"));
  let version = 0;
  let current: string | undefined;
  const publish = (p: { cert: Buffer; key: Buffer }) => {
    const data = `..2026_01_01_00_00_00.${++version}`;
    mkdirSync(join(dir, data));
    writeFileSync(join(dir, data, "tls.crt"), p.cert);
    writeFileSync(join(dir, data, "tls.key"), p.key);
    symlinkSync(data, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data")); // the atomic swap
    if (current) rmSync(join(dir, current), { recursive: true });
    current = data;
  };
  publish(first);
  symlinkSync("..data/tls.crt", join(dir, "tls.crt"));
  symlinkSync("..data/tls.key", join(dir, "tls.key"));
  return { cert: join(dir, "tls.crt"), key: join(dir, "tls.key"), publish };
}

interface Answer {
  status: number;
  /** The common name of the certificate the connection's server presented. */
  served: string;
  /** Whether the request went on a connection opened before. */
  reused: boolean;
}

/** GET `url` trusting only `ca`: on a new connection, or on the agent's kept-alive one. */
function get(url: string, ca: Buffer[], agent: Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent }, (res) => {
      const served = String((res.socket as TLSSocket).getPeerCertificate().subject.CN);
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, served, reused: req.reusedSocket }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** `loops` clients sending requests on new connections one after another until stop(): every certificate served, in order, and every failure. */
function traffic(url: string, ca: Buffer[], loops = 4) {
  const served: string[] = [];
  const failures: string[] = [];
  let stopped = false;
  const running = Array.from({ length: loops }, async () => {
    while (!stopped) {
      try {
        const answer = await get(url, ca);
        served.push(answer.served);
        if (answer.status !== 200) failures.push(`status ${answer.status}`);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  });
  return {
    served,
    failures,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}

/** A metric's value in Prometheus text, or undefined. */
function metric(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const INTERVAL_MS = 250;

/** An HTTPS app in this process on the files, listening on a free port, its log kept. */
async function httpsApp(files: { cert: string; key: string }, env: Record<string, string> = {}) {
  const settings = { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.key, TLS_RELOAD_INTERVAL_MS: String(INTERVAL_MS), MODELS: "xgboost", ...env };
  let logs = "";
  const stream = new Writable({ write: (chunk, _encoding, done) => ((logs += String(chunk)), done()) });
  const app = await testApp(settings, { https: readTls(parseConfig(settings)), logger: { ...loggerOptions("info"), stream } });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  return { app, url: `https://127.0.0.1:${port}/health`, logs: () => logs };
}

const scrape = async (app: FastifyInstance) => (await app.inject({ method: "GET", url: "/metrics" })).body;

describe("TLS certificate rotation without a restart (issue 26)", () => {
  it("a Secret volume's atomic swap: new handshakes get the new certificate within the interval, a kept-alive connection keeps working, no request fails", async () => {
    const a = pair("A");
    const b = pair("B");
    const volume = secretVolume(a);
    const { app, url, logs } = await httpsApp(volume);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await scrape(app);
      expect(metric(before, 'tls_certificate_reloads_total{result="ok"}')).toBe(0);
      expect(metric(before, 'tls_certificate_reloads_total{result="invalid"}')).toBe(0);
      expect(metric(before, "tls_certificate_not_after_seconds")).toBe(notAfter(a));

      // A keep-alive connection, opened on A.
      expect(await get(url, [a.cert], agent)).toEqual({ status: 200, served: "A", reused: false });
      const load = traffic(url, [a.cert, b.cert]);
      await waitFor("traffic on A", () => load.served.length >= 20, 10_000);
      await sleep(2 * INTERVAL_MS); // polls that find the files unchanged

      const swapped = performance.now();
      volume.publish(b);
      const count = load.served.length;
      await waitFor("a new connection on B", () => load.served.slice(count).includes("B"), 10_000);
      const took = performance.now() - swapped;
      // The loop's requests take turns, so a handshake after the poll is seen shortly after it.
      expect(took).toBeLessThan(INTERVAL_MS + 2000);
      const switched = load.served.length;
      await waitFor("more traffic on B", () => load.served.length >= switched + 20, 10_000);
      await load.stop();

      expect(load.failures).toEqual([]);
      // A before the swap; once B is served, B for every later handshake (the requests the
      // other loops had under way then may still have been A).
      expect(load.served.slice(0, count).every((s) => s === "A")).toBe(true);
      expect(load.served.slice(switched + 4).every((s) => s === "B")).toBe(true);
      // The connection opened before the swap still serves, with the certificate it was opened with.
      expect(await get(url, [a.cert], agent)).toEqual({ status: 200, served: "A", reused: true });
      // And a new one, trusting only B, is served B.
      expect(await get(url, [b.cert])).toMatchObject({ status: 200, served: "B" });

      const after = await scrape(app);
      expect(metric(after, 'tls_certificate_reloads_total{result="ok"}')).toBe(1);
      expect(metric(after, 'tls_certificate_reloads_total{result="invalid"}')).toBe(0);
      expect(metric(after, "tls_certificate_not_after_seconds")).toBe(notAfter(b));
      expect(logs().match(/TLS certificate reloaded: TLS_CERT_FILE or TLS_KEY_FILE changed/g)).toHaveLength(1);
    } finally {
      agent.destroy();
      await app.close();
    }
  }, 60_000);

  it("files written by hand: a half-written or mismatched pair keeps the old certificate, warned once per state and counted invalid; the matching key then serves the new one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tls-"));
    selfSigned(dir, "A");
    const a = { name: "A", cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")) };
    const c = pair("C");
    const files = { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
    const { app, url, logs } = await httpsApp(files);
    const warnings = () => logs().split("\n").filter((l) => l.includes('"level":40') && l.includes("do not hold a certificate and its private key"));
    const invalid = async () => metric(await scrape(app), 'tls_certificate_reloads_total{result="invalid"}');
    try {
      expect((await get(url, [a.cert])).served).toBe("A");

      // Half of the new certificate written.
      writeFileSync(files.cert, c.cert.subarray(0, c.cert.length >> 1));
      await waitFor("a warning", () => warnings().length === 1, 10_000);
      await sleep(4 * INTERVAL_MS); // more polls of the same state: no more warnings
      expect(warnings()).toHaveLength(1);
      expect(await invalid()).toBe(1);
      expect((await get(url, [a.cert])).served).toBe("A");

      // The whole new certificate, beside the old key: another state, another warning.
      writeFileSync(files.cert, c.cert);
      await waitFor("a second warning", () => warnings().length === 2, 10_000);
      await sleep(4 * INTERVAL_MS);
      expect(warnings()).toHaveLength(2);
      expect(warnings()[1]).toMatch(/not a PEM certificate and its private key/);
      expect(await invalid()).toBe(2);
      for (let i = 0; i < 3; i++) expect(await get(url, [a.cert])).toMatchObject({ status: 200, served: "A" });

      // The key arrives: C is served.
      writeFileSync(files.key, c.key);
      await waitFor("C served", async () => (await get(url, [a.cert, c.cert])).served === "C", 10_000);
      expect(await get(url, [c.cert])).toMatchObject({ status: 200, served: "C" });
      const text = await scrape(app);
      expect(metric(text, 'tls_certificate_reloads_total{result="ok"}')).toBe(1);
      expect(metric(text, 'tls_certificate_reloads_total{result="invalid"}')).toBe(2);
      expect(metric(text, "tls_certificate_not_after_seconds")).toBe(notAfter(c));
      expect(warnings()).toHaveLength(2);
    } finally {
      await app.close();
    }
  }, 60_000);

  it("TLS_RELOAD_INTERVAL_MS=0: the files are not polled, SIGHUP's reload still serves the new pair", async () => {
    const a = pair("A");
    const b = pair("B");
    const volume = secretVolume(a);
    const { app, url } = await httpsApp(volume, { TLS_RELOAD_INTERVAL_MS: "0" });
    try {
      volume.publish(b);
      await sleep(3 * INTERVAL_MS);
      expect((await get(url, [a.cert])).served).toBe("A");
      app.wavelet.reloadCertificate(); // what SIGHUP calls
      expect((await get(url, [b.cert])).served).toBe("B");
      expect(metric(await scrape(app), 'tls_certificate_reloads_total{result="ok"}')).toBe(1);
    } finally {
      await app.close();
    }
  }, 60_000);

  it("a plain HTTP server exports no TLS metrics", async () => {
    const app = await testApp({ MODELS: "xgboost" });
    try {
      expect(await scrape(app)).not.toContain("tls_certificate");
    } finally {
      await app.close();
    }
  });

  it("WORKERS=2: after a Secret volume's swap every worker serves the new certificate, with no failed request; METRICS_PORT stays plain HTTP", async () => {
    const a = pair("A");
    const b = pair("B");
    const volume = secretVolume(a);
    const metricsPort = await freePort();
    const adminKey = "admin-key-for-the-rotation-tests";
    const server = await startServer(
      {
        WORKERS: "2",
        METRICS_PORT: String(metricsPort),
        MODELS: "xgboost",
        ADMIN_API_KEY: adminKey,
        TLS_CERT_FILE: volume.cert,
        TLS_KEY_FILE: volume.key,
        TLS_RELOAD_INTERVAL_MS: String(INTERVAL_MS),
        LOG_LEVEL: "info",
      },
      false,
    );
    const url = `https://127.0.0.1:${server.port}/health`;
    // The primary's combined metrics, on METRICS_PORT: plain HTTP although the API is HTTPS.
    const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    try {
      await waitFor("HTTPS /health 200", async () => (await get(url, [a.cert]).catch(() => undefined))?.status === 200, 30_000);
      // Both workers up: each exports its counters, summed by the primary.
      await waitFor("two workers' metrics", async () => {
        const text = await metrics().catch(() => "");
        return text.includes("tls_certificate_reloads_total") && (await reloadWorkers(server.port, a.cert, adminKey)) === 2;
      }, 30_000);
      expect(metric(await metrics(), 'tls_certificate_reloads_total{result="ok"}')).toBe(0);
      expect(metric(await metrics(), "tls_certificate_not_after_seconds")).toBe(notAfter(a));

      const load = traffic(url, [a.cert, b.cert]);
      await waitFor("traffic on A", () => load.served.length >= 20, 10_000);
      volume.publish(b);
      // Every worker has reloaded: the primary's sum counts one reload per worker.
      await waitFor("both workers reloaded", async () => metric(await metrics(), 'tls_certificate_reloads_total{result="ok"}') === 2, 10_000);
      const settled = load.served.length;
      await waitFor("more traffic", () => load.served.length >= settled + 20, 10_000);
      await load.stop();
      expect(load.failures).toEqual([]);
      // Every handshake after both reloaded got B (but those the loops had under way then).
      expect(load.served.slice(settled + 4).every((s) => s === "B")).toBe(true);

      // New connections go to the workers in turn: each one is served B.
      for (let i = 0; i < 10; i++) expect(await get(url, [b.cert])).toMatchObject({ status: 200, served: "B" });
      const text = await metrics();
      expect(metric(text, 'tls_certificate_reloads_total{result="invalid"}')).toBe(0);
      expect(metric(text, "tls_certificate_not_after_seconds")).toBe(notAfter(b));
      expect(server.output().match(/TLS certificate reloaded: TLS_CERT_FILE or TLS_KEY_FILE changed/g)).toHaveLength(2);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 90_000);
});

/** POST /admin/reload (of the same bundle): how many workers serve. */
function reloadWorkers(port: number, ca: Buffer, key: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(
      `https://127.0.0.1:${port}/admin/reload`,
      { method: "POST", ca: [ca], agent: false, headers: { "x-api-key": key, "content-type": "application/json" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve(res.statusCode === 200 ? (JSON.parse(body) as { workers: number }).workers : undefined));
      },
    );
    req.on("error", () => resolve(undefined));
    req.end();
  });
}
