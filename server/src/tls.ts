import { readFileSync } from "node:fs";
import type { Server } from "node:https";
import { createSecureContext } from "node:tls";
import type { FastifyBaseLogger } from "fastify";
import { type Config, ConfigError } from "./config.js";

/**
 * HTTPS on PORT (TLS_CERT_FILE, TLS_KEY_FILE): the PEM pair, read at start and on SIGHUP, served
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

/** The pair, checked to be a certificate and its private key, with the profile; a ConfigError naming the setting otherwise. */
export function readTls(config: TlsSettings): TlsContext | undefined {
  if (!config.TLS_CERT_FILE || !config.TLS_KEY_FILE) return undefined;
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(`invalid configuration:\n  ${name}=${JSON.stringify(path)}: cannot read it (${(error as Error).message})`);
    }
  };
  const context: TlsContext = {
    cert: read("TLS_CERT_FILE", config.TLS_CERT_FILE),
    key: read("TLS_KEY_FILE", config.TLS_KEY_FILE),
    ciphers: CIPHERS,
    minVersion: config.TLS_MIN_VERSION,
    honorCipherOrder: false,
  };
  try {
    createSecureContext(context);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  TLS_CERT_FILE, TLS_KEY_FILE: not a PEM certificate and its private key (${(error as Error).message})`,
    );
  }
  return context;
}

/** Serve the files' current certificate to new connections; a bad one keeps the old one serving. */
export function reloadTls(server: Server, config: TlsSettings, log: FastifyBaseLogger): void {
  try {
    const context = readTls(config);
    if (!context) return;
    server.setSecureContext(context);
    log.info("TLS certificate reloaded");
  } catch (error) {
    log.error({ err: error }, "TLS certificate not reloaded; the previous one keeps serving");
  }
}
