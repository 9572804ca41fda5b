/**
 * The GJR-GARCH(1,1,1) volatility channels (features-spec v2): a zero-mean GJR recursion over
 * the last K returns only, started from their mean square, then the forecast of the variance
 * summed over the next H days. Recomputing from a fixed trailing window each day (rather than
 * carrying h over the whole history) keeps the channels causal and prefix invariant: a series
 * cut at t gives the same value at t. Parameters are the pipeline's fit on the training window,
 * read from the manifest.
 *
 * gjr_vol is the plain recursion, h ← ω + (α + γ·[r<0])·r² + β·h, its forecast the analytic
 * E[h_{t+k+1}] = ω + (α + γ/2 + β)·E[h_{t+k}]. gjrx_vol (GJR-GARCH-X, the twin of the pipeline's
 * ranges.gjrx_volatility) adds δ·x_s, x_s the mean daily range variance of the m days ending at
 * s (ranges.ts); its forecast replaces each unknown future range variance by κ·E[h].
 */

import { trailingMean } from "./ranges.js";

export interface GarchParams {
  omega: number;
  alpha: number;
  gamma: number;
  beta: number;
  /** K: returns the recursion runs over. */
  trailing: number;
  /** H: days the forecast covers. */
  horizon: number;
}

export interface GarchXParams extends GarchParams {
  /** δ: weight of the mean range variance. */
  delta: number;
  /** κ: E[e] / E[r²], a variance forecast's range variance. */
  kappa: number;
  /** m: days the range variance is averaged over. */
  span: number;
}

/** A return, NaN before the series (so a window reaching there gives NaN, as in the pipeline). */
const at = (x: Float64Array, i: number) => (i >= 0 ? x[i]! : Number.NaN);

/**
 * h filtered through the K returns r[end−K+1 .. end] from their mean square: the variance
 * forecast for day end+1. `rangeTerm(s)`, when given, is added at each step (GJR-X's δ·x_s),
 * after the same terms in the same order as the pipeline's, so both round alike.
 */
function filtered(r: Float64Array, end: number, p: GarchParams, rangeTerm?: (s: number) => number): number {
  const start = end - p.trailing + 1;
  let h = 0;
  for (let s = start; s <= end; s++) h += at(r, s) * at(r, s);
  h /= p.trailing;
  for (let s = start; s <= end; s++) {
    const rs = at(r, s);
    h = p.omega + (rs < 0 ? p.alpha + p.gamma : p.alpha) * (rs * rs) + p.beta * h;
    if (rangeTerm) h += rangeTerm(s);
  }
  return h;
}

/** √(Σ of the next H days' variance forecasts) from the K returns r[end−K+1 .. end]. */
export function gjrVolatility(r: Float64Array, end: number, p: GarchParams): number {
  let h = filtered(r, end, p);
  // Each later day's variance follows from the one before in expectation.
  const persistence = p.alpha + p.gamma / 2 + p.beta;
  let total = 0;
  for (let k = 0; k < p.horizon; k++) {
    total += h;
    h = p.omega + persistence * h;
  }
  return Math.sqrt(total);
}

/**
 * gjrx_vol at day `end`: from the returns r, the daily range variances e and their m-day means
 * x (x[s] = mean of e over s−m+1 .. s). The forecast's range term over the next days averages
 * the last m−1 known e with κ·E[h] for each day ahead.
 */
export function gjrxVolatility(r: Float64Array, e: Float64Array, x: Float64Array, end: number, p: GarchXParams): number {
  let h = filtered(r, end, p, (s) => p.delta * at(x, s));
  const future: number[] = [];
  for (let s = end - p.span + 2; s <= end; s++) future.push(at(e, s));
  const persistence = p.alpha + p.gamma / 2 + p.beta;
  let total = 0;
  for (let k = 1; k <= p.horizon; k++) {
    total += h;
    if (k === p.horizon) break;
    future.push(p.kappa * h);
    let sum = 0;
    for (let i = future.length - p.span; i < future.length; i++) sum += future[i]!;
    h = p.omega + persistence * h + p.delta * (sum / p.span);
  }
  return Math.sqrt(total);
}

/** Writes gjr_vol into out for the days t in [from, to) of the returns r (r[0] is NaN); NaN until K returns exist. */
export function gjrRange(r: Float64Array, out: Float64Array, from: number, to: number, p: GarchParams): void {
  for (let t = from; t < to; t++) out[t] = t >= p.trailing ? gjrVolatility(r, t, p) : Number.NaN;
}

/** Writes gjrx_vol into out for the days t in [from, to); NaN where the returns or range means it needs do not exist yet. */
export function gjrxRange(r: Float64Array, e: Float64Array, x: Float64Array, out: Float64Array, from: number, to: number, p: GarchXParams): void {
  for (let t = from; t < to; t++) out[t] = gjrxVolatility(r, e, x, t, p);
}

/** x for gjrxVolatility: the mean of e over the m days ending at each day (NaN before m exist). */
export function rangeMeans(e: Float64Array, span: number): Float64Array {
  return Float64Array.from(e, (_, t) => trailingMean(e, t, span));
}
