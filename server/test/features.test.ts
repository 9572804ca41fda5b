import { describe, expect, it } from "vitest";
import { denoisedSeries, featureParams, featureRows, featuresFromPrices, minPrices } from "../src/features/wavelet.js";
import { defaultBundles } from "./bundles.js";

const TOLERANCE = 1e-9;

function maxAbsDiff(a: readonly (number | null)[], b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const expected = a[i];
    if (expected === null || expected === undefined) {
      expect(Number.isNaN(b[i])).toBe(true);
      continue;
    }
    worst = Math.max(worst, Math.abs(expected - b[i]!));
  }
  return worst;
}

const bundles = defaultBundles();

describe("wavelet features agree with the Python pipeline's parity vectors", () => {
  it("finds both default bundles", () => {
    expect(bundles.map((b) => b.manifest.name).sort()).toEqual(["spx-return-1d", "spx-vol-5d"]);
  });

  for (const bundle of bundles) {
    const params = featureParams(bundle.manifest.features);
    for (const c of bundle.cases) {
      it(`${bundle.manifest.name} / ${c.name}: denoised series and every feature row within 1e-9`, () => {
        expect(maxAbsDiff(c.denoised, denoisedSeries(c.prices, params))).toBeLessThanOrEqual(TOLERANCE);
        const rows = featureRows(c.prices, params);
        expect(rows.length).toBe(c.features.length);
        rows.forEach((row, i) => expect(maxAbsDiff(c.features[i]!, row)).toBeLessThanOrEqual(TOLERANCE));
      });
    }

    it(`${bundle.manifest.name}: features of the last day need only the last min_prices prices`, () => {
      const c = bundle.cases[0]!;
      expect(minPrices(params)).toBe(bundle.manifest.features.min_prices);
      const last = featuresFromPrices(c.prices, params);
      expect(maxAbsDiff(c.features[c.features.length - 1]!, last)).toBeLessThanOrEqual(TOLERANCE);
      expect(() => featuresFromPrices(c.prices.slice(0, minPrices(params) - 1), params)).toThrow(RangeError);
    });
  }
});
