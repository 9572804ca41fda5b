import { Agent, request } from "node:https";
import { Readable } from "node:stream";

/** What analysis asks of fetch(); the global one is such a function. */
export type Fetch = (url: string, init?: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<Response>;

// Statuses whose Response may carry no body (the constructor refuses a stream for them).
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * fetch() over HTTPS to a model's pods, trusting only `ca` (PEM: any certificate in it is an
 * anchor, a leaf or an intermediate too, so a Secret's own tls.crt works without its root).
 * The chain is verified; the names in the certificate are not matched against the host: the
 * operator connects to its own Service's address, and a model's certificate names the public
 * hostnames its clients use, not that address. Pinning the trust to the model's own Secret is
 * what stands in for the name check. node:https because Node's fetch takes a CA only through
 * undici's Agent, which Node does not expose. close() ends the kept-alive connections.
 */
export function fetchTrusting(ca: string): { fetch: Fetch; close(): void } {
  const agent = new Agent({ keepAlive: true, ca, allowPartialTrustChain: true, checkServerIdentity: () => undefined });
  const send: Fetch = (url, init = {}) =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      const req = request(target, { method: init.method ?? "GET", headers: init.headers, signal: init.signal, agent }, (res) => {
        try {
          const status = res.statusCode ?? 0;
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) for (const v of [value ?? []].flat()) headers.append(name, v);
          const body = NULL_BODY.has(status) ? (res.resume(), null) : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
          const response = new Response(body, { status, headers });
          // As fetch's: messages name the path asked for.
          Object.defineProperty(response, "url", { value: target.href });
          resolve(response);
        } catch (error) {
          // A status no Response can have (a hostile pod's 999).
          res.destroy();
          reject(error as Error);
        }
      });
      req.once("error", reject);
      req.end(init.body);
    });
  return { fetch: send, close: () => agent.destroy() };
}
