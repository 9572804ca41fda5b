import type { FastifyRequest } from "fastify";
import type { Config } from "./config.js";

/**
 * The process's logger settings. At debug and trace, request lines carry the request headers
 * (to diagnose clients and proxies); credentials among them are censored, whatever the level.
 */

const CREDENTIAL_HEADERS = ["authorization", "proxy-authorization", "x-api-key", "cookie"];

export function loggerOptions(level: Config["LOG_LEVEL"]) {
  const withHeaders = level === "debug" || level === "trace";
  return {
    level,
    redact: { paths: CREDENTIAL_HEADERS.map((h) => `req.headers["${h}"]`), censor: "[redacted]" },
    ...(withHeaders
      ? {
          serializers: {
            // Fastify's own request fields, plus a copy of the headers (redaction edits what it logs).
            req: (req: FastifyRequest) => ({
              method: req.method,
              url: req.url,
              host: req.host,
              remoteAddress: req.ip,
              remotePort: req.socket?.remotePort,
              headers: { ...req.headers },
            }),
          },
        }
      : {}),
  };
}
