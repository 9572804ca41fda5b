import { describe, expect, it } from "vitest";
import { formatQuantity } from "../src/api/quantity.js";

/** Expectations are resource.NewMilliQuantity(v × 1000, DecimalSI).String() of k8s.io/apimachinery v0.34.12. */
describe("formatQuantity", () => {
  it.each([
    [0, "0"],
    [-0, "0"],
    [0.0004, "0"],
    [0.001, "1m"],
    [0.1, "100m"],
    [0.999, "999m"],
    [1, "1"],
    [1.001, "1001m"],
    [1.5, "1500m"],
    [12, "12"],
    [12.3456, "12346m"],
    [100, "100"],
    [1000, "1k"],
    [12_000, "12k"],
    [12_300, "12300"],
    [120_000, "120k"],
    [123_456.789, "123456789m"],
    [1e9, "1G"],
    [1_234_567_890.123, "1234567890123m"],
    [1e12, "1T"],
    [1e15, "1P"],
  ])("writes %d as %j", (value, expected) => {
    expect(formatQuantity(value)).toBe(expected);
  });

  it.each([-1, -0.001, NaN, Infinity, -Infinity])("refuses %d", (value) => {
    expect(() => formatQuantity(value)).toThrow(RangeError);
  });
});
