import { describe, expect, it } from "vitest";
import { channelSeries, DailyChannels, featureParams, featureRows, featuresFromPrices } from "../src/features/channels.js";
import { denoisedSeries } from "../src/features/wavelet.js";
import { featureSpecSchema } from "../src/schemas/manifest.js";
import { caseCloses, caseData, defaultBundles, parityBundles } from "./bundles.js";
import { multiChannelFeatures, rangeFeatures } from "./linear-bundle.js";
import { columns, randomBars } from "./ohlc.js";

const TOLERANCE = 1e-9;

/** The largest |expected − got|; null in `expected` (undefined in Python) must be NaN here. */
function maxAbsDiff(expected: readonly (number | null)[], got: ArrayLike<number>): number {
  expect(got.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    if (e === null || e === undefined) {
      expect(Number.isNaN(got[i]), `day ${i} is undefined in the vectors`).toBe(true);
      continue;
    }
    expect(Number.isNaN(got[i]), `day ${i} is defined in the vectors`).toBe(false);
    worst = Math.max(worst, Math.abs(e - got[i]!));
  }
  return worst;
}

const bundles = parityBundles();

describe("features agree with the Python pipeline's parity vectors", () => {
  it("finds every committed bundle", () => {
    expect(defaultBundles().map((b) => b.manifest.name).sort()).toEqual(["ndx-range-vol-5d", "spx-range-vol-5d", "spx-return-1d", "spx-vol-5d"]);
  });

  for (const bundle of bundles) {
    const label = `${bundle.manifest.name} (${bundle.dir})`;
    const params = featureParams(bundle.manifest.features);
    for (const c of bundle.cases) {
      it(`${label} / ${c.name}: the denoised series, every channel and every feature row within 1e-9`, () => {
        expect(maxAbsDiff(c.denoised, denoisedSeries(caseCloses(c), params.denoise))).toBeLessThanOrEqual(TOLERANCE);
        if (c.channels) {
          const series = channelSeries(caseData(c), params);
          expect(Object.keys(c.channels)).toEqual(bundle.manifest.features.channels);
          for (const [name, expected] of Object.entries(c.channels)) {
            expect(maxAbsDiff(expected, series[name]!), name).toBeLessThanOrEqual(TOLERANCE);
          }
        }
        const rows = featureRows(caseData(c), params);
        expect(rows.length).toBe(c.features.length);
        rows.forEach((row, i) => expect(maxAbsDiff(c.features[i]!, row), `row ${i}`).toBeLessThanOrEqual(TOLERANCE));
      });
    }

    it(`${label}: features of the last day need only the last min_prices prices`, () => {
      const c = bundle.cases[0]!;
      expect(params.minPrices).toBe(bundle.manifest.features.min_prices);
      const last = featuresFromPrices(caseData(c), params);
      expect(maxAbsDiff(c.features.at(-1)!, last)).toBeLessThanOrEqual(TOLERANCE);
      expect(() => featuresFromPrices(caseCloses(c).slice(0, params.minPrices - 1), params)).toThrow(RangeError);
    });

    it(`${label}: channels computed a range of days at a time equal those computed at once`, () => {
      const c = bundle.cases[0]!;
      const whole = channelSeries(caseData(c), params);
      const daily = new DailyChannels(caseData(c), params);
      // Uneven ranges, some of one day, crossing every history boundary.
      for (let from = 0, size = 1; from < daily.days; from += size, size = (size * 7) % 23 || 1) daily.fill(from, Math.min(daily.days, from + size));
      params.names.forEach((name, ch) => expect(Array.from(daily.values[ch]!), name).toEqual(Array.from(whole[name]!)));
    });
  }
});

describe("features from bars", () => {
  const bars = randomBars(400, 9);
  const data = columns(bars);

  it("a range spec computed a range of days at a time equals it computed at once; every channel is defined from its history on", () => {
    for (const estimator of ["garman_klass", "parkinson"] as const) {
      const params = featureParams(featureSpecSchema.parse(rangeFeatures(estimator)));
      const whole = channelSeries(data, params);
      const daily = new DailyChannels(data, params);
      for (let from = 0, size = 1; from < daily.days; from += size, size = (size * 7) % 23 || 1) daily.fill(from, Math.min(daily.days, from + size));
      params.names.forEach((name, ch) => expect(Array.from(daily.values[ch]!), name).toEqual(Array.from(whole[name]!)));
      // Every channel is defined from day minPrices − window on (the first vector's first lag).
      for (const name of params.names) expect(whole[name]!.subarray(params.minPrices - params.window).every(Number.isFinite), name).toBe(true);
      expect(featureRows(data, params).every((row) => row.every(Number.isFinite))).toBe(true);
    }
  });

  it("channels that read closes only are those of the closes; a close-only spec reads the closes of bars", () => {
    const params = featureParams(featureSpecSchema.parse(rangeFeatures()));
    const fromBars = channelSeries(data, params);
    const multi = featureParams(featureSpecSchema.parse(multiChannelFeatures()));
    const fromCloses = channelSeries(data.close, multi);
    expect(Array.from(fromBars.dn_ret!)).toEqual(Array.from(fromCloses.dn_ret!));
    expect(Array.from(channelSeries({ close: data.close }, multi).gjr_vol!)).toEqual(Array.from(fromCloses.gjr_vol!));
  });

  it("the flat day's range is the log floor; Garman–Klass and Parkinson differ only where opens are real", () => {
    const gk = channelSeries(data, featureParams(featureSpecSchema.parse(rangeFeatures())));
    const pk = channelSeries(data, featureParams(featureSpecSchema.parse(rangeFeatures("parkinson"))));
    const flat = Math.floor(400 / 3);
    expect(gk.rng_1d![flat]).toBe(Math.log(1e-4));
    // Every 7th day opens at the previous close: Parkinson's value there too.
    expect(gk.rng_1d![7]).toBe(pk.rng_1d![7]);
    expect(gk.rng_1d![8]).not.toBe(pk.rng_1d![8]);
  });

  it("the last day's features need only the last min_prices bars, and a spec reading bars refuses closes", () => {
    const params = featureParams(featureSpecSchema.parse(rangeFeatures()));
    const rows = featureRows(data, params);
    expect(Array.from(featuresFromPrices(data, params))).toEqual(Array.from(rows.at(-1)!));
    expect(() => featuresFromPrices(data.close, params)).toThrow(/high and low/);
    expect(() => featuresFromPrices({ ...data, open: undefined } as never, params)).toThrow(/open/);
  });
});

describe("prefix invariance: the features of a series cut at t are those at t of the whole series", () => {
  // A random walk with a crash; every bundle's spec, and a 6-channel one that uses every kind of channel.
  let seed = 17;
  const prices = [100];
  for (let t = 1; t < 600; t++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    prices.push(prices[t - 1]! * Math.exp(((seed / 2 ** 31 - 0.5) * 3 + (t > 300 && t < 305 ? -5 : 0)) / 100));
  }
  // Bars for the specs that read them: a walk of its own, with stale opens, a crash and a flat day.
  const bars = columns(randomBars(prices.length, 17));
  const cutBars = (n: number) => ({ open: bars.open.slice(0, n), high: bars.high.slice(0, n), low: bars.low.slice(0, n), close: bars.close.slice(0, n) });
  const specs = [
    ...bundles.map((b) => [`${b.manifest.name} (${b.dir})`, b.manifest.features] as const),
    ["6 channels", featureSpecSchema.parse(multiChannelFeatures())] as const,
    ["7 channels from bars (Garman–Klass)", featureSpecSchema.parse(rangeFeatures())] as const,
    ["7 channels from bars (Parkinson)", featureSpecSchema.parse(rangeFeatures("parkinson"))] as const,
  ];
  for (const [name, spec] of specs) {
    it(name, () => {
      const params = featureParams(spec);
      const reads = params.range ? (n: number) => cutBars(n) : (n: number) => prices.slice(0, n);
      const whole = channelSeries(reads(prices.length), params);
      const rows = featureRows(reads(prices.length), params);
      for (const t of [params.minPrices - 1, params.minPrices + 3, 200, 201, 301, 302, 450, prices.length - 1].filter((t) => t >= params.minPrices - 1)) {
        const cut = reads(t + 1);
        const series = channelSeries(cut, params);
        for (const channel of params.names) expect(Array.from(series[channel]!), `${channel} at ${t}`).toEqual(Array.from(whole[channel]!.subarray(0, t + 1)));
        expect(Array.from(featuresFromPrices(cut, params)), `day ${t}`).toEqual(Array.from(rows[t - params.minPrices + 1]!));
      }
    });
  }
});
