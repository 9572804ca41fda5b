import type { WaveletModel } from "../api/waveletmodel.js";
import type { AnalysisVerdict } from "./bluegreen.js";

/**
 * Analysis before promotion. One run checks the preview colour through its Service: it must
 * be healthy and serve the expected bundle digest; answer the bundle's golden cases (its
 * vectors/parity.json, which the server serves at GET /models/golden) with the predictions
 * the pipeline recorded, within the spec's error-rate and p99 bounds; and its own /metrics
 * must exist and count no server errors. The active colour gets the same requests, for the
 * latencies the messages compare against.
 *
 * Runs happen off the reconcile workers (AnalysisRuns): a pass starts one and returns; the
 * run's end queues the model again, and the next pass records its verdict in status.
 */

export interface AnalysisTargets {
  preview: string;
  active: string;
  /** The server's API key, when the spec gives one (server.apiKeySecretRef). */
  apiKey?: string;
}

export type Analyzer = (wm: WaveletModel, targets: AnalysisTargets) => Promise<AnalysisVerdict>;

const TIMEOUT_MS = 5000;
// JSON carries the float32 answers exactly; other CPUs' ONNX kernels may differ in the last bits.
const ABS_TOLERANCE = 1e-5;
const REL_TOLERANCE = 1e-4;

interface GoldenCase {
  name: string;
  prices: number[];
  expected: Record<string, number>;
}

interface Probe {
  errors: number;
  p99: number;
  failures: string[];
  /** Answers that differ from the golden expectation. */
  wrong: string[];
}

async function probe(base: string, requests: { c: GoldenCase; model: string }[], apiKey: string | undefined, check: boolean): Promise<Probe> {
  const latencies: number[] = [];
  const failures: string[] = [];
  const wrong: string[] = [];
  for (const { c, model } of requests) {
    const started = performance.now();
    try {
      const res = await fetch(`${base}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(apiKey ? { "x-api-key": apiKey } : {}) },
        body: JSON.stringify({ prices: c.prices, model_type: model }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      const body = (await res.json().catch(() => ({}))) as { prediction?: unknown };
      if (res.status !== 200) failures.push(`HTTP ${res.status}`);
      else if (check) {
        const expected = c.expected[model]!;
        const got = body.prediction;
        if (typeof got !== "number" || Math.abs(got - expected) > ABS_TOLERANCE + REL_TOLERANCE * Math.abs(expected)) {
          wrong.push(`${model} on ${c.name}: ${String(got)}, expected ${expected}`);
        }
      }
    } catch (error) {
      failures.push((error as Error).name);
    }
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  return { errors: failures.length, p99: latencies[Math.min(latencies.length - 1, Math.floor(0.99 * latencies.length))] ?? 0, failures, wrong };
}

/** `n` requests cycling through every case and served model, so each pair is sent when n allows. */
function goldenRequests(cases: GoldenCase[], n: number): { c: GoldenCase; model: string }[] {
  const pairs = cases.flatMap((c) => Object.keys(c.expected).map((model) => ({ c, model })));
  return pairs.length ? Array.from({ length: n }, (_, i) => pairs[i % pairs.length]!) : [];
}

/**
 * The first answer to `get()`, retrying while it cannot connect (an answer of any status
 * ends it) for up to `withinMs`. A preview reported ready is ready by its pods; its Service's
 * endpoints and every node's forwarding rules follow a moment later (they failed a run in the
 * kind tier), and no connection is not a verdict on the bundle.
 */
async function reach(get: () => Promise<Response>, withinMs: number): Promise<Response> {
  const deadline = Date.now() + withinMs;
  for (let wait = 100; ; wait = Math.min(2 * wait, 2000)) {
    try {
      return await get();
    } catch (error) {
      if (Date.now() + wait > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** `reachWithinMs`: how long the preview may take to accept connections (reach()). */
export const httpAnalyzer = ({ reachWithinMs = 30_000 } = {}): Analyzer => async (wm, targets) => {
  const settings = wm.spec.rollout.analysis;
  const fail = (message: string): AnalysisVerdict => ({ result: "fail", message });
  const get = (path: string) => fetch(`${targets.preview}${path}`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  let cases: GoldenCase[];
  try {
    const health = await reach(() => get("/health"), reachWithinMs);
    const body = (await health.json()) as { bundle?: { digest?: string } };
    if (health.status !== 200) return fail(`preview /health answered ${health.status}`);
    if (body.bundle?.digest !== wm.spec.bundle.digest) return fail(`preview serves ${body.bundle?.digest}, not ${wm.spec.bundle.digest}`);
    const golden = await get("/models/golden");
    if (golden.status !== 200) return fail(`preview /models/golden answered ${golden.status}`);
    cases = ((await golden.json()) as { cases: GoldenCase[] }).cases;
  } catch (error) {
    return fail(`preview unreachable: ${(error as Error).message}`);
  }
  const requests = goldenRequests(cases, settings.requests);
  if (!requests.length) return fail("the bundle has no golden cases for the served models");
  const [preview, active] = await Promise.all([probe(targets.preview, requests, targets.apiKey, true), probe(targets.active, requests, targets.apiKey, false)]);
  const rate = preview.errors / requests.length;
  if (rate > settings.maxErrorRate) {
    return fail(`preview error rate ${rate.toFixed(3)} > ${settings.maxErrorRate} (${preview.failures.slice(0, 3).join(", ")}); active had ${active.errors}`);
  }
  if (preview.wrong.length) return fail(`preview answered ${preview.wrong.length} golden requests wrongly: ${preview.wrong.slice(0, 2).join("; ")}`);
  if (preview.p99 > settings.maxP99LatencyMs) return fail(`preview p99 ${preview.p99.toFixed(1)} ms > ${settings.maxP99LatencyMs} ms (active ${active.p99.toFixed(1)} ms)`);
  try {
    const text = await (await get("/metrics")).text();
    const counts = [...text.matchAll(/^http_requests_total\{([^}]*)\} (\d+)/gm)];
    if (!counts.length) return fail("preview /metrics has no http_requests_total: cannot tell its error count");
    const serverErrors = counts.filter((m) => /status="5\d\d"/.test(m[1]!)).reduce((sum, m) => sum + Number(m[2]), 0);
    if (serverErrors > 0) return fail(`preview metrics report ${serverErrors} server errors`);
  } catch (error) {
    return fail(`preview /metrics unreachable: ${(error as Error).message}`);
  }
  return {
    result: "pass",
    message: `preview serves ${wm.spec.bundle.digest.slice(0, 19)}…; ${requests.length} golden requests answered as recorded, p99 ${preview.p99.toFixed(1)} ms (active ${active.p99.toFixed(1)} ms)`,
  };
};

/**
 * Analysis runs, one at a time per model, off the reconcile workers. A run is named by the
 * rollout's template hash and its number (status counts the runs recorded), so each verdict
 * is taken by exactly one pass: the one that records it moves the count on.
 */
export class AnalysisRuns {
  private readonly runs = new Map<string, { id: string; verdict?: AnalysisVerdict }>();

  constructor(
    private readonly analyzer: Analyzer,
    private readonly enqueue: (key: string) => void,
  ) {}

  /** Run `id`'s verdict once it has finished; starts it (and answers undefined) if it has not begun. */
  poll(key: string, id: string, wm: WaveletModel, targets: () => Promise<AnalysisTargets>): AnalysisVerdict | undefined {
    const run = this.runs.get(key);
    if (run?.id === id) return run.verdict;
    const started: { id: string; verdict?: AnalysisVerdict } = { id };
    this.runs.set(key, started);
    void targets()
      .then((t) => this.analyzer(wm, t))
      .catch((error: unknown): AnalysisVerdict => ({ result: "fail", message: `analysis could not run: ${(error as Error)?.message ?? error}` }))
      .then((verdict) => {
        started.verdict = verdict;
        if (this.runs.get(key) === started) this.enqueue(key);
      });
    return undefined;
  }

  forget(key: string): void {
    this.runs.delete(key);
  }
}
