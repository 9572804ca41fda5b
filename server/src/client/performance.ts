import { type Buckets, delta, histogram, histogramQuantile, total } from "./histogram.js";
import type { Api } from "./http.js";
import { type Output, type Shape, sample } from "./shared.js";

export interface PerformanceOptions {
  requests: number;
  concurrency: number;
  /** Unset: the server's default model. */
  model: string | undefined;
  endpoint: "predict" | "batch";
}

/** The server's Prometheus text (GET /metrics, or --metrics-url). */
export type Scrape = () => Promise<string>;

// The client is the bottleneck beyond this share of its one core: its numbers then describe
// itself, not the server.
const CPU_SATURATED = 0.9;
const ROUTES = { predict: "/predict", batch: "/predict/batch" } as const;

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A progress bar on stderr: redrawn at most every 200 ms on a terminal, every tenth otherwise. */
function progressBar(io: Output, total: number) {
  const started = performance.now();
  let drawn = 0;
  return (done: number) => {
    const now = performance.now();
    if (done !== total && (io.tty ? now - drawn < 200 : done % Math.max(1, Math.floor(total / 10)) !== 0)) return;
    drawn = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    const rate = done / ((now - started) / 1000);
    io.err(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${rate.toFixed(0)} req/s${io.tty ? "" : "\n"}`);
  };
}

/** The request-duration histogram of the measured route, or why it could not be read. */
async function serverLatency(scrape: Scrape, route: string): Promise<Buckets | Error> {
  try {
    return histogram(await scrape(), "http_request_duration_seconds", { route, method: "POST" });
  } catch (error) {
    return error as Error;
  }
}

const ms = (seconds: number) => (seconds * 1000).toFixed(2);
// One row of the latency table: p50, p95, p99 and (the client's only) max, columns aligned.
const cells = (values: string[]) =>
  values
    .map((v, i) => `${["p50", "p95", "p99", "max"][i]} ${v}`.padEnd(12))
    .join("")
    .padEnd(48);

/**
 * `requests` POSTs, `concurrency` at a time, over the pool's keep-alive connections. Reports
 * the client's view (throughput, latency from send to answer read) beside the server's (its
 * own request-duration histogram, the delta of two scrapes around the run), and warns when
 * the client used its whole core: then the client, not the server, set the pace.
 */
export async function performanceRun(api: Api, shape: Shape, opts: PerformanceOptions, scrape: Scrape, io: Output): Promise<boolean> {
  const { requests, concurrency, model, endpoint } = opts;
  const route = ROUTES[endpoint];
  // Another offset each run, so a second run does not measure the cache's answers to the first.
  const offset = Math.floor(Math.random() * 1e6);
  const body = (i: number) =>
    endpoint === "batch" ? { samples: [sample(offset + i, shape), sample(offset + i + 1, shape)], model_type: model } : { features: sample(offset + i, shape), model_type: model };
  const before = await serverLatency(scrape, route);
  const latencies: number[] = [];
  const statuses = new Map<string, number>();
  const progress = progressBar(io, requests);
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const worker = async () => {
    while (next < requests) {
      const i = next++;
      const t0 = performance.now();
      let status: string;
      try {
        const res = await api.request("POST", route, body(i));
        // The status is all a load test needs: the body is read, not parsed.
        await res.body.dump();
        status = String(res.statusCode);
      } catch (error) {
        status = (error as { code?: string }).code ?? (error as Error).name;
      }
      latencies.push(performance.now() - t0);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      progress(latencies.length);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const cpuShare = (used.user + used.system) / 1000 / wallMs;
  const after = await serverLatency(scrape, route);
  latencies.sort((a, b) => a - b);
  const errors = [...statuses].filter(([s]) => s !== "200");

  let server: string;
  if (before instanceof Error || after instanceof Error) {
    server = `unavailable: ${(before instanceof Error ? before : (after as Error)).message} (see --metrics-url)`;
  } else {
    const run = delta(before, after);
    server = total(run)
      ? `${cells([0.5, 0.95, 0.99].map((q) => ms(histogramQuantile(q, run))))}server: POST ${route}, ${total(run)} requests, from its histogram (quantiles interpolated in buckets)`
      : `unavailable: no POST ${route} in its http_request_duration_seconds (see --metrics-url)`;
  }
  const client = cells([50, 95, 99, 100].map((p) => percentile(latencies, p).toFixed(2)));
  const lines = [
    `requests     ${requests} (concurrency ${concurrency}, ${endpoint}, model ${model ?? "the default"})`,
    `throughput   ${(requests / (wallMs / 1000)).toFixed(1)} req/s over ${(wallMs / 1000).toFixed(2)} s`,
    `latency ms   ${client}client: sent → answer read, ${latencies.length} answers`,
    `server ms    ${server}`,
    `client cpu   ${(cpuShare * 100).toFixed(0)} % of one core`,
  ];
  if (cpuShare > CPU_SATURATED) {
    lines.push(`warning      the client saturated its core: these numbers measure the client, not the server (run it elsewhere, or use wrk)`);
  }
  lines.push(`errors       ${errors.length ? errors.map(([s, n]) => `${s}: ${n}`).join(", ") : "none"}`);
  io.err("\n");
  io.out(`${lines.join("\n")}\n`);
  return errors.length === 0;
}
