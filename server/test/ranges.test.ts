import { describe, expect, it } from "vitest";
import { dailyEstimator, logFloored, rangeMeanRange, trailingMean } from "../src/features/ranges.js";

const RTOL = 1e-9;
const FLOOR = 1e-4;

describe("the daily range variance e_t", () => {
  it("Parkinson, three bars by hand: 100² (ln H/L)² / (4 ln 2)", () => {
    // (ln 1.02)² = 0.000392…, × 10⁴ / 2.7726 = 1.41436…; (ln 101/99)²: 1.44279…; (ln 1.05)²: 8.58577…
    const e = dailyEstimator({ high: [102, 101, 105], low: [100, 99, 100], close: [101, 100, 104] }, { estimator: "parkinson", staleOpenRtol: RTOL });
    expect(Array.from(e)).toEqual([expect.closeTo(1.414360682801222, 13), expect.closeTo(1.4427912279327226, 13), expect.closeTo(8.585767158993226, 13)]);
  });

  it("Garman–Klass by hand, Parkinson's on a day whose open repeats the previous close; day 0's open counts as real", () => {
    const bars = { open: [100, 101, 101.5], high: [102, 103, 102], low: [99, 100, 100], close: [101, 100.5, 101] };
    const e = dailyEstimator(bars, { estimator: "garman_klass", staleOpenRtol: RTOL });
    // Day 0: ½ (ln 102/99)² − (2 ln 2 − 1)(ln 101/100)², × 10⁴ = 4.07353…
    expect(e[0]).toBeCloseTo(4.0735305352546, 13);
    // Day 1 opens at day 0's close (101): stale, so Parkinson's (ln 103/100)² / (4 ln 2) × 10⁴ = 3.15129…
    expect(e[1]).toBeCloseTo(3.1512888404484034, 13);
    // Day 2 opens at 101.5, not day 1's close (100.5): Garman–Klass again.
    expect(e[2]).toBeCloseTo(1.8665160797446863, 13);
  });

  it("an open within rtol of the previous close is stale; one just beyond is real", () => {
    const at = (open: number) => dailyEstimator({ open: [100, open], high: [101, 103], low: [99, 99], close: [100, 102] }, { estimator: "garman_klass", staleOpenRtol: RTOL })[1];
    const parkinson = dailyEstimator({ high: [101, 103], low: [99, 99], close: [100, 102] }, { estimator: "parkinson", staleOpenRtol: RTOL })[1];
    expect(at(100 * (1 + 0.5e-9))).toBe(parkinson);
    expect(at(100 * (1 + 2e-9))).not.toBe(parkinson);
  });

  it("refuses bars without the fields its estimator reads", () => {
    expect(() => dailyEstimator({ close: [1, 2] }, { estimator: "parkinson", staleOpenRtol: RTOL })).toThrow(/high and low/);
    expect(() => dailyEstimator({ high: [2, 2], low: [1, 1], close: [1, 2] }, { estimator: "garman_klass", staleOpenRtol: RTOL })).toThrow(/open/);
  });
});

describe("rng_<n>d: ln max(mean of e over the last n days, F)", () => {
  const e = Float64Array.of(1.414360682801222, 1.4427912279327226, 8.585767158993226);

  it("by hand, NaN until n days exist, a range of days at a time", () => {
    const out = new Float64Array(3).fill(-1);
    rangeMeanRange(e, 2, out, 0, 1, { logFloor: FLOOR });
    rangeMeanRange(e, 2, out, 1, 3, { logFloor: FLOOR });
    expect(out[0]).toBeNaN();
    expect(out[1]).toBeCloseTo(0.3566781126905925, 14); // ln((1.41436 + 1.44279) / 2)
    expect(out[2]).toBeCloseTo(1.6122896809666818, 14);
    const one = new Float64Array(3);
    rangeMeanRange(e, 1, one, 0, 3, { logFloor: FLOOR });
    expect(Array.from(one)).toEqual(Array.from(e, Math.log));
    expect(trailingMean(e, 2, 3)).toBeCloseTo((e[0]! + e[1]! + e[2]!) / 3, 15);
    expect(trailingMean(e, 1, 3)).toBeNaN();
  });

  it("a day whose high equals its low has a zero range: its log is the floor's", () => {
    const flat = dailyEstimator({ high: [100, 100], low: [100, 100], close: [100, 100] }, { estimator: "parkinson", staleOpenRtol: RTOL });
    expect(Array.from(flat)).toEqual([0, 0]);
    const out = new Float64Array(2);
    rangeMeanRange(flat, 1, out, 0, 2, { logFloor: FLOOR });
    expect(Array.from(out)).toEqual([Math.log(FLOOR), Math.log(FLOOR)]);
    expect(logFloored(Number.NaN, FLOOR)).toBeNaN();
  });
});
