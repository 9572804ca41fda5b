import type { WaveletModel } from "../api/waveletmodel.js";
import type { AnalysisVerdict } from "./bluegreen.js";

/**
 * Analysis before promotion: golden requests through the preview Service, compared with the
 * active colour, and the preview pods' own health and metrics. The preview must serve the
 * expected bundle digest, answer every golden request within the error-rate and p99 bounds
 * of the spec, and report no server errors in its metrics.
 */

export interface AnalysisTargets {
  preview: string;
  active: string;
}

export type Analyzer = (wm: WaveletModel, targets: AnalysisTargets) => Promise<AnalysisVerdict>;

// The guide's example vector, varied per request so no cache answers.
const golden = (i: number) => [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0].map((v, j) => v + 0.01 * Math.sin(i + j));
const TIMEOUT_MS = 5000;

async function probe(base: string, n: number): Promise<{ errors: number; p99: number; failures: string[] }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    try {
      const res = await fetch(`${base}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ features: golden(i) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      await res.arrayBuffer();
      if (res.status !== 200) failures.push(`HTTP ${res.status}`);
    } catch (error) {
      failures.push((error as Error).name);
    }
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  return { errors: failures.length, p99: latencies[Math.min(latencies.length - 1, Math.floor(0.99 * latencies.length))] ?? 0, failures };
}

export const httpAnalyzer: Analyzer = async (wm, targets) => {
  const settings = wm.spec.rollout.analysis;
  const fail = (message: string): AnalysisVerdict => ({ result: "fail", message });
  try {
    const health = await fetch(`${targets.preview}/health`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = (await health.json()) as { bundle?: { digest?: string } };
    if (health.status !== 200) return fail(`preview /health answered ${health.status}`);
    if (body.bundle?.digest !== wm.spec.bundle.digest) return fail(`preview serves ${body.bundle?.digest}, not ${wm.spec.bundle.digest}`);
  } catch (error) {
    return fail(`preview /health unreachable: ${(error as Error).message}`);
  }
  // With API keys the golden requests would need the Secret; health and metrics still count.
  if (!wm.spec.server.apiKeySecretRef) {
    const [preview, active] = await Promise.all([probe(targets.preview, settings.requests), probe(targets.active, settings.requests)]);
    const rate = preview.errors / settings.requests;
    if (rate > settings.maxErrorRate) {
      return fail(`preview error rate ${rate.toFixed(3)} > ${settings.maxErrorRate} (${preview.failures.slice(0, 3).join(", ")}); active had ${active.errors}`);
    }
    if (preview.p99 > settings.maxP99LatencyMs) return fail(`preview p99 ${preview.p99.toFixed(1)} ms > ${settings.maxP99LatencyMs} ms (active ${active.p99.toFixed(1)} ms)`);
  }
  try {
    const text = await (await fetch(`${targets.preview}/metrics`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).text();
    const serverErrors = [...text.matchAll(/^http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    if (serverErrors > 0) return fail(`preview metrics report ${serverErrors} server errors`);
  } catch (error) {
    return fail(`preview /metrics unreachable: ${(error as Error).message}`);
  }
  return { result: "pass", message: `preview healthy on ${wm.spec.bundle.digest.slice(0, 19)}…, golden requests within bounds` };
};
