/**
 * Range channels from daily bars (features-spec v2), the twins of the pipeline's
 * ranges.daily_estimator and ranges.range_channels. Each day's variance is estimated from its
 * bar, e_t in percent² (100² × the ln terms, the units of a squared percent return):
 *   parkinson     (ln H/L)² / (4 ln 2)
 *   garman_klass  ½ (ln H/L)² − (2 ln 2 − 1)(ln C/O)², or Parkinson's on a day whose open repeats
 *                 the previous close (a stale open: |O_t − C_{t−1}| ≤ rtol·C_{t−1}; never day 0)
 * and, with F the manifest's log floor (a day whose high equals its low has a zero range):
 *   rng_<n>d      ln max(mean(e_{t−n+1..t}), F)
 *   rng_w<j>, rng_v<J>  the causal MODWT coefficients (modwt.ts, modwtRange) of ln max(e_t, F)
 * Each value at t reads bars t−1 .. t at most per day, so the channels are causal and prefix invariant.
 */

import type { Bars } from "../schemas/bars.js";
import type { RangeEstimator } from "../schemas/manifest.js";
import type { ModwtParams } from "./modwt.js";

export interface RangeParams extends ModwtParams {
  estimator: RangeEstimator;
  /** F: ln values are taken of max(v, F). */
  logFloor: number;
  /** An open within this relative distance of the previous close repeats it (stale). */
  staleOpenRtol: number;
}

// (100 ln)²: a squared log price change in percent², as a squared percent return.
const VARIANCE_SCALE = 100 ** 2;

/** e_t for every day of the bars. Written in the pipeline's order of operations, so both round alike. */
export function dailyEstimator(bars: Bars, p: Pick<RangeParams, "estimator" | "staleOpenRtol">): Float64Array {
  const { open, high, low, close } = bars;
  if (!high || !low) throw new RangeError("range channels need each day's high and low");
  if (p.estimator === "garman_klass" && !open) throw new RangeError("the garman_klass estimator needs each day's open");
  const e = new Float64Array(close.length);
  const gk = p.estimator === "garman_klass";
  for (let t = 0; t < e.length; t++) {
    const hl = Math.log(high[t]! / low[t]!);
    if (!gk || (t > 0 && Math.abs(open![t]! - close[t - 1]!) <= p.staleOpenRtol * close[t - 1]!)) {
      e[t] = (VARIANCE_SCALE * hl * hl) / (4 * Math.LN2);
    } else {
      const co = Math.log(close[t]! / open![t]!);
      e[t] = VARIANCE_SCALE * (0.5 * hl * hl - (2 * Math.LN2 - 1) * co * co);
    }
  }
  return e;
}

/** ln max(v, F); NaN stays NaN. */
export const logFloored = (v: number, floor: number) => Math.log(Math.max(v, floor));

/** The mean of x over the n days ending at `end`; NaN before n days exist. */
export function trailingMean(x: Float64Array, end: number, n: number): number {
  if (end - n + 1 < 0) return Number.NaN;
  let sum = 0;
  for (let s = end - n + 1; s <= end; s++) sum += x[s]!;
  return sum / n;
}

/** Writes rng_<n>d into out for the days t in [from, to) of the daily estimator e. */
export function rangeMeanRange(e: Float64Array, n: number, out: Float64Array, from: number, to: number, p: Pick<RangeParams, "logFloor">): void {
  for (let t = from; t < to; t++) out[t] = logFloored(trailingMean(e, t, n), p.logFloor);
}
