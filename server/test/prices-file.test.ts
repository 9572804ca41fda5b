import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { historyBody, PriceFileError, readPrices } from "../src/client/prices.js";

const dir = mkdtempSync(join(tmpdir(), "prices-"));
let n = 0;
/** A CSV file with these lines. */
const file = (...lines: string[]) => {
  const path = join(dir, `p${n++}.csv`);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
};

describe("the CLI's price files (--prices)", () => {
  it("reads Close, and Open, High, Low where present, ignoring other columns and blank lines", () => {
    const path = file("Date,Open,High,Low,Close,Volume", "2020-01-02,100,102,99,101,5000", "", "2020-01-03,101,103,100,102.5,4000");
    expect(readPrices(path)).toEqual({ open: [100, 101], high: [102, 103], low: [99, 100], close: [101, 102.5] });
    expect(readPrices(file("date,close", "2020-01-02,7", "2020-01-03,8"))).toEqual({ close: [7, 8] });
  });

  it("with Adj Close, the close is adjusted and that day's Open, High and Low are scaled alike", () => {
    const prices = readPrices(file("Date,Open,High,Low,Close,Adj Close", "2020-01-02,100,104,96,102,51"));
    expect(prices).toEqual({ open: [50], high: [52], low: [48], close: [51] });
  });

  it("refuses a file without Close, a price that is not positive, and dates that do not increase, naming the line", () => {
    const refused = (path: string) => {
      try {
        readPrices(path);
      } catch (error) {
        expect(error).toBeInstanceOf(PriceFileError);
        return (error as Error).message.replace(dir, "DIR");
      }
      throw new Error("accepted");
    };
    expect(refused(file("Date,Open", "2020-01-02,1"))).toBe("DIR/p3.csv: no Close column in its header (Date,Open)");
    expect(refused(file("Date,Close", "2020-01-02,1", "2020-01-03,-2"))).toBe('DIR/p4.csv line 3: close "-2" is not a positive number');
    expect(refused(file("Date,Close", "2020-01-03,1", "2020-01-02,2"))).toBe("DIR/p5.csv line 3: date 2020-01-02 does not follow the one before (oldest first)");
    expect(refused(file("Date,Close"))).toBe("DIR/p6.csv: no prices below its header");
    expect(refused(join(dir, "absent.csv"))).toBe("cannot read DIR/absent.csv: ENOENT");
  });

  it("is sent as the bundle reads it: closes as prices, or bars of its fields as columns; the last days only when asked", () => {
    const prices = { open: [1, 2, 3], high: [2, 3, 4], low: [0.5, 1, 2], close: [1.5, 2.5, 3.5] };
    expect(historyBody(prices, ["close"])).toEqual({ prices: [1.5, 2.5, 3.5] });
    expect(historyBody(prices, ["high", "low", "close"], 2)).toEqual({ bars: { high: [3, 4], low: [1, 2], close: [2.5, 3.5] } });
    expect(historyBody(prices, ["open", "high", "low", "close"])).toEqual({ bars: prices });
    expect(() => historyBody({ close: [1] }, ["open", "high", "low", "close"])).toThrow("the bundle reads open, high, low, close of each day (GET /models features.inputs); the file has no open, high, low");
  });
});
