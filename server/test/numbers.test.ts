import { describe, expect, it } from "vitest";
import { FEATURES, PRICES, REFUSED_INPUT, refuse, sizeText } from "../src/schemas/numbers.js";

describe("the numbers requests carry", () => {
  it("refuse reports a value that is not a bounded number, where it is; out of bounds or non-finite counts as refused input", () => {
    const ctx = { issues: [] as { message: string; path: unknown[]; params?: Record<string, unknown> }[] };
    expect(refuse(ctx, 1, PRICES, ["prices", 0])).toBe(false);
    expect(refuse(ctx, 0, PRICES, ["prices", 1])).toBe(true);
    expect(refuse(ctx, Number.NaN, FEATURES, ["features", 2])).toBe(true);
    expect(refuse(ctx, "1", FEATURES, ["features", 3])).toBe(true);
    expect(ctx.issues.map((i) => [i.path.join("."), i.message, i.params?.[REFUSED_INPUT] ?? false])).toEqual([
      ["prices.1", "must be a finite number from 1e-10 to 1000000000000000", true],
      ["features.2", "must be a finite number from -1000000 to 1000000", true],
      ["features.3", "expected a number, got string", false],
    ]);
  });

  it("sizeText says an exact size or a range", () => {
    expect([sizeText(10, 10), sizeText(42, 100000)]).toEqual(["exactly 10", "42 to 100000"]);
  });
});
