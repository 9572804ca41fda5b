/**
 * The GJR-GARCH(1,1,1) volatility channel (features-spec v2): a zero-mean GJR recursion
 * over the last K returns only, started from their mean square, then the analytic forecast
 * of the variance summed over the next H days. Recomputing from a fixed trailing window each
 * day (rather than carrying h over the whole history) keeps the channel causal and prefix
 * invariant: a series cut at t gives the same value at t. Parameters are the pipeline's fit
 * on the training window, read from the manifest.
 */

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

/** √(Σ of the next H days' variance forecasts) from the K returns r[end−K+1 .. end]. */
export function gjrVolatility(r: Float64Array, end: number, p: GarchParams): number {
  const start = end - p.trailing + 1;
  let h = 0;
  for (let s = start; s <= end; s++) h += r[s]! * r[s]!;
  h /= p.trailing;
  for (let s = start; s <= end; s++) {
    const r2 = r[s]! * r[s]!;
    h = p.omega + (r[s]! < 0 ? p.alpha + p.gamma : p.alpha) * r2 + p.beta * h;
  }
  // h is now the variance forecast for day end+1; each later day's follows in expectation.
  const persistence = p.alpha + p.gamma / 2 + p.beta;
  let total = 0;
  for (let k = 0; k < p.horizon; k++) {
    total += h;
    h = p.omega + persistence * h;
  }
  return Math.sqrt(total);
}

/** Writes the channel into x for the days t in [from, to) of the returns r (r[0] is NaN); NaN until K returns exist. */
export function gjrRange(r: Float64Array, x: Float64Array, from: number, to: number, p: GarchParams): void {
  for (let t = from; t < to; t++) x[t] = t >= p.trailing ? gjrVolatility(r, t, p) : Number.NaN;
}
