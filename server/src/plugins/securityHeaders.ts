import type { TLSSocket } from "node:tls";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/**
 * Security headers, and the request id, on every response. The headers never change, so
 * they are built once: helmet recomputes its policy strings per request, which cost more
 * than the model run on the single-prediction path. Strict-Transport-Security only over
 * this server's TLS (RFC 6797 §7.2: a browser ignores it over plain HTTP, and it would tell a
 * plain-HTTP deployment's clients something untrue; a proxy terminating TLS sends its own);
 * includeSubDomains with HSTS_INCLUDE_SUBDOMAINS. Cross-Origin-Opener-Policy too: browsers honour it
 * only from trustworthy origins, and at a plain-HTTP address they log an error for it on every
 * page (/docs, /redoc). The CSP holds for the docs pages as well, so it has no
 * upgrade-insecure-requests: at a plain-HTTP address that would send every script to https://.
 */

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "worker-src 'self' blob:",
].join("; ");

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "cross-origin-resource-policy": "same-origin",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "x-permitted-cross-domain-policies": "none",
});

export const securityHeadersPlugin = fp(async (app: FastifyInstance, opts: { hstsIncludeSubDomains: boolean }) => {
  const overTls: Readonly<Record<string, string>> = Object.freeze({
    ...SECURITY_HEADERS,
    "cross-origin-opener-policy": "same-origin",
    "strict-transport-security": opts.hstsIncludeSubDomains ? "max-age=31536000; includeSubDomains" : "max-age=31536000",
  });
  app.addHook("onRequest", (request, reply, done) => {
    // This server's own TLS, never X-Forwarded-Proto: a client sends that as easily as a proxy.
    const tls = (request.socket as Partial<TLSSocket>).encrypted === true;
    void reply.headers(tls ? overTls : SECURITY_HEADERS).header("x-request-id", request.id);
    done();
  });
});
