import { describe, expect, it } from "vitest";
import { channelSeries, DailyChannels, featureParams, featureRows, featuresFromPrices } from "../src/features/channels.js";
import { denoisedSeries } from "../src/features/wavelet.js";
import { featureSpecSchema } from "../src/schemas/manifest.js";
import { defaultBundles, parityBundles } from "./bundles.js";
import { multiChannelFeatures } from "./linear-bundle.js";

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
  it("finds both default bundles", () => {
    expect(defaultBundles().map((b) => b.manifest.name).sort()).toEqual(["spx-return-1d", "spx-vol-5d"]);
  });

  for (const bundle of bundles) {
    const label = `${bundle.manifest.name} (${bundle.dir})`;
    const params = featureParams(bundle.manifest.features);
    for (const c of bundle.cases) {
      it(`${label} / ${c.name}: the denoised series, every channel and every feature row within 1e-9`, () => {
        expect(maxAbsDiff(c.denoised, denoisedSeries(c.prices, params.denoise))).toBeLessThanOrEqual(TOLERANCE);
        if (c.channels) {
          const series = channelSeries(c.prices, params);
          expect(Object.keys(c.channels)).toEqual(bundle.manifest.features.channels);
          for (const [name, expected] of Object.entries(c.channels)) {
            expect(maxAbsDiff(expected, series[name]!), name).toBeLessThanOrEqual(TOLERANCE);
          }
        }
        const rows = featureRows(c.prices, params);
        expect(rows.length).toBe(c.features.length);
        rows.forEach((row, i) => expect(maxAbsDiff(c.features[i]!, row), `row ${i}`).toBeLessThanOrEqual(TOLERANCE));
      });
    }

    it(`${label}: features of the last day need only the last min_prices prices`, () => {
      const c = bundle.cases[0]!;
      expect(params.minPrices).toBe(bundle.manifest.features.min_prices);
      const last = featuresFromPrices(c.prices, params);
      expect(maxAbsDiff(c.features.at(-1)!, last)).toBeLessThanOrEqual(TOLERANCE);
      expect(() => featuresFromPrices(c.prices.slice(0, params.minPrices - 1), params)).toThrow(RangeError);
    });

    it(`${label}: channels computed a range of days at a time equal those computed at once`, () => {
      const c = bundle.cases[0]!;
      const whole = channelSeries(c.prices, params);
      const daily = new DailyChannels(c.prices, params);
      // Uneven ranges, some of one day, crossing every history boundary.
      for (let from = 0, size = 1; from < daily.days; from += size, size = (size * 7) % 23 || 1) daily.fill(from, Math.min(daily.days, from + size));
      params.names.forEach((name, ch) => expect(Array.from(daily.values[ch]!), name).toEqual(Array.from(whole[name]!)));
    });
  }
});

describe("prefix invariance: the features of a series cut at t are those at t of the whole series", () => {
  // A random walk with a crash; every bundle's spec, and a 6-channel one that uses every kind of channel.
  let seed = 17;
  const prices = [100];
  for (let t = 1; t < 600; t++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    prices.push(prices[t - 1]! * Math.exp(((seed / 2 ** 31 - 0.5) * 3 + (t > 300 && t < 305 ? -5 : 0)) / 100));
  }
  const specs = [
    ...bundles.map((b) => [`${b.manifest.name} (${b.dir})`, b.manifest.features] as const),
    ["6 channels", featureSpecSchema.parse(multiChannelFeatures())] as const,
  ];
  for (const [name, spec] of specs) {
    it(name, () => {
      const params = featureParams(spec);
      const whole = channelSeries(prices, params);
      const rows = featureRows(prices, params);
      for (const t of [params.minPrices - 1, params.minPrices + 3, 301, 302, 450, prices.length - 1]) {
        const cut = prices.slice(0, t + 1);
        const series = channelSeries(cut, params);
        for (const channel of params.names) expect(Array.from(series[channel]!), `${channel} at ${t}`).toEqual(Array.from(whole[channel]!.subarray(0, t + 1)));
        expect(Array.from(featuresFromPrices(cut, params)), `day ${t}`).toEqual(Array.from(rows[t - params.minPrices + 1]!));
      }
    });
  }
});
