import type { FastifyRequest } from "fastify";
import type { Config } from "./config.js";
import { clientAddress } from "./proxies.js";

/**
 * The process's logger settings. Request lines carry the method, the URL with every query
 * value hidden (a client may put a key in ?api_key=; no route takes a query) and the peer. At
 * debug and trace they carry the request headers too, to diagnose clients and proxies: the
 * values of the headers known to hold no credential, and only the names of the others, since
 * proxies and gateways add tokens under names of their own (X-Forwarded-Access-Token,
 * X-Amzn-Oidc-Accesstoken, Cf-Access-Jwt-Assertion, ...), which no deny-list keeps up with.
 */

const SHOWN_HEADERS = new Set([
  "accept",
  "accept-encoding",
  "accept-language",
  "cache-control",
  "connection",
  "content-encoding",
  "content-length",
  "content-type",
  "forwarded",
  "host",
  "origin",
  "pragma",
  "traceparent",
  "tracestate",
  "transfer-encoding",
  "user-agent",
  "via",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-proto",
  "x-real-ip",
  "x-request-id",
]);
const HIDDEN = "[redacted]";

/** The URL with each query value hidden (a bare query item entirely). */
export function loggedUrl(url: string): string {
  const start = url.indexOf("?");
  if (start < 0) return url;
  const items = url.slice(start + 1).split("&");
  return `${url.slice(0, start)}?${items.map((item) => (item.includes("=") ? `${item.slice(0, item.indexOf("="))}=${HIDDEN}` : HIDDEN)).join("&")}`;
}

export function loggerOptions(level: Config["LOG_LEVEL"]) {
  const withHeaders = level === "debug" || level === "trace";
  return {
    level,
    serializers: {
      // Fastify's own request fields, the URL's query hidden, and at debug the headers.
      req: (req: FastifyRequest) => ({
        method: req.method,
        url: loggedUrl(req.url),
        host: req.host,
        // The address the rate limit charges (a forwarded value that is no address is the proxy's).
        remoteAddress: clientAddress(req),
        remotePort: req.socket?.remotePort,
        ...(withHeaders
          ? { headers: Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, SHOWN_HEADERS.has(name) ? value : HIDDEN])) }
          : {}),
      }),
    },
  };
}
