import { describe, expect, it } from "vitest";
import { type GarchParams, gjrRange, gjrVolatility } from "../src/features/garch.js";

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
