import { readFileSync } from "node:fs";
import type { Server } from "node:https";
import { createSecureContext } from "node:tls";
import type { FastifyBaseLogger } from "fastify";
import { type Config, ConfigError } from "./config.js";

/** HTTPS on PORT (TLS_CERT_FILE, TLS_KEY_FILE): the PEM pair, read at start and on SIGHUP. */

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

type TlsSettings = Pick<Config, "TLS_CERT_FILE" | "TLS_KEY_FILE">;

/** The pair, checked to be a certificate and its private key; a ConfigError naming the setting otherwise. */
export function readTls(config: TlsSettings): TlsFiles | undefined {
  if (!config.TLS_CERT_FILE || !config.TLS_KEY_FILE) return undefined;
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(`invalid configuration:\n  ${name}=${JSON.stringify(path)}: cannot read it (${(error as Error).message})`);
    }
  };
  const files = { cert: read("TLS_CERT_FILE", config.TLS_CERT_FILE), key: read("TLS_KEY_FILE", config.TLS_KEY_FILE) };
  try {
    createSecureContext(files);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  TLS_CERT_FILE, TLS_KEY_FILE: not a PEM certificate and its private key (${(error as Error).message})`,
    );
  }
  return files;
}

/** Serve the files' current certificate to new connections; a bad one keeps the old one serving. */
export function reloadTls(server: Server, config: TlsSettings, log: FastifyBaseLogger): void {
  try {
    const files = readTls(config);
    if (!files) return;
    server.setSecureContext(files);
    log.info("TLS certificate reloaded");
  } catch (error) {
    log.error({ err: error }, "TLS certificate not reloaded; the previous one keeps serving");
  }
}
