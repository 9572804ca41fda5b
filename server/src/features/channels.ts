/**
 * From prices to a bundle's feature vectors (features-spec v2). Each channel is a per-day
 * series computed from the returns in a trailing window ending at that day:
 *   dn_ret / dn_sq   the wavelet-denoised return or squared return (wavelet.ts)
 *   ret              the percent log return itself (its sign: the leverage effect)
 *   wav_e1..J, wav_es  MODWT energies of returns (modwt.ts)
 *   gjr_vol          the GJR-GARCH H-day volatility forecast (garch.ts)
 * The feature vector at day t is channel-major: for each channel in the manifest's order,
 * its values at days t−W+1 .. t, oldest first. A bundle without `channels` has one channel,
 * its denoised series, and exactly the vectors it always had.
 */

import { type Channel, type EnergyBand, minPrices, parseChannel } from "../schemas/channels.js";
import type { FeatureSpec } from "../schemas/manifest.js";
import { type GarchParams, gjrRange } from "./garch.js";
import { type EnergyParams, energyRange, modwtFilters } from "./modwt.js";
import { type DenoiseParams, denoiseRange, percentReturns, perDaySeries } from "./wavelet.js";

export interface FeatureParams {
  /** W: days of lags per channel. */
  window: number;
  /** The manifest's channel names, in feature-vector order, and what each one is. */
  names: readonly string[];
  channels: readonly Channel[];
  /** Prices one feature vector needs: W + the longest channel history (in returns). */
  minPrices: number;
  denoise: DenoiseParams;
  energy?: EnergyParams;
  garch?: GarchParams;
}

/** The parameters of a bundle's features, as its (schema-checked) manifest states them. */
export function featureParams(spec: FeatureSpec): FeatureParams {
  return {
    denoise: { series: spec.series, trailing: spec.trailing, levels: spec.levels, decLo: spec.filters.dec_lo, decHi: spec.filters.dec_hi },
    ...(spec.energy ? { energy: { levels: spec.energy.levels, span: spec.energy.span, ...modwtFilters(spec.filters.rec_lo, spec.filters.rec_hi) } } : {}),
    ...(spec.garch ? { garch: { omega: spec.garch.omega, alpha: spec.garch.alpha, gamma: spec.garch.gamma, beta: spec.garch.beta, trailing: spec.garch.trailing, horizon: spec.garch.horizon } } : {}),
    window: spec.window,
    names: spec.channels,
    channels: spec.channels.map((name) => parseChannel(name)!),
    minPrices: minPrices(spec),
  };
}

/**
 * The per-day channel values of one price series, computed a range of days at a time (each
 * day needs only its own trailing window, so a long stream is done a chunk at a time and the
 * event loop is never held for long). `values[c][t]` is channel c at day t, NaN until
 * computed or where the channel has too little history.
 */
export class DailyChannels {
  readonly values: Float64Array[];
  private readonly returns: Float64Array;
  private readonly denoiseInput?: Float64Array;
  private readonly energyBands: EnergyBand[];
  private readonly energyOut: Float64Array[];

  constructor(
    prices: readonly number[],
    private readonly p: FeatureParams,
  ) {
    this.returns = percentReturns(prices);
    this.values = p.channels.map(() => new Float64Array(prices.length).fill(Number.NaN));
    if (p.channels.some((c) => c.kind === "denoised")) this.denoiseInput = perDaySeries(this.returns, p.denoise.series);
    const energies = p.channels.flatMap((c, i) => (c.kind === "energy" ? [[c.band, this.values[i]!] as const] : []));
    this.energyBands = energies.map(([band]) => band);
    this.energyOut = energies.map(([, out]) => out);
  }

  get days(): number {
    return this.returns.length;
  }

  /** Computes every channel for the days t in [from, to). */
  fill(from: number, to: number): void {
    const { p, returns: r } = this;
    this.p.channels.forEach((channel, i) => {
      const x = this.values[i]!;
      switch (channel.kind) {
        case "denoised":
          denoiseRange(this.denoiseInput!, x, from, to, p.denoise);
          break;
        case "return":
          x.set(r.subarray(from, to), from);
          break;
        case "gjr":
          gjrRange(r, x, from, to, p.garch!);
          break;
        case "energy":
          break; // all bands at once below: they share one pyramid
      }
    });
    if (this.energyBands.length) energyRange(r, this.energyBands, this.energyOut, from, to, p.energy!);
  }

  /** Writes day t's feature vector (channel-major, oldest first) into out at offset; needs days t−W+1 .. t filled. */
  vectorAt(t: number, out: Float64Array, offset: number): void {
    const w = this.p.window;
    for (let c = 0; c < this.values.length; c++) out.set(this.values[c]!.subarray(t - w + 1, t + 1), offset + c * w);
  }
}

/** Every channel's value on every day of `prices` (NaN where it has too little history). */
export function channelSeries(prices: readonly number[], p: FeatureParams): Record<string, Float64Array> {
  const daily = new DailyChannels(prices, p);
  daily.fill(0, daily.days);
  return Object.fromEntries(p.names.map((name, c) => [name, daily.values[c]!]));
}

/** Every complete feature vector, one per day from the first with enough history (day minPrices − 1). */
export function featureRows(prices: readonly number[], p: FeatureParams): Float64Array[] {
  const daily = new DailyChannels(prices, p);
  daily.fill(0, daily.days);
  const width = p.window * p.channels.length;
  const rows: Float64Array[] = [];
  for (let t = p.minPrices - 1; t < daily.days; t++) {
    const row = new Float64Array(width);
    daily.vectorAt(t, row, 0);
    rows.push(row);
  }
  return rows;
}

/** The feature vector of the last day, computed from the last minPrices prices only. */
export function featuresFromPrices(prices: readonly number[], p: FeatureParams): Float64Array {
  if (prices.length < p.minPrices) throw new RangeError(`need at least ${p.minPrices} prices, got ${prices.length}`);
  const daily = new DailyChannels(prices.slice(prices.length - p.minPrices), p);
  daily.fill(p.minPrices - p.window, p.minPrices); // the vector's days only
  const row = new Float64Array(p.window * p.channels.length);
  daily.vectorAt(p.minPrices - 1, row, 0);
  return row;
}
