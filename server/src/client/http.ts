import { type Dispatcher, Pool } from "undici";

export interface Answer {
  status: number;
  json: unknown;
}

/**
 * The API at one URL over a pool of keep-alive connections (undici), shared by every request
 * of a run: a new connection, or the global fetch's per-request overhead, would be measured
 * as server latency. One request per connection at a time (no pipelining), as browsers and
 * load balancers send them.
 */
export class Api {
  readonly url: string;
  private readonly pool: Pool;
  private readonly base: string;

  constructor(
    url: string,
    private readonly headers: Record<string, string>,
    connections: number,
  ) {
    const parsed = new URL(url);
    this.url = url.replace(/\/$/, "");
    // A path in the URL (behind a proxy, say) prefixes every route.
    this.base = parsed.pathname.replace(/\/$/, "");
    this.pool = new Pool(parsed.origin, { connections, pipelining: 1 });
  }

  /** The raw answer; its body must be read or dumped, or the connection stays taken. */
  request(method: "GET" | "POST", path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Dispatcher.ResponseData> {
    return this.pool.request({
      method,
      path: this.base + path || "/",
      headers: { ...this.headers, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  async text(method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const res = await this.request(method, path, body);
    return { status: res.statusCode, text: await res.body.text() };
  }

  /** Status and body: parsed JSON, or the text when it is not JSON (an error page, say). */
  async call(method: "GET" | "POST", path: string, body?: unknown): Promise<Answer> {
    const { status, text } = await this.text(method, path, body);
    try {
      return { status, json: JSON.parse(text) };
    } catch {
      return { status, json: text };
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
