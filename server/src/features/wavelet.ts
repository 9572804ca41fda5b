/**
 * Causal wavelet features, the TypeScript twin of models/src/wavelet_pipeline/features.py.
 *
 * For each day t: u_t is the percent log return (or its square), and
 * x_t is the last point of the wavelet-denoised trailing window u[t-trailing+1 .. t]: the
 * dn_ret / dn_sq channel (channels.ts builds the feature vectors). Everything is read from
 * the bundle manifest, including the wavelet's filters, and must agree with the Python code
 * on the bundle's parity vectors to 1e-9.
 */

import type { FeatureSpec } from "../schemas/manifest.js";

export type SeriesKind = FeatureSpec["series"];

export interface DenoiseParams {
  series: SeriesKind;
  trailing: number;
  levels: number;
  decLo: readonly number[];
  decHi: readonly number[];
}

// Median absolute deviation of Gaussian noise over its standard deviation (as in Python).
const MAD_TO_SIGMA = 0.6744897501960817;

/**
 * One level of the periodized DWT, with PyWavelets' alignment:
 * out[o] = Σ_j f[j] · x[(F/2 + 2o − j) mod N].
 */
function dwtStep(x: Float64Array, decLo: readonly number[], decHi: readonly number[]): [Float64Array, Float64Array] {
  const n = x.length;
  const half = n / 2;
  const f = decLo.length;
  const approx = new Float64Array(half);
  const detail = new Float64Array(half);
  for (let o = 0; o < half; o++) {
    let a = 0;
    let d = 0;
    const centre = f / 2 + 2 * o;
    for (let j = 0; j < f; j++) {
      const v = x[(((centre - j) % n) + n) % n]!;
      a += decLo[j]! * v;
      d += decHi[j]! * v;
    }
    approx[o] = a;
    detail[o] = d;
  }
  return [approx, detail];
}

/**
 * Inverse of dwtStep. For orthogonal wavelets the periodized DWT is an orthogonal map, so
 * its inverse is its transpose: every coefficient adds itself back along the filter taps.
 */
function idwtStep(approx: Float64Array, detail: Float64Array, decLo: readonly number[], decHi: readonly number[]): Float64Array {
  const half = approx.length;
  const n = 2 * half;
  const f = decLo.length;
  const out = new Float64Array(n);
  for (let o = 0; o < half; o++) {
    const centre = f / 2 + 2 * o;
    for (let j = 0; j < f; j++) {
      out[(((centre - j) % n) + n) % n]! += decLo[j]! * approx[o]! + decHi[j]! * detail[o]!;
    }
  }
  return out;
}

function median(values: Float64Array): number {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Last point of the denoised window: DWT, universal soft threshold of details, inverse DWT. */
export function denoiseLast(window: Float64Array, p: DenoiseParams): number {
  const details: Float64Array[] = [];
  let approx = window;
  for (let level = 0; level < p.levels; level++) {
    const [a, d] = dwtStep(approx, p.decLo, p.decHi);
    details.push(d);
    approx = a;
  }
  const sigma = median(details[0]!.map(Math.abs)) / MAD_TO_SIGMA;
  const threshold = sigma * Math.sqrt(2 * Math.log(window.length));
  let signal = approx;
  for (let level = p.levels - 1; level >= 0; level--) {
    const shrunk = details[level]!.map((d) => Math.sign(d) * Math.max(Math.abs(d) - threshold, 0));
    signal = idwtStep(signal, shrunk, p.decLo, p.decHi);
  }
  return signal[signal.length - 1]!;
}

/** r_t = 100·ln(P_t / P_{t−1}), the percent log return, for each day; r_0 is NaN. */
export function percentReturns(prices: readonly number[]): Float64Array {
  const r = new Float64Array(prices.length).fill(Number.NaN);
  for (let t = 1; t < prices.length; t++) r[t] = 100 * Math.log(prices[t]! / prices[t - 1]!);
  return r;
}

/** u_t for each day from the returns r: r_t itself or its square; u_0 is NaN. */
export function perDaySeries(r: Float64Array, series: SeriesKind): Float64Array {
  return series === "log_return_pct" ? r : r.map((v) => v * v);
}

/**
 * Writes x_t into x for the days t in [from, to) of u = perDaySeries(...): each day needs only
 * its own trailing window, so a long series can be denoised a range at a time.
 */
export function denoiseRange(u: Float64Array, x: Float64Array, from: number, to: number, p: DenoiseParams): void {
  for (let t = Math.max(from, p.trailing); t < to; t++) {
    x[t] = denoiseLast(u.subarray(t - p.trailing + 1, t + 1), p);
  }
}

/** x_t for each day; NaN until `trailing` returns exist. */
export function denoisedSeries(prices: readonly number[], p: DenoiseParams): Float64Array {
  const u = perDaySeries(percentReturns(prices), p.series);
  const x = new Float64Array(u.length).fill(Number.NaN);
  denoiseRange(u, x, 0, u.length, p);
  return x;
}
