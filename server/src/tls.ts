import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Server } from "node:https";
import { createSecureContext } from "node:tls";
import type { FastifyBaseLogger } from "fastify";
import { type Config, ConfigError } from "./config.js";
import type { Metrics } from "./plugins/metrics.js";

/**
 * HTTPS on PORT (TLS_CERT_FILE, TLS_KEY_FILE): the PEM pair, read at start, on SIGHUP and when
 * the files change (checked every TLS_RELOAD_INTERVAL_MS, see CertificateReloader), served
 * with Mozilla's "intermediate" profile: TLS 1.3, and TLS 1.2 with ECDHE key exchange and AEAD
 * ciphers only (forward secret, no CBC, no SHA-1 MAC); TLS_MIN_VERSION=TLSv1.3 drops 1.2.
 */

// Naming the TLS 1.3 suites keeps 1.3 on: Node turns it off when `ciphers` names none.
const CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** What the HTTPS server is given, at start and again on every reload (a new context replaces all of it). */
export interface TlsContext {
  cert: Buffer;
  key: Buffer;
  ciphers: string;
  minVersion: "TLSv1.2" | "TLSv1.3";
  /** The profile's suites are all strong: the client picks the one its hardware runs fastest. */
  honorCipherOrder: false;
}

type TlsSettings = Pick<Config, "TLS_CERT_FILE" | "TLS_KEY_FILE" | "TLS_MIN_VERSION">;

const unreadable = (name: string, path: string, error: unknown) =>
  new ConfigError(`invalid configuration:\n  ${name}=${JSON.stringify(path)}: cannot read it (${(error as Error).message})`);

/**
 * The files' contents. Kubernetes swaps a Secret's files together (one symlink, `..data`),
 * but between reading the certificate and the key a swap could still land: the certificate
 * is read again after the key, and the pair read again if it changed meanwhile.
 */
function readPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw unreadable(name, path, error);
    }
  };
  for (let attempt = 1; ; attempt++) {
    const cert = read("TLS_CERT_FILE", certFile);
    const key = read("TLS_KEY_FILE", keyFile);
    if (attempt === 3 || read("TLS_CERT_FILE", certFile).equals(cert)) return { cert, key };
  }
}

/** The pair with the profile, checked to be a certificate and its private key; a ConfigError otherwise. */
function secureContext(pair: { cert: Buffer; key: Buffer }, config: TlsSettings): TlsContext {
  const context: TlsContext = { ...pair, ciphers: CIPHERS, minVersion: config.TLS_MIN_VERSION, honorCipherOrder: false };
  try {
    createSecureContext(context);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  TLS_CERT_FILE, TLS_KEY_FILE: not a PEM certificate and its private key (${(error as Error).message})`,
    );
  }
  return context;
}

/** The pair, checked to be a certificate and its private key, with the profile; a ConfigError naming the setting otherwise. */
export function readTls(config: TlsSettings): TlsContext | undefined {
  if (!config.TLS_CERT_FILE || !config.TLS_KEY_FILE) return undefined;
  return secureContext(readPair(config.TLS_CERT_FILE, config.TLS_KEY_FILE), config);
}

/** What a pair is compared by: its contents, not mtimes (kubelet's swap of the `..data` symlink changes no file's mtime, a copy may keep one). */
const digest = (pair: { cert: Buffer; key: Buffer }) =>
  `${createHash("sha256").update(pair.cert).digest("hex")}:${createHash("sha256").update(pair.key).digest("hex")}`;

/** The served (first, leaf) certificate's notAfter, in unix seconds; undefined if it cannot be parsed. */
function notAfter(cert: Buffer): number | undefined {
  try {
    const seconds = Date.parse(new X509Certificate(cert).validTo) / 1000;
    return Number.isFinite(seconds) ? seconds : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Keeps the HTTPS server on the pair the files hold, without a restart (issue 26): on SIGHUP
 * (reload), and every TLS_RELOAD_INTERVAL_MS (check), when the files' contents differ from
 * the pair being served. In Kubernetes the files are a mounted kubernetes.io/tls Secret that
 * cert-manager renews and kubelet swaps atomically (a new `..data` symlink); a poll reads the
 * paths afresh, so it follows the swap whatever the filesystem (fs.watch misses symlink swaps
 * on some). The reads are synchronous: two small files (kubelet's are in tmpfs), and no poll
 * can interleave with a SIGHUP.
 *
 * A new pair is validated as at start and then served to new handshakes (setSecureContext);
 * open connections keep theirs. A pair that is not one (half written, the certificate renewed
 * and the key not yet, unreadable) is not served: the current one keeps serving, a warning is
 * logged once for that state of the files, and the next poll looks again.
 *
 * Each process does this for itself: with WORKERS > 1 every worker polls its own files (no
 * coordination needed: the files are the same, and a worker started mid-rotation compares
 * with what it read at start). SIGHUP reaches the workers through the primary (reloads.ts).
 */
export class CertificateReloader {
  /** The digest of the pair being served. */
  #served: string;
  /** The last state of the files refused (a digest, or the read error), warned about once. */
  #refused: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: Pick<Server, "setSecureContext">,
    private readonly config: TlsSettings & { TLS_CERT_FILE: string; TLS_KEY_FILE: string },
    private readonly log: FastifyBaseLogger,
    private readonly metrics: Pick<Metrics, "registry" | "tlsReloads" | "tlsNotAfter">,
    served: TlsContext,
  ) {
    this.#served = digest(served);
    metrics.registry.registerMetric(metrics.tlsReloads);
    metrics.registry.registerMetric(metrics.tlsNotAfter);
    for (const result of ["ok", "invalid"]) metrics.tlsReloads.inc({ result }, 0);
    this.#expires(served.cert);
  }

  /** Poll the files every `intervalMs` (0: never) until stop(). */
  start(intervalMs: number): void {
    if (intervalMs > 0 && !this.#timer) this.#timer = setInterval(() => this.check(), intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** SIGHUP: serve the pair the files hold now, changed or not; a bad one keeps the current one (an error logged). */
  reload(): void {
    const outcome = this.#read();
    if ("error" in outcome) {
      this.#refuse(outcome.state, () => this.log.error({ err: outcome.error }, "TLS certificate not reloaded; the previous one keeps serving"));
      return;
    }
    this.#serve(outcome.context, "TLS certificate reloaded");
  }

  /** A poll: if the files hold another pair than the one served, serve it if it is a pair, else warn (once for this state of the files). */
  check(): void {
    const files = this.#files();
    if (files.state === this.#served) {
      this.#refused = undefined; // back to the served pair: a later bad state is news again
      return;
    }
    // Only a change is validated: most polls find the served pair and build no context.
    const outcome = "error" in files ? files : this.#contextOf(files);
    if ("error" in outcome) {
      this.#refuse(outcome.state, () =>
        this.log.warn(
          { err: outcome.error },
          "TLS certificate files changed but do not hold a certificate and its private key; the previous one keeps serving until they do",
        ),
      );
      return;
    }
    this.#serve(outcome.context, "TLS certificate reloaded: TLS_CERT_FILE or TLS_KEY_FILE changed");
  }

  /** The files now: a context to serve, or why not; either way the state they are in. */
  #read(): { state: string; context: TlsContext } | { state: string; error: unknown } {
    const files = this.#files();
    return "error" in files ? files : this.#contextOf(files);
  }

  /** The pair the files hold and its digest (the state they are in), or why they cannot be read. */
  #files(): { state: string; pair: { cert: Buffer; key: Buffer } } | { state: string; error: unknown } {
    try {
      const pair = readPair(this.config.TLS_CERT_FILE, this.config.TLS_KEY_FILE);
      return { state: digest(pair), pair };
    } catch (error) {
      return { state: `unreadable: ${(error as Error).message}`, error };
    }
  }

  #contextOf({ state, pair }: { state: string; pair: { cert: Buffer; key: Buffer } }): { state: string; context: TlsContext } | { state: string; error: unknown } {
    try {
      return { state, context: secureContext(pair, this.config) };
    } catch (error) {
      return { state, error };
    }
  }

  #serve(context: TlsContext, message: string): void {
    this.server.setSecureContext(context);
    this.#served = digest(context);
    this.#refused = undefined;
    this.metrics.tlsReloads.inc({ result: "ok" });
    this.#expires(context.cert);
    this.log.info({ notAfter: notAfter(context.cert) }, message);
  }

  /** A refused state is counted and reported once, however many polls find it. */
  #refuse(state: string, report: () => void): void {
    if (state === this.#refused) return;
    this.#refused = state;
    this.metrics.tlsReloads.inc({ result: "invalid" });
    report();
  }

  #expires(cert: Buffer): void {
    const seconds = notAfter(cert);
    if (seconds !== undefined) this.metrics.tlsNotAfter.set(seconds);
  }
}
