import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { TLSSocket } from "node:tls";
import type { Log } from "../log.js";
import { authenticate, type RequestHeaderConfig } from "./authn.js";
import type { Attributes, Decision } from "./authz.js";

/**
 * The HTTPS listener the kube-aggregator proxies custom.metrics.k8s.io to. Every request must
 * come from the front proxy (its client certificate, verified here against the requestheader
 * CA), name a user the API server then authorizes, and only then reach the handlers. The
 * serving certificate and the CA are re-read while running: a renewed Secret or a rotated
 * front-proxy CA takes effect without a restart.
 */

export interface Answer {
  status: number;
  body: unknown;
}

export interface Routed {
  attributes: Attributes;
  answer: () => Answer;
}

export interface ApiServerDeps {
  /** The handlers: what a path asks for (to authorize it) and its answer. */
  route: (url: URL) => Routed;
  authorize: (who: { user: string; groups: string[]; extra: Record<string, string[]> }, what: Attributes) => Promise<Decision>;
  /** The front proxy's settings, read from the API server each time TLS material is reloaded. */
  authConfig: () => Promise<RequestHeaderConfig>;
  certDir: string;
  /** Called once per request with its status code (a bounded label). */
  onRequest?: (code: number) => void;
  log: Pick<Log, "debug" | "info" | "warn">;
}

export const status = (code: number, reason: string, message: string): Answer => ({
  status: code,
  body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code },
});

export class MetricsApiServer {
  readonly server: Server;
  private auth: RequestHeaderConfig | undefined;
  private fingerprint = "";

  constructor(private readonly deps: ApiServerDeps) {
    // No certificate until load(): listen() loads first, so no handshake happens without one.
    this.server = createServer({ requestCert: true, rejectUnauthorized: false }, (req, res) => {
      void this.serve(req.url ?? "/", req.method ?? "GET", req.socket as TLSSocket, req.headersDistinct).then((answer) => {
        deps.onRequest?.(answer.status);
        deps.log.debug("custom metrics API request", { method: req.method, path: req.url, user: req.headersDistinct["x-remote-user"]?.[0], status: answer.status });
        const body = JSON.stringify(answer.body);
        res.writeHead(answer.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
      });
    });
  }

  /** Reads the certificate, key and front-proxy settings; swaps the TLS context when any changed. Answers whether it did. */
  async load(): Promise<boolean> {
    const [cert, key, auth] = await Promise.all([
      readFile(`${this.deps.certDir}/tls.crt`, "utf8"),
      readFile(`${this.deps.certDir}/tls.key`, "utf8"),
      this.deps.authConfig(),
    ]);
    const fingerprint = createHash("sha256").update(JSON.stringify([cert, key, auth])).digest("hex");
    if (fingerprint === this.fingerprint) return false;
    // setSecureContext throws on a bad pair: the previous context keeps serving.
    this.server.setSecureContext({ cert, key, ca: auth.clientCA });
    this.auth = auth;
    this.fingerprint = fingerprint;
    return true;
  }

  async listen(port: number, host?: string): Promise<void> {
    await this.load();
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serve(rawUrl: string, method: string, socket: TLSSocket, headers: Record<string, string[] | undefined>): Promise<Answer> {
    const auth = this.auth;
    if (!auth) return status(503, "ServiceUnavailable", "not started");
    const peer = socket.getPeerCertificate();
    const who = authenticate({ authorized: socket.authorized, commonName: typeof peer?.subject?.CN === "string" ? peer.subject.CN : undefined }, headers, auth);
    if ("refused" in who) return status(401, "Unauthorized", who.refused);
    if (method !== "GET") return status(405, "MethodNotAllowed", `${method} is not supported: this API is read-only`);
    let routed: Routed;
    try {
      routed = this.deps.route(new URL(rawUrl, "https://localhost"));
    } catch {
      return status(400, "BadRequest", "malformed request URL");
    }
    let decision: Decision;
    try {
      decision = await this.deps.authorize(who, routed.attributes);
    } catch (error) {
      this.deps.log.warn(`custom metrics API: SubjectAccessReview failed: ${(error as Error).message}`);
      return status(503, "ServiceUnavailable", "cannot authorize the request now");
    }
    if (!decision.allowed) return status(403, "Forbidden", `user "${who.user}" cannot get ${describe(routed.attributes)}${decision.reason ? `: ${decision.reason}` : ""}`);
    try {
      return routed.answer();
    } catch (error) {
      this.deps.log.warn(`custom metrics API: handler failed: ${(error as Error).message}`);
      return status(500, "InternalError", "internal error");
    }
  }
}

function describe(what: Attributes): string {
  if ("nonResource" in what) return what.nonResource.path;
  const r = what.resource;
  return `${r.resource}${r.subresource ? `/${r.subresource}` : ""} in API group "${r.group}"${r.namespace ? ` in the namespace "${r.namespace}"` : ""}`;
}
