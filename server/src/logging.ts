import { writeSync } from "node:fs";
import type { Readable } from "node:stream";
import type { FastifyRequest } from "fastify";
import type { Config } from "./config.js";
import { clientAddress } from "./proxies.js";

/**
 * The process's logger settings (its lines go through LogOutput, below). Request lines carry
 * the method, the URL with every query value hidden (a client may put a key in ?api_key=; no
 * route takes a query) and the peer. At debug and trace they carry the request headers too,
 * to diagnose clients and proxies: the values of the headers known to hold no credential, and
 * only the names of the others, since proxies and gateways add tokens under names of their
 * own (X-Forwarded-Access-Token, X-Amzn-Oidc-Accesstoken, Cf-Access-Jwt-Assertion, ...),
 * which no deny-list keeps up with.
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

// Lines that the reader has not taken yet, at most: about four pipes' worth.
const PENDING_BYTES = 256 * 1024;
const RETRY_MS = 50;
const NEWLINE = 0x0a;

const bytes = (data: string | Buffer) => (typeof data === "string" ? Buffer.from(data) : data);

/**
 * stdout or stderr, written without ever waiting: logging must not stop serving or shutting
 * down. The lines of one turn of the event loop go in two writes at most. What the reader
 * does not take (a full pipe: it is slow or stopped reading) waits in a bounded buffer,
 * retried every RETRY_MS; what does not fit is dropped, and so is all output once the reader
 * has gone (EPIPE), each line counted (log_lines_dropped_total). pino's own destination would
 * instead retry a failed write, and at exit flush synchronously, forever: the process
 * wedged, deaf to SIGTERM, when its reader went away.
 */
export class LogOutput {
  private pending: (string | Buffer)[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  /** The reader took less than was written: lines wait for the retry timer. */
  private behind = false;
  private timer: NodeJS.Timeout | undefined;
  private gone = false;
  private onWritten: (() => void)[] = [];
  dropped = 0;

  constructor(private readonly fd: 1 | 2) {
    // Opening the stream makes a pipe or socket behind it non-blocking (libuv), so that a
    // write to a full one fails with EAGAIN instead of waiting; files and terminals are
    // written as they are. Only this process may share that open pipe: a child given it as
    // its stdio makes it blocking again (libuv), for every process (workers get their own).
    void (fd === 1 ? process.stdout : process.stderr);
    // What still waits gets one last attempt.
    process.once("exit", () => this.flush());
  }

  /**
   * pino's destination interface: one or more whole lines. False while the reader is behind;
   * `relayed` lines are then kept whatever their size (relay() sends no more until then).
   */
  write(data: string | Buffer, relayed = false): boolean {
    const size = Buffer.byteLength(data);
    if (this.gone || (!relayed && this.pendingBytes + size > PENDING_BYTES)) {
      this.drop(bytes(data));
    } else {
      this.pending.push(data);
      this.pendingBytes += size;
      if (!this.scheduled && !this.behind) {
        // The first lines of a turn go at once (before whatever the process does next, such
        // as telling the primary it listens), the rest of the turn's together after it.
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
        this.flush();
      }
    }
    return !this.behind && !this.gone;
  }

  /** Write what waits, as far as the fd takes it now. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending.length) return;
    const data = this.pending.length === 1 ? bytes(this.pending[0]!) : Buffer.concat(this.pending.map(bytes));
    this.pending = [];
    this.pendingBytes = 0;
    let written = 0;
    try {
      written = writeSync(this.fd, data);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EAGAIN") {
        // The reader has gone for good (EPIPE), or this write cannot be done: nothing waits.
        this.gone ||= code === "EPIPE";
        this.drop(data);
        return;
      }
    }
    this.behind = written < data.length;
    if (this.behind) {
      this.pending = [data.subarray(written)];
      this.pendingBytes = data.length - written;
      this.timer = setTimeout(() => this.flush(), RETRY_MS).unref();
      return;
    }
    const resume = this.onWritten;
    this.onWritten = [];
    for (const f of resume) f();
  }

  private drop(chunk: Buffer): void {
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) this.dropped++;
  }

  /**
   * Pass a worker's output on, whole lines at a time. While the reader is behind, the worker's
   * pipe is not read: the worker keeps its own lines, and drops and counts them if need be
   * (its count is in the metrics the primary serves; the primary's own is not). Once the
   * reader has gone, the pipe is never read again.
   */
  relay(from: Readable): void {
    let partial: Buffer = Buffer.alloc(0);
    from.on("data", (chunk: Buffer) => {
      const data = partial.length ? Buffer.concat([partial, chunk]) : chunk;
      const end = data.lastIndexOf(NEWLINE) + 1;
      partial = data.subarray(end);
      if (end === 0 || this.write(data.subarray(0, end), true)) return;
      from.pause();
      this.onWritten.push(() => from.resume());
    });
    // A worker that died mid-line (a crash) still gets its last words out.
    from.on("end", () => partial.length && this.write(Buffer.concat([partial, Buffer.from("\n")]), true));
  }
}

const outputs = new Map<1 | 2, LogOutput>();

/** The process's one writer to stdout (1) or stderr (2). */
export function logOutput(fd: 1 | 2): LogOutput {
  let output = outputs.get(fd);
  if (!output) outputs.set(fd, (output = new LogOutput(fd)));
  return output;
}

/** Log lines this process has dropped so far. */
export const droppedLogLines = () => [...outputs.values()].reduce((sum, output) => sum + output.dropped, 0);

export function loggerOptions(level: Config["LOG_LEVEL"]) {
  const withHeaders = level === "debug" || level === "trace";
  return {
    level,
    stream: logOutput(1),
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
