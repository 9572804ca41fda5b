import { z } from "zod";
import type { WaveletModel } from "../api/waveletmodel.js";
import { BodyTooLarge, readBody } from "../kube/body.js";
import { type Fetch, fetchTrusting } from "../kube/https.js";
import type { AnalysisVerdict } from "./bluegreen.js";

/**
 * Analysis before promotion. One run checks the preview colour through its Service: it must
 * be healthy and serve the expected bundle digest; answer the bundle's golden cases (its
 * vectors/parity.json, which the server serves at GET /models/golden) with the predictions
 * the pipeline recorded, within the spec's error-rate and p99 bounds; and each of its pods'
 * /metrics (on the metrics port) must exist and count no server errors. The active colour
 * gets the same requests, for the latencies the messages compare against.
 *
 * Runs happen off the reconcile workers (AnalysisRuns): a pass starts one and returns; the
 * run's end queues the model again, and the next pass records its verdict in status.
 */

export interface AnalysisTargets {
  preview: string;
  active: string;
  /** The /metrics URL of each preview pod (their metrics port: never behind the model's Services). */
  previewMetrics: string[];
  /** The server's API key, when the spec gives one (server.apiKeySecretRef). */
  apiKey?: string;
  /** The key guarding the pods' /metrics, when the spec gives one (server.metricsApiKeySecretRef). */
  metricsKey?: string;
  /**
   * spec.tls: the PEM certificates an https:// colour's certificate must chain to (reconcile/tls.ts
   * trustAnchor). The pods' /metrics stays plain HTTP (the server's metrics listener has no TLS).
   */
  ca?: string;
}

export type Analyzer = (wm: WaveletModel, targets: AnalysisTargets) => Promise<AnalysisVerdict>;

// JSON carries the float32 answers exactly; other CPUs' ONNX kernels may differ in the last bits.
const ABS_TOLERANCE = 1e-5;
const REL_TOLERANCE = 1e-4;

/**
 * What the operator reads of a server's answers, at most: a tenant's image or bundle decides
 * what its pods answer, and one operator serves every model of the cluster, so no answer may
 * cost it more than this (nor more time than a request's timeout, or the run's time box).
 * The golden cases are the bundle's parity vectors (190–660 KB for the default bundles).
 */
export const BODY_LIMITS = { health: 64 * 1024, golden: 8 * 1024 * 1024, predict: 64 * 1024, metrics: 8 * 1024 * 1024 } as const;

/** The body as JSON; one that is not says what came instead (status, length, its start). */
async function json(res: Response, limit: number): Promise<unknown> {
  const text = await readBody(res, limit);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${new URL(res.url).pathname} answered ${res.status} with ${Buffer.byteLength(text)} bytes that are not JSON${text ? ` (${JSON.stringify(text.slice(0, 60))}…)` : ""}`);
  }
}

function parsedOr<T>(text: string, otherwise: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return otherwise;
  }
}

// A computed-features bundle's case is the prices (or daily bars, as columns) it computes its
// features from; an imported (named-features) bundle's is the feature vector itself. Each is
// sent to /predict as it is.
const expected = z.record(z.string(), z.number());
const goldenCase = z.union([
  // First: bars would be sent as bars were their closes listed beside them as prices.
  z.object({ name: z.string(), bars: z.record(z.string(), z.array(z.number())), expected }),
  z.object({ name: z.string(), prices: z.array(z.number()), expected }),
  z.object({ name: z.string(), features: z.array(z.number()), expected }),
]);
const goldenAnswer = z.object({ cases: z.array(goldenCase) });
type GoldenCase = z.infer<typeof goldenCase>;
/** What a golden case sends to /predict: its prices, bars or features. */
const sent = ({ name: _, expected: _expected, ...input }: GoldenCase) => input;

interface Probe {
  errors: number;
  p99: number;
  failures: string[];
  /** Answers that differ from the golden expectation. */
  wrong: string[];
}

/** How long a run, and each request of it, may take; `box` aborts when the run's time is up. `send`: fetch, or over HTTPS with the model's trust. */
interface Limits {
  reachWithinMs: number;
  requestTimeoutMs: number;
  box: AbortSignal;
  send: Fetch;
}

const within = (limits: Limits) => AbortSignal.any([limits.box, AbortSignal.timeout(limits.requestTimeoutMs)]);

async function probe(base: string, requests: { c: GoldenCase; model: string }[], apiKey: string | undefined, check: boolean, limits: Limits): Promise<Probe> {
  const latencies: number[] = [];
  const failures: string[] = [];
  const wrong: string[] = [];
  for (const { c, model } of requests) {
    limits.box.throwIfAborted();
    const started = performance.now();
    try {
      const res = await limits.send(`${base}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(apiKey ? { "x-api-key": apiKey } : {}) },
        body: JSON.stringify({ ...sent(c), model_type: model }),
        signal: within(limits),
      });
      const text = await readBody(res, BODY_LIMITS.predict);
      if (res.status !== 200) failures.push(`HTTP ${res.status}`);
      else if (check) {
        const expected = c.expected[model]!;
        const got = parsedOr<{ prediction?: unknown }>(text, {}).prediction;
        if (typeof got !== "number" || Math.abs(got - expected) > ABS_TOLERANCE + REL_TOLERANCE * Math.abs(expected)) {
          wrong.push(`${model} on ${c.name}: ${String(got)}, expected ${expected}`);
        }
      }
    } catch (error) {
      if (limits.box.aborted) throw limits.box.reason;
      failures.push(error instanceof BodyTooLarge ? error.message : (error as Error).name);
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
 * The preview's /health, as status and JSON document. A preview reported ready is ready by its
 * pods; its Service's endpoints and every node's forwarding rules follow a moment later. Until
 * then a connection is refused, or reaches whatever else answers on the way (in the kind tier,
 * the node's egress proxy answered 404 with no body; a mesh sidecar answers 503): neither is a
 * verdict on the bundle. So it asks again, each time on a fresh connection (a kept-alive one
 * stays with wherever it first went), until an answer is JSON, as the server's always is, or
 * `reachWithinMs` is up.
 */
async function health(url: string, headers: Record<string, string>, limits: Limits): Promise<{ status: number; body: unknown }> {
  const deadline = Date.now() + limits.reachWithinMs;
  for (let wait = 100; ; wait = Math.min(2 * wait, 2000)) {
    try {
      const res = await limits.send(`${url}/health`, { signal: within(limits), headers: { ...headers, connection: "close" } });
      return { status: res.status, body: await json(res, BODY_LIMITS.health) };
    } catch (error) {
      if (limits.box.aborted || error instanceof BodyTooLarge || Date.now() + wait > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/**
 * `reachWithinMs`: how long the preview may take to answer its /health as itself (health());
 * `requestTimeoutMs`: each request, its answer read to the end; `runWithinMs`: the whole
 * run's time box, whatever the preview does (a run that exceeds it fails).
 */
export const httpAnalyzer = ({ reachWithinMs = 30_000, requestTimeoutMs = 5000, runWithinMs = 300_000 } = {}): Analyzer => async (wm, targets) => {
  const box = AbortSignal.timeout(runWithinMs);
  const https = targets.ca ? fetchTrusting(targets.ca) : undefined;
  // Each colour by its own scheme: a rollout that turns TLS on (or off) has one of each.
  const send: Fetch = (url, init) => (https && url.startsWith("https:") ? https.fetch(url, init) : fetch(url, init));
  try {
    return await analyze(wm, targets, { reachWithinMs, requestTimeoutMs, box, send });
  } catch (error) {
    if (box.aborted) return { result: "fail", message: `analysis did not finish within ${runWithinMs / 1000}s` };
    throw error;
  } finally {
    https?.close();
  }
};

async function analyze(wm: WaveletModel, targets: AnalysisTargets, limits: Limits): Promise<AnalysisVerdict> {
  const settings = wm.spec.rollout.analysis;
  const { box } = limits;
  const fail = (message: string): AnalysisVerdict => ({ result: "fail", message });
  const auth: Record<string, string> = targets.apiKey ? { "x-api-key": targets.apiKey } : {};
  let cases: GoldenCase[];
  try {
    const { status, body } = (await health(targets.preview, auth, limits)) as { status: number; body: { bundle?: { digest?: string } } | null };
    if (status !== 200) return fail(`preview /health answered ${status}`);
    if (body?.bundle?.digest !== wm.spec.bundle.digest) return fail(`preview serves ${String(body?.bundle?.digest).slice(0, 80)}, not ${wm.spec.bundle.digest}`);
    const golden = await limits.send(`${targets.preview}/models/golden`, { signal: within(limits), headers: auth });
    if (golden.status !== 200) return fail(`preview /models/golden answered ${golden.status}`);
    const parsed = goldenAnswer.safeParse(await json(golden, BODY_LIMITS.golden));
    if (!parsed.success) return fail("preview /models/golden is not a list of golden cases");
    cases = parsed.data.cases;
  } catch (error) {
    if (box.aborted) throw error;
    return fail(`preview unreachable: ${(error as Error).message}`);
  }
  const requests = goldenRequests(cases, settings.requests);
  if (!requests.length) return fail("the bundle has no golden cases for the served models");
  const [preview, active] = await Promise.all([probe(targets.preview, requests, targets.apiKey, true, limits), probe(targets.active, requests, targets.apiKey, false, limits)]);
  const rate = preview.errors / requests.length;
  if (rate > settings.maxErrorRate) {
    return fail(`preview error rate ${rate.toFixed(3)} > ${settings.maxErrorRate} (${preview.failures.slice(0, 3).join(", ")}); active had ${active.errors}`);
  }
  if (preview.wrong.length) return fail(`preview answered ${preview.wrong.length} golden requests wrongly: ${preview.wrong.slice(0, 2).join("; ")}`);
  if (preview.p99 > settings.maxP99LatencyMs) return fail(`preview p99 ${preview.p99.toFixed(1)} ms > ${settings.maxP99LatencyMs} ms (active ${active.p99.toFixed(1)} ms)`);
  // Every preview pod's own count of server errors (the Service would show one pod's).
  if (!targets.previewMetrics.length) return fail("no preview pod to read /metrics from");
  let serverErrors = 0;
  for (const url of targets.previewMetrics) {
    try {
      // fetch, not send: the metrics port is plain HTTP under spec.tls too.
      const text = await readBody(await fetch(url, { signal: within(limits), headers: targets.metricsKey ? { "x-api-key": targets.metricsKey } : {} }), BODY_LIMITS.metrics);
      const counts = [...text.matchAll(/^http_requests_total\{([^}]*)\} (\d+)/gm)];
      if (!counts.length) return fail(`preview ${url} has no http_requests_total: cannot tell its error count`);
      serverErrors += counts.filter((m) => /status="5\d\d"/.test(m[1]!)).reduce((sum, m) => sum + Number(m[2]), 0);
    } catch (error) {
      if (box.aborted) throw error;
      return fail(`preview ${url} unreachable: ${(error as Error).message}`);
    }
  }
  if (serverErrors > 0) return fail(`preview metrics report ${serverErrors} server errors`);
  return {
    result: "pass",
    message: `preview serves ${wm.spec.bundle.digest.slice(0, 19)}…; ${requests.length} golden requests answered as recorded, p99 ${preview.p99.toFixed(1)} ms (active ${active.p99.toFixed(1)} ms)`,
  };
}

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
