/**
 * What the custom metrics API needs of a server pod's /metrics: its prediction requests so far
 * and its queued rows, read from the Prometheus text format (0.0.4) as prom-client writes it.
 * A pod's image is its tenant's, so the body is untrusted: only the two families read are
 * parsed fully; any other sample line need only start with a valid metric name, which is
 * enough to tell an exposition from an error page without paying for labels nobody reads.
 */

/** The routes that count as requests: probes and scrapes would make an idle pod look busy. */
export const PREDICTION_ROUTES: ReadonlySet<string> = new Set(["/predict", "/predict/batch", "/predict/stream"]);

const REQUESTS = "http_requests_total";
const QUEUED_ROWS = "model_queued_rows";

export interface ServerSample {
  /** http_requests_total summed over the prediction routes (any method and status). */
  requests: number;
  /** model_queued_rows; absent when the server does not export it (an older image) or it is not a count. */
  queuedRows?: number;
}

/** The body is not an exposition the operator can read: the pod counts as not scraped. */
export class ExpositionError extends Error {
  override name = "ExpositionError";
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const FAMILY_COMMENT = /^#[ \t]+(?:HELP|TYPE)[ \t]+([^ \t]+)/;
const NUMBER = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;
const TIMESTAMP = /^-?\d+$/;

export function readServerSample(text: string): ServerSample {
  // A family with no series yet (no request served) still has its HELP and TYPE lines.
  let present = false;
  let requests = 0;
  let queued: number | undefined;
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/^[ \t]+/, "");
    if (line === "") continue;
    if (line.startsWith("#")) {
      if (FAMILY_COMMENT.exec(line)?.[1] === REQUESTS) present = true;
      continue;
    }
    const name = /^[^{ \t]*/.exec(line)![0];
    if (!METRIC_NAME.test(name)) throw malformed(n, "does not start with a metric name");
    if (name !== REQUESTS && name !== QUEUED_ROWS) continue;
    const after = line.slice(name.length);
    // Blanks may separate the name from its labels.
    const labelled = after.replace(/^[ \t]+/, "");
    const { route, rest } = labelled.startsWith("{") ? readLabels(labelled, n) : { rest: after };
    const value = readValue(rest, n);
    if (name === REQUESTS) {
      present = true;
      if (route === undefined || !PREDICTION_ROUTES.has(route)) continue;
      if (!(Number.isFinite(value) && value >= 0)) throw malformed(n, `counts ${value} requests`);
      requests += value;
    } else {
      queued = (queued ?? 0) + value;
    }
  }
  if (!present) throw new ExpositionError(`no ${REQUESTS} in the answer`);
  // NaN (prom-client writes "Nan") or a negative count is no queue length.
  return queued !== undefined && Number.isFinite(queued) && queued >= 0 ? { requests, queuedRows: queued } : { requests };
}

const malformed = (n: number, why: string) => new ExpositionError(`line ${n + 1} ${why}`);

/** The `{name="value",...}` that `line` starts with, with the escapes of the format (\\, \", \n); only `route` is kept. */
function readLabels(line: string, n: number): { route?: string; rest: string } {
  let route: string | undefined;
  let i = 1;
  const blanks = () => {
    while (line[i] === " " || line[i] === "\t") i++;
  };
  blanks();
  while (line[i] !== "}") {
    LABEL_NAME.lastIndex = i;
    const label = LABEL_NAME.exec(line)?.[0];
    if (!label) throw malformed(n, "has a malformed label name");
    i += label.length;
    blanks();
    if (line[i++] !== "=") throw malformed(n, `has no "=" after label ${label}`);
    blanks();
    if (line[i++] !== '"') throw malformed(n, `has an unquoted value for label ${label}`);
    let value = "";
    for (;;) {
      const c = line[i++];
      if (c === undefined) throw malformed(n, `ends inside the value of label ${label}`);
      if (c === '"') break;
      if (c !== "\\") {
        value += c;
        continue;
      }
      const escaped = line[i++];
      if (escaped === "n") value += "\n";
      else if (escaped === "\\" || escaped === '"') value += escaped;
      else throw malformed(n, `has an invalid escape in the value of label ${label}`);
    }
    if (label === "route") route = value;
    blanks();
    // The format allows a comma before the closing brace.
    if (line[i] === ",") {
      i++;
      blanks();
    } else if (line[i] !== "}") throw malformed(n, `has no "," or "}" after label ${label}`);
  }
  return { route, rest: line.slice(i + 1) };
}

/** The sample's value, after which only a timestamp (ignored: the scrape's time is used) may come. */
function readValue(rest: string, n: number): number {
  const fields = rest.split(/[ \t]+/).filter(Boolean);
  const [value, timestamp, ...more] = fields;
  if (value === undefined || !NUMBER.test(value)) throw malformed(n, "has no number for its value");
  if (more.length || (timestamp !== undefined && !TIMESTAMP.test(timestamp))) throw malformed(n, "has more than a value and a timestamp");
  const word = value.replace(/^[+-]/, "").toLowerCase();
  if (word === "nan") return NaN;
  if (word.startsWith("inf")) return value.startsWith("-") ? -Infinity : Infinity;
  return Number(value);
}
