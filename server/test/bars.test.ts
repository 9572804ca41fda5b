import { describe, expect, it } from "vitest";
import { type Bar, barColumns, checkBars, closesOnly, daysOf, fieldsOf } from "../src/schemas/bars.js";
import { REFUSED_INPUT } from "../src/schemas/numbers.js";

type Issue = { message: string; path: (string | number)[]; params?: Record<string, unknown> };

/** The issues checkBars reports for `v` (at most one: it stops at the first). */
function check(v: unknown, minDays = 2, maxDays = 10): Issue[] {
  const ctx = { issues: [] as Issue[] };
  checkBars(ctx, v, minDays, maxDays, ["bars"]);
  return ctx.issues;
}
const only = (v: unknown, minDays?: number) => {
  const issues = check(v, minDays);
  expect(issues).toHaveLength(1);
  return { at: issues[0]!.path.join("."), message: issues[0]!.message };
};

const GOOD: Bar[] = [
  { open: 100, high: 102, low: 99, close: 101 },
  { open: 101, high: 103, low: 100, close: 100.5 },
  { open: 100.5, high: 101, low: 98, close: 99 },
];

describe("bars in a request", () => {
  it("accepts ordered bars, with opens or without, as objects or as columns", () => {
    expect(check(GOOD)).toEqual([]);
    expect(check(GOOD.map(({ open: _, ...bar }) => bar))).toEqual([]);
    expect(check(barColumns(GOOD, ["open", "high", "low", "close"]))).toEqual([]);
    expect(check({ high: [2, 2], low: [1, 1], close: [1.5, 2] })).toEqual([]);
    // A flat day (all four equal) is a bar too.
    expect(check([{ open: 5, high: 5, low: 5, close: 5 }, GOOD[0]])).toEqual([]);
  });

  it("names the bar that breaks low ≤ open, close ≤ high, and how", () => {
    const broken = (i: number, bar: Partial<Bar>) => GOOD.map((b, k) => (k === i ? { ...b, ...bar } : b));
    expect(only(broken(2, { high: 98.5 }))).toEqual({ at: "bars.2", message: "high 98.5 is below close 99" });
    expect(only(broken(1, { close: 99 }))).toEqual({ at: "bars.1", message: "low 100 is above close 99" });
    expect(only(broken(0, { open: 103 }))).toEqual({ at: "bars.0", message: "high 102 is below open 103" });
    expect(only(broken(0, { open: 98 }))).toEqual({ at: "bars.0", message: "low 99 is above open 98" });
    expect(only(broken(1, { low: 104 }))).toEqual({ at: "bars.1", message: "high 103 is below low 104" });
    // The same bar as columns: named as that day's bar.
    const columns = barColumns(broken(2, { high: 98.5 }), ["open", "high", "low", "close"]);
    expect(only(columns)).toEqual({ at: "bars.2", message: "high 98.5 is below close 99" });
  });

  it("refuses prices that are not positive finite numbers, naming the bar and field (counted as refused input)", () => {
    const issues = check(GOOD.map((b, k) => (k === 1 ? { ...b, low: 0 } : b)));
    expect(issues.map((i) => [i.path.join("."), i.message])).toEqual([["bars.1.low", "must be a finite number from 1e-10 to 1000000000000000"]]);
    expect(issues[0]!.params?.[REFUSED_INPUT]).toBe(true);
    expect(only(GOOD.map((b, k) => (k === 2 ? { ...b, close: "99" } : b)))).toEqual({ at: "bars.2.close", message: "expected a number, got string" });
    expect(only({ high: [2, 2], low: [1, null], close: [1.5, 2] })).toEqual({ at: "bars.low.1", message: "expected a number, got null" });
    expect(only([GOOD[0], { open: 1.5, high: 2, low: 1 }])).toEqual({ at: "bars.1.close", message: "expected a number, got undefined" });
  });

  it("refuses unknown fields, opens on some bars only, columns of other lengths, and the wrong number of days", () => {
    expect(only([GOOD[0], { ...GOOD[1], volume: 3 }])).toEqual({ at: "bars.1.volume", message: "unknown field (a bar has open, high, low and close)" });
    expect(only([GOOD[0], { high: 2, low: 1, close: 1.5 }]).message).toMatch(/^open missing, as the first bar has one/);
    expect(only([{ high: 2, low: 1, close: 1.5 }, GOOD[0]]).message).toMatch(/^open given, as the first bar has none/);
    expect(only({ high: [2, 2, 2], low: [1, 1], close: [1.5, 2] })).toEqual({ at: "bars.high", message: "expected 2 to 10 prices, as many as close has; got 3" });
    expect(only({ high: [2, 2], close: [1.5, 2] })).toEqual({ at: "bars.low", message: "expected an array of 2 to 10 prices" });
    expect(only({ high: [2, 2], low: [1, 1], close: [1.5, 2], adj_close: [1, 1] })).toEqual({ at: "bars.adj_close", message: "unknown field (bars as columns have open, high, low and close)" });
    expect(only(GOOD, 4)).toEqual({ at: "bars", message: "expected 4 to 10 bars, got 3" });
    expect(only([GOOD[0], [1, 2, 3, 4]])).toEqual({ at: "bars.1", message: "expected a bar {open?, high, low, close}" });
    expect(only("bars").message).toMatch(/^expected an array of bars/);
  });

  it("as the feature code reads them: columns of the fields asked for; the fields and days they hold", () => {
    expect(barColumns(GOOD, ["high", "low", "close"])).toEqual({ high: [102, 103, 101], low: [99, 100, 98], close: [101, 100.5, 99] });
    expect(barColumns({ open: [1], high: [2], low: [1], close: [1] }, ["close"])).toEqual({ close: [1] });
    expect(fieldsOf(GOOD)).toEqual(["open", "high", "low", "close"]);
    expect(fieldsOf({ high: [2], low: [1], close: [1] })).toEqual(["high", "low", "close"]);
    expect([daysOf(GOOD), daysOf({ high: [2], low: [1], close: [1] })]).toEqual([3, 1]);
    expect([closesOnly(["close"]), closesOnly(["high", "low", "close"])]).toEqual([true, false]);
  });
});
