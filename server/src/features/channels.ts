/**
 * From prices (or daily bars) to a bundle's feature vectors (features-spec v2). Each channel is
 * a per-day series computed from a trailing window ending at that day:
 *   dn_ret / dn_sq   the wavelet-denoised return or squared return (wavelet.ts)
 *   ret              the percent log return itself (its sign: the leverage effect)
 *   wav_e1..J, wav_es  MODWT energies of returns (modwt.ts)
 *   gjr_vol          the GJR-GARCH H-day volatility forecast (garch.ts)
 *   rng_<n>d, rng_w<j>, rng_v<J>  the log daily range variance, averaged or by MODWT scale (ranges.ts)
 *   gjrx_vol         the GJR-GARCH-X forecast with a range term (garch.ts)
 * The feature vector at day t is channel-major: for each channel in the manifest's order,
 * its values at days t−W+1 .. t, oldest first. A bundle without `channels` has one channel,
 * its denoised series, and exactly the vectors it always had.
 */

import type { BarField, Bars } from "../schemas/bars.js";
import { type Channel, type ModwtBand, minPrices, parseChannel } from "../schemas/channels.js";
import type { FeatureSpec } from "../schemas/manifest.js";
import { type GarchParams, type GarchXParams, gjrRange, gjrxRange, rangeMeans } from "./garch.js";
import { type EnergyParams, energyRange, modwtFilters, modwtRange } from "./modwt.js";
import { dailyEstimator, logFloored, type RangeParams, rangeMeanRange } from "./ranges.js";
import { type DenoiseParams, denoiseRange, percentReturns, perDaySeries } from "./wavelet.js";

/** What features are computed from: daily closes, or bars (for a bundle whose inputs are more than closes). */
export type PriceData = readonly number[] | Bars;

const barsOf = (data: PriceData): Bars => ("close" in data ? data : { close: data as readonly number[] });

export interface FeatureParams {
  /** W: days of lags per channel. */
  window: number;
  /** The manifest's channel names, in feature-vector order, and what each one is. */
  names: readonly string[];
  channels: readonly Channel[];
  /** Days (prices or bars) one feature vector needs: W + the longest channel history. */
  minPrices: number;
  /** What each day must carry: its close, or the bar fields the range estimator reads. */
  inputs: readonly BarField[];
  denoise: DenoiseParams;
  energy?: EnergyParams;
  garch?: GarchParams;
  range?: RangeParams;
  garchx?: GarchXParams;
}

/** The parameters of a bundle's features, as its (schema-checked) manifest states them. */
export function featureParams(spec: FeatureSpec): FeatureParams {
  const filters = () => modwtFilters(spec.filters.rec_lo, spec.filters.rec_hi);
  const { range: r, garchx: x } = spec;
  return {
    denoise: { series: spec.series, trailing: spec.trailing, levels: spec.levels, decLo: spec.filters.dec_lo, decHi: spec.filters.dec_hi },
    ...(spec.energy ? { energy: { levels: spec.energy.levels, span: spec.energy.span, ...filters() } } : {}),
    ...(spec.garch ? { garch: { omega: spec.garch.omega, alpha: spec.garch.alpha, gamma: spec.garch.gamma, beta: spec.garch.beta, trailing: spec.garch.trailing, horizon: spec.garch.horizon } } : {}),
    ...(r ? { range: { estimator: r.estimator, logFloor: r.log_floor, staleOpenRtol: r.stale_open_rtol, levels: r.levels, ...filters() } } : {}),
    ...(x
      ? { garchx: { omega: x.omega, alpha: x.alpha, gamma: x.gamma, beta: x.beta, delta: x.delta, kappa: x.kappa, span: x.span, trailing: x.trailing, horizon: x.horizon } }
      : {}),
    inputs: spec.inputs,
    window: spec.window,
    names: spec.channels,
    channels: spec.channels.map((name) => parseChannel(name)!),
    minPrices: minPrices(spec),
  };
}

/** The channels computed together, from one MODWT pyramid: which bands, and where each goes. */
interface Bands {
  bands: ModwtBand[];
  out: Float64Array[];
}

/** The channels of `kind` among `channels` (their values in `values`), as Bands. */
function bandsOf(channels: readonly Channel[], values: Float64Array[], kind: "energy" | "rangeModwt"): Bands {
  const picked = channels.flatMap((c, i) => (c.kind === kind ? [[c.band, values[i]!] as const] : []));
  return { bands: picked.map(([band]) => band), out: picked.map(([, out]) => out) };
}

/**
 * The per-day channel values of one price series (or of bars), computed a range of days at a
 * time (each day needs only its own trailing window, so a long stream is done a chunk at a time
 * and the event loop is never held for long). `values[c][t]` is channel c at day t, NaN until
 * computed or where the channel has too little history.
 */
export class DailyChannels {
  readonly values: Float64Array[];
  private readonly returns: Float64Array;
  private readonly denoiseInput?: Float64Array;
  private readonly energies: Bands;
  private readonly rangeBands: Bands;
  /** e_t, ln max(e_t, F) and the m-day means of e_t, for a bundle with range channels. */
  private readonly daily?: Float64Array;
  private readonly logDaily?: Float64Array;
  private readonly dailyMeans?: Float64Array;

  constructor(
    data: PriceData,
    private readonly p: FeatureParams,
  ) {
    const bars = barsOf(data);
    this.returns = percentReturns(bars.close);
    this.values = p.channels.map(() => new Float64Array(bars.close.length).fill(Number.NaN));
    if (p.channels.some((c) => c.kind === "denoised")) this.denoiseInput = perDaySeries(this.returns, p.denoise.series);
    this.energies = bandsOf(p.channels, this.values, "energy");
    this.rangeBands = bandsOf(p.channels, this.values, "rangeModwt");
    // Per day from its own bar (and the close before it): cheap, so done for every day at once.
    if (p.range) {
      const range = p.range;
      this.daily = dailyEstimator(bars, range);
      this.logDaily = this.daily.map((v) => logFloored(v, range.logFloor));
      if (p.garchx) this.dailyMeans = rangeMeans(this.daily, p.garchx.span);
    }
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
        case "range":
          rangeMeanRange(this.daily!, channel.days, x, from, to, p.range!);
          break;
        case "gjrx":
          gjrxRange(r, this.daily!, this.dailyMeans!, x, from, to, p.garchx!);
          break;
        case "energy":
        case "rangeModwt":
          break; // all bands of a kind at once below: they share one pyramid
      }
    });
    if (this.energies.bands.length) energyRange(r, this.energies.bands, this.energies.out, from, to, p.energy!);
    if (this.rangeBands.bands.length) modwtRange(this.logDaily!, this.rangeBands.bands, this.rangeBands.out, from, to, p.range!);
  }

  /** Writes day t's feature vector (channel-major, oldest first) into out at offset; needs days t−W+1 .. t filled. */
  vectorAt(t: number, out: Float64Array, offset: number): void {
    const w = this.p.window;
    for (let c = 0; c < this.values.length; c++) out.set(this.values[c]!.subarray(t - w + 1, t + 1), offset + c * w);
  }
}

/** Every channel's value on every day of `data` (NaN where it has too little history). */
export function channelSeries(data: PriceData, p: FeatureParams): Record<string, Float64Array> {
  const daily = new DailyChannels(data, p);
  daily.fill(0, daily.days);
  return Object.fromEntries(p.names.map((name, c) => [name, daily.values[c]!]));
}

/** Every complete feature vector, one per day from the first with enough history (day minPrices − 1). */
export function featureRows(data: PriceData, p: FeatureParams): Float64Array[] {
  const daily = new DailyChannels(data, p);
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

/** The last n days of `data`. */
function lastDays(data: PriceData, n: number): PriceData {
  if (!("close" in data)) return (data as readonly number[]).slice(-n);
  return Object.fromEntries(Object.entries(data).flatMap(([field, column]) => (column ? [[field, (column as readonly number[]).slice(-n)]] : []))) as unknown as Bars;
}

/** The feature vector of the last day, computed from the last minPrices days only. */
export function featuresFromPrices(data: PriceData, p: FeatureParams): Float64Array {
  const days = barsOf(data).close.length;
  if (days < p.minPrices) throw new RangeError(`need at least ${p.minPrices} days, got ${days}`);
  const daily = new DailyChannels(lastDays(data, p.minPrices), p);
  daily.fill(p.minPrices - p.window, p.minPrices); // the vector's days only
  const row = new Float64Array(p.window * p.channels.length);
  daily.vectorAt(p.minPrices - 1, row, 0);
  return row;
}
