import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { channelSeries, DailyChannels, featureParams, featureRows, featuresFromPrices } from "../src/features/channels.js";
import type { BarColumns } from "../src/schemas/bars.js";
import { featureSpecSchema } from "../src/schemas/manifest.js";

/**
 * The pipeline's range channels, reproduced: fixtures/range-features.json is written by
 * models/tests/range_vectors.py from the pipeline's own code (bars → every channel → feature
 * rows, for Parkinson and Garman–Klass specs with and without MODWT levels, stale opens, flat
 * days and a crash). Every value must agree to 1e-12 relative to max(1, |value|), and be
 * undefined (null there, NaN here) on exactly the same days.
 */

interface RangeCase {
  name: string;
  spec: unknown;
  bars: BarColumns;
  channels: Record<string, (number | null)[]>;
  features: (number | null)[][];
}

const FIXTURE = join(import.meta.dirname, "fixtures/range-features.json");
const { cases } = JSON.parse(readFileSync(FIXTURE, "utf8")) as { cases: RangeCase[] };
const TOLERANCE = 1e-12;

/** The worst |got − expected| / max(1, |expected|); null in `expected` must be NaN in `got`, and only there. */
function worst(expected: readonly (number | null)[], got: ArrayLike<number>, label: string): number {
  expect(got.length, label).toBe(expected.length);
  let gap = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    expect(Number.isNaN(got[i]), `${label}[${i}] is ${e === null ? "undefined" : "defined"} in the pipeline`).toBe(e === null);
    if (e !== null && e !== undefined) gap = Math.max(gap, Math.abs(got[i]! - e) / Math.max(1, Math.abs(e)));
  }
  return gap;
}

describe("range channels agree with the pipeline's (fixtures/range-features.json)", () => {
  it("covers both estimators, with and without MODWT levels and GJR-X", () => {
    const specs = cases.map((c) => featureSpecSchema.parse(c.spec));
    expect(new Set(specs.map((s) => s.range!.estimator))).toEqual(new Set(["parkinson", "garman_klass"]));
    expect(specs.some((s) => s.range!.levels === 0) && specs.some((s) => s.range!.levels > 0)).toBe(true);
    expect(specs.some((s) => s.garchx) && specs.some((s) => !s.garchx)).toBe(true);
  });

  for (const c of cases) {
    describe(c.name, () => {
      const spec = featureSpecSchema.parse(c.spec);
      const params = featureParams(spec);

      it("every channel on every day, within 1e-12, undefined on the same days", () => {
        expect(Object.keys(c.channels)).toEqual(spec.channels);
        const series = channelSeries(c.bars, params);
        for (const [name, expected] of Object.entries(c.channels)) expect(worst(expected, series[name]!, name), name).toBeLessThanOrEqual(TOLERANCE);
      });

      it("every feature row from day min_prices − 1, and the last one from the last min_prices bars only", () => {
        const rows = featureRows(c.bars, params);
        expect(rows.length).toBe(c.features.length);
        rows.forEach((row, i) => expect(worst(c.features[i]!, row, `row ${i}`)).toBeLessThanOrEqual(TOLERANCE));
        expect(worst(c.features.at(-1)!, featuresFromPrices(c.bars, params), "last row")).toBeLessThanOrEqual(TOLERANCE);
      });

      it("computed a few days at a time, the channels are those computed at once", () => {
        const whole = channelSeries(c.bars, params);
        const daily = new DailyChannels(c.bars, params);
        for (let from = 0, size = 1; from < daily.days; from += size, size = (size * 5) % 13 || 1) daily.fill(from, Math.min(daily.days, from + size));
        params.names.forEach((name, ch) => expect(Array.from(daily.values[ch]!), name).toEqual(Array.from(whole[name]!)));
      });
    });
  }
});
