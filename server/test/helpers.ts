import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { type BuildOptions, buildApp } from "../src/app.js";
import { parseConfig } from "../src/config.js";
import { freePort, waitFor } from "../../test-support/wait.js";
import { BUNDLES_DIR } from "./bundles.js";

export { freePort, waitFor };

export const SERVER_JS = resolve(import.meta.dirname, "../dist/server.js");
export const RETURN_BUNDLE = join(BUNDLES_DIR, "spx-return-1d");
export const VOL_BUNDLE = join(BUNDLES_DIR, "spx-vol-5d");
export const GUIDE_FEATURES = [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/** An app on the default bundle with test-friendly settings; `env` overrides any of them. */
export function testApp(env: Record<string, string> = {}, opts: Omit<BuildOptions, "config"> = {}): Promise<FastifyInstance> {
  return buildApp({ config: parseConfig({ LOG_LEVEL: "silent", RATE_LIMIT_MAX: "0", ADMIN_RATE_LIMIT_MAX: "0", ...env }), logger: false, ...opts });
}

/** A copy of a bundle in a fresh temp directory, for tests that change files. */
export function copyBundle(source: string): string {
  const dir = join(mkdtempSync(join(tmpdir(), "bundle-")), "bundle");
  cpSync(source, dir, { recursive: true });
  return dir;
}

/** Replaces a bundle directory's contents with another bundle's, as a deployment would. */
export function replaceBundle(dir: string, source: string): void {
  rmSync(dir, { recursive: true });
  cpSync(source, dir, { recursive: true });
}

/**
 * Another bundle of the default bundle's feature shape: a copy with another version, hence
 * another digest. A hot reload keeps the API the process publishes, so it swaps only bundles
 * of one shape (spx-vol-5d has another: tests that swap bundles under a server use this).
 */
export function nextVersion(source = RETURN_BUNDLE): { dir: string; version: string } {
  const dir = copyBundle(source);
  const path = join(dir, "manifest.json");
  const manifest = JSON.parse(readFileSync(path, "utf8"));
  manifest.version = `${manifest.version}-next`;
  writeFileSync(path, JSON.stringify(manifest, null, 2));
  return { dir, version: manifest.version };
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The real server process (built dist/server.js) on a free port, once /health answers 200. */
export async function startServer(env: Record<string, string> = {}, ready = true): Promise<ServerProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const child = spawn(process.execPath, [SERVER_JS], {
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "warn", RATE_LIMIT_MAX: "0", ADMIN_RATE_LIMIT_MAX: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  if (ready) {
    await waitFor(
      `server on ${port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`server exited: ${output}`);
        return (await fetch(`${url}/health`)).status === 200 ? true : undefined;
      },
      20_000,
    ).catch((error: Error) => {
      child.kill("SIGKILL");
      throw new Error(`${error.message}\n${output}`);
    });
  }
  return { child, url, port, output: () => output, exit };
}

export interface RedisProcess {
  url: string;
  port: number;
  stop: () => Promise<void>;
  start: () => Promise<void>;
  /** SIGSTOP: connections stay open and commands hang unanswered, as with an overloaded Redis. */
  pause: () => void;
  /** SIGCONT: the hung commands are answered and new ones too. */
  resume: () => void;
}

/** A real redis-server (Debian's) on a free port, without persistence. */
export async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    await waitFor(
      "redis-server",
      () =>
        new Promise<true | undefined>((r) => {
          const socket = connect(port, "127.0.0.1", () => {
            socket.end();
            r(true);
          });
          socket.on("error", () => r(undefined));
        }),
      10_000,
    );
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, port, stop, start, pause: () => child?.kill("SIGSTOP"), resume: () => child?.kill("SIGCONT") };
}

export const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, payload: JSON.stringify(body) });

/** One request on a new connection (fetch would reuse one, so would land on the same worker): status and body text. */
export function fresh(url: string, opts: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  const headers = { ...(opts.body === undefined ? {} : { "content-type": "application/json" }), ...opts.headers };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? (opts.body === undefined ? "GET" : "POST"), agent: false, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, body: text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
  });
}

/** The status of each of `n` requests sent one after another. */
export async function statuses(n: number, send: (i: number) => Promise<{ statusCode: number }>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send(i)).statusCode);
  return out;
}

/** A fresh self-signed certificate for 127.0.0.1 written to `dir`/cert.pem and key.pem. */
export function selfSigned(dir: string, name: string, key: "ec" | "rsa" = "ec"): Buffer {
  const keyOptions = key === "ec" ? ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["rsa:2048"];
  execFileSync("openssl", [
    "req", "-x509", "-newkey", ...keyOptions, "-nodes", "-days", "1",
    "-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  return readFileSync(join(dir, "cert.pem"));
}
