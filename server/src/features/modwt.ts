/**
 * The causal MODWT (the à trous pyramid) of a per-day series, and the multi-scale energies of
 * returns built on it, the twins of the pipeline's series.causal_modwt and energy channels
 * (features-spec v2). With g̃ = rec_lo/√2 and h̃ = rec_hi/√2 of an orthogonal wavelet of length L:
 *   V_{0,s} = x_s,  W_{j,s} = Σ_l h̃_l V_{j-1, s-2^{j-1}l},  V_{j,s} = Σ_l g̃_l V_{j-1, s-2^{j-1}l},
 * each defined only where every term exists (no wrap-around, nothing after s). Level j's
 * filter spans L_j = (2^j − 1)(L − 1) + 1 days. The energy channels at day t are the means of
 * W_{j,s}² (j = 1..J) and of V_{J,s}² over the last M days s = t−M+1 .. t, with x the returns;
 * the range channels (ranges.ts) take the coefficients themselves, of the log range variance.
 */

import { type ModwtBand, levelSpan } from "../schemas/channels.js";

export interface ModwtParams {
  /** J: detail levels. */
  levels: number;
  /** g̃ and h̃, the MODWT scaling and wavelet filters. */
  lo: Float64Array;
  hi: Float64Array;
}

export interface EnergyParams extends ModwtParams {
  /** M: days averaged. */
  span: number;
}

/** The MODWT filters of an orthogonal wavelet, from its reconstruction filters. */
export function modwtFilters(recLo: readonly number[], recHi: readonly number[]): { lo: Float64Array; hi: Float64Array } {
  return { lo: Float64Array.from(recLo, (v) => v / Math.SQRT2), hi: Float64Array.from(recHi, (v) => v / Math.SQRT2) };
}

/**
 * One pyramid step over a local stretch of days: `out[k]` for day base + k from the level
 * below (`v`, same days). Taps reaching before the stretch give NaN, as do undefined inputs,
 * so a coefficient is defined exactly where every term exists.
 */
function pyramidStep(v: Float64Array, filter: Float64Array, dilation: number): Float64Array {
  const out = new Float64Array(v.length);
  for (let k = 0; k < v.length; k++) {
    let sum = 0;
    for (let l = 0; l < filter.length; l++) {
      const at = k - dilation * l;
      sum += at >= 0 ? filter[l]! * v[at]! : Number.NaN;
    }
    out[k] = sum;
  }
  return out;
}

/** (1/M) Σ of the squares of the M values ending at index k. */
function meanSquare(x: Float64Array, k: number, span: number): number {
  let sum = 0;
  for (let i = k - span + 1; i <= k; i++) sum += x[i]! * x[i]!;
  return sum / span;
}

/**
 * The pyramid over the days [base, to) of the per-day series x (days before 0 are missing):
 * index k of each output is day base + k.
 */
function pyramid(x: Float64Array, base: number, to: number, p: ModwtParams): (band: ModwtBand) => Float64Array {
  let v: Float64Array = new Float64Array(to - base);
  for (let k = 0; k < v.length; k++) v[k] = base + k >= 0 ? x[base + k]! : Number.NaN;
  const details: Float64Array[] = [];
  for (let j = 1; j <= p.levels; j++) {
    const dilation = 2 ** (j - 1);
    details.push(pyramidStep(v, p.hi, dilation));
    v = pyramidStep(v, p.lo, dilation);
  }
  const smooth = v;
  return (band) => (band === "smooth" ? smooth : details[band - 1]!);
}

/**
 * Writes the coefficients of `bands` (W_j, or V_J for "smooth") of the per-day series x into
 * `out` (one per-day array each, same order) for the days t in [from, to). Only the days the
 * range's coefficients reach back to are decomposed, so a long series can be done a range at a
 * time; a day without enough history gets NaN.
 */
export function modwtRange(x: Float64Array, bands: readonly ModwtBand[], out: readonly Float64Array[], from: number, to: number, p: ModwtParams): void {
  if (to <= from) return;
  const base = from - levelSpan(p.levels, p.lo.length) + 1; // the first day the last level needs
  const band = pyramid(x, base, to, p);
  bands.forEach((b, i) => out[i]!.set(band(b).subarray(from - base), from));
}

/**
 * Writes the energies of `bands` into `out` (one per-day array each, same order) for the days
 * t in [from, to), from the percent log returns r (r[0] is NaN: no return on the first day),
 * a range at a time like modwtRange.
 */
export function energyRange(
  r: Float64Array,
  bands: readonly ModwtBand[],
  out: readonly Float64Array[],
  from: number,
  to: number,
  p: EnergyParams,
): void {
  if (to <= from) return;
  const base = from - (p.span + levelSpan(p.levels, p.lo.length) - 2); // the first day the last level's M days need
  const band = pyramid(r, base, to, p);
  bands.forEach((b, i) => {
    const x = band(b);
    const target = out[i]!;
    for (let t = from; t < to; t++) target[t] = meanSquare(x, t - base, p.span);
  });
}
