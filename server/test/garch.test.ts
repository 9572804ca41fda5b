import { describe, expect, it } from "vitest";
import { type GarchParams, type GarchXParams, gjrRange, gjrVolatility, gjrxRange, gjrxVolatility, rangeMeans } from "../src/features/garch.js";

const P: GarchParams = { omega: 0.1, alpha: 0.05, gamma: 0.1, beta: 0.8, trailing: 3, horizon: 2 };

describe("the GJR-GARCH volatility channel", () => {
  it("three returns by hand", () => {
    // r = 1, −2, 0.5. h starts at their mean square, (1 + 4 + 0.25)/3 = 1.75;
    //   r =  1:  h = 0.1 + 0.05·1            + 0.8·1.75 = 1.55
    //   r = −2:  h = 0.1 + (0.05 + 0.1)·4    + 0.8·1.55 = 1.94
    //   r = 0.5: h = 0.1 + 0.05·0.25         + 0.8·1.94 = 1.6645   (the variance for the next day)
    // Two days: 1.6645 + (0.1 + (0.05 + 0.05 + 0.8)·1.6645) = 1.6645 + 1.59805 = 3.26255.
    const r = Float64Array.of(Number.NaN, 1, -2, 0.5);
    expect(gjrVolatility(r, 3, P)).toBeCloseTo(Math.sqrt(3.26255), 14);
  });

  it("uses only the last K returns, is undefined before K exist, and answers a range of days at a time", () => {
    const r = Float64Array.of(Number.NaN, 7, -3, 1, -2, 0.5);
    const x = new Float64Array(r.length).fill(-1);
    gjrRange(r, x, 0, 2, P);
    gjrRange(r, x, 2, r.length, P);
    expect(Array.from(x.subarray(0, 3))).toEqual([Number.NaN, Number.NaN, Number.NaN]);
    // Day 5 sees 1, −2, 0.5 only (the 7 and −3 before them are outside its K = 3).
    expect(x[5]).toBeCloseTo(Math.sqrt(3.26255), 14);
    expect(x[3]).toBe(gjrVolatility(r, 3, P));
  });

  it("a fall raises the forecast more than a rise of the same size (the leverage effect), and not at all with gamma = 0", () => {
    const up = Float64Array.of(Number.NaN, 1, 1, 3);
    const down = Float64Array.of(Number.NaN, 1, 1, -3);
    expect(gjrVolatility(down, 3, P)).toBeGreaterThan(gjrVolatility(up, 3, P));
    const symmetric = { ...P, gamma: 0 };
    expect(gjrVolatility(down, 3, symmetric)).toBe(gjrVolatility(up, 3, symmetric));
  });

  it("one day ahead with H = 1 is the filtered variance's square root", () => {
    // r = 2: h = 4, then 0.1 + (0.05 + 0.1)·4 + 0.8·4 = 3.9 (a fall adds gamma).
    expect(gjrVolatility(Float64Array.of(Number.NaN, -2), 1, { ...P, trailing: 1, horizon: 1 })).toBeCloseTo(Math.sqrt(3.9), 14);
  });
});

describe("the GJR-GARCH-X volatility channel (gjrx_vol)", () => {
  const X: GarchXParams = { ...P, trailing: 2, horizon: 2, delta: 0.2, kappa: 0.5, span: 2 };
  const r = Float64Array.of(Number.NaN, 1, -2);
  const e = Float64Array.of(0.5, 1, 2);

  it("two returns and two forecast days by hand", () => {
    // x_s, the mean e of the 2 days to s: x_1 = 0.75, x_2 = 1.5. h starts at (1 + 4)/2 = 2.5;
    //   r =  1:  h = 0.1 + 0.05·1         + 0.8·2.5  + 0.2·0.75 = 2.3
    //   r = −2:  h = 0.1 + (0.05 + 0.1)·4 + 0.8·2.3  + 0.2·1.5  = 2.84   (the variance for the next day)
    // Day 2 ahead: its range term averages e_2 = 2 with κ·2.84 = 1.42 → 1.71, so
    //   h = 0.1 + (0.05 + 0.05 + 0.8)·2.84 + 0.2·1.71 = 2.998, and the total is 2.84 + 2.998 = 5.838.
    const x = rangeMeans(e, 2);
    expect(Array.from(x)).toEqual([Number.NaN, 0.75, 1.5]);
    expect(gjrxVolatility(r, e, x, 2, X)).toBeCloseTo(Math.sqrt(5.838), 14);
  });

  it("with δ = 0 it is gjr_vol; with one forecast day the future range never enters", () => {
    const long = Float64Array.of(Number.NaN, 0.3, -1.2, 2, -0.4, 0.9);
    const daily = Float64Array.of(1, 2, 0.5, 3, 1.5, 0.7);
    const p = { ...X, trailing: 4, horizon: 3, span: 3 };
    expect(gjrxVolatility(long, daily, rangeMeans(daily, 3), 5, { ...p, delta: 0 })).toBeCloseTo(gjrVolatility(long, 5, p), 14);
    const nanFuture = Float64Array.from(daily);
    nanFuture[5] = Number.NaN; // only ever read for the forecast's second day on
    const x = rangeMeans(daily, 3);
    expect(gjrxVolatility(long, nanFuture, x, 5, { ...p, horizon: 1 })).toBe(gjrxVolatility(long, daily, x, 5, { ...p, horizon: 1 }));
  });

  it("is NaN until T returns and the range mean of the first of them exist (history T + m − 1), and answers a range of days at a time", () => {
    const long = Float64Array.of(Number.NaN, 0.3, -1.2, 2, -0.4, 0.9);
    const daily = Float64Array.of(1, 2, 0.5, 3, 1.5, 0.7);
    const p = { ...X, trailing: 2, span: 3 };
    const x = rangeMeans(daily, 3);
    const out = new Float64Array(long.length).fill(-1);
    gjrxRange(long, daily, x, out, 0, 3, p);
    gjrxRange(long, daily, x, out, 3, long.length, p);
    // Day 2 has 2 returns, but x_1 needs e_{−1}; day 3 is the first (T + m − 2 = 3 with r_0 undefined).
    expect(Array.from(out.subarray(0, 3))).toEqual([Number.NaN, Number.NaN, Number.NaN]);
    expect(out[3]).toBe(gjrxVolatility(long, daily, x, 3, p));
    expect(Number.isFinite(out[5])).toBe(true);
  });
});
