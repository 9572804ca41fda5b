import { z } from "zod";
import { type Issues, type Path, PRICES, refuse, sizeText } from "./numbers.js";

/**
 * Daily bars {open, high, low, close}: what a bundle whose features read price ranges takes
 * instead of closes (features.inputs), as requests send them and as the feature code reads
 * them. A request sends one object per day, oldest first, or the same as columns (one array
 * per field, as the pipeline's parity vectors hold them); both are checked here in one loop,
 * and an error names the day.
 */

export const BAR_FIELDS = ["open", "high", "low", "close"] as const;
export type BarField = (typeof BAR_FIELDS)[number];

/** Whether a bundle's inputs (features.inputs) are each day's close only: it takes prices, and reads the closes of bars. */
export const closesOnly = (inputs: readonly BarField[]) => inputs.length === 1 && inputs[0] === "close";

/** Bars as the feature code reads them: one array per field, aligned by day; only close is always there. */
export type Bars = { readonly close: readonly number[] } & { readonly [F in Exclude<BarField, "close">]?: readonly number[] };

/** One day's bar in a request. */
export type Bar = { open?: number; high: number; low: number; close: number };
/** A request's bars: one object per day, or columns. */
export type BarsInput = Bar[] | Bars;

/** Columnar bars in the pipeline's parity vectors (vectors/parity.json): close, high and low, and open where the bundle reads it. */
export const barColumnsSchema = z.object({
  open: z.array(z.number()).optional(),
  high: z.array(z.number()),
  low: z.array(z.number()),
  close: z.array(z.number()),
});
export type BarColumns = z.infer<typeof barColumnsSchema>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** What is wrong with one day's prices (each already a positive number), or undefined: low ≤ open, close ≤ high. */
function disorder(high: number, low: number, close: number, open: number | undefined): string | undefined {
  if (high < low) return `high ${high} is below low ${low}`;
  for (const [name, value] of [["close", close], ["open", open]] as const) {
    if (value === undefined) continue;
    if (value > high) return `high ${high} is below ${name} ${value}`;
    if (value < low) return `low ${low} is above ${name} ${value}`;
  }
  return undefined;
}

/** Checks one object per day; stops at the first problem. */
function checkRows(ctx: Issues, v: unknown[], path: Path): void {
  const withOpen = isObject(v[0]) && v[0].open !== undefined;
  for (let i = 0; i < v.length; i++) {
    const bar = v[i];
    const at = [...path, i];
    if (!isObject(bar)) {
      ctx.issues.push({ code: "custom", message: "expected a bar {open?, high, low, close}", input: bar, path: at });
      return;
    }
    const unknown = Object.keys(bar).find((key) => !(BAR_FIELDS as readonly string[]).includes(key));
    if (unknown !== undefined) {
      ctx.issues.push({ code: "custom", message: "unknown field (a bar has open, high, low and close)", input: bar, path: [...at, unknown] });
      return;
    }
    // All bars have an open or none has: a series with some is a mistake a model would not see.
    if ((bar.open !== undefined) !== withOpen) {
      ctx.issues.push({ code: "custom", message: withOpen ? "open missing, as the first bar has one: every bar has an open or none" : "open given, as the first bar has none: every bar has an open or none", input: bar, path: at });
      return;
    }
    for (const field of BAR_FIELDS) if ((field !== "open" || withOpen) && refuse(ctx, bar[field], PRICES, [...at, field])) return;
    const problem = disorder(bar.high as number, bar.low as number, bar.close as number, bar.open as number | undefined);
    if (problem) {
      ctx.issues.push({ code: "custom", message: problem, input: bar, path: at });
      return;
    }
  }
}

/** Checks columns of one length (minDays..maxDays); stops at the first problem. */
function checkColumns(ctx: Issues, v: Record<string, unknown>, minDays: number, maxDays: number, path: Path): void {
  const unknown = Object.keys(v).find((key) => !(BAR_FIELDS as readonly string[]).includes(key));
  if (unknown !== undefined) {
    ctx.issues.push({ code: "custom", message: "unknown field (bars as columns have open, high, low and close)", input: v, path: [...path, unknown] });
    return;
  }
  const fields = BAR_FIELDS.filter((field) => field !== "open" || v.open !== undefined);
  for (const field of fields) {
    const column = v[field];
    if (!Array.isArray(column)) {
      ctx.issues.push({ code: "custom", message: `expected an array of ${sizeText(minDays, maxDays)} prices`, input: column, path: [...path, field] });
      return;
    }
    if (column.length < minDays || column.length > maxDays || column.length !== (v.close as unknown[] | undefined)?.length) {
      ctx.issues.push({ code: "custom", message: `expected ${sizeText(minDays, maxDays)} prices, as many as close has; got ${column.length}`, input: column, path: [...path, field] });
      return;
    }
  }
  const [open, high, low, close] = BAR_FIELDS.map((field) => v[field] as unknown[] | undefined);
  for (let i = 0; i < close!.length; i++) {
    for (const field of fields) if (refuse(ctx, (v[field] as unknown[])[i], PRICES, [...path, field, i])) return;
    const problem = disorder(high![i] as number, low![i] as number, close![i] as number, open?.[i] as number | undefined);
    if (problem) {
      // Named as the day's bar would be (bars[i]), whichever form carried it.
      ctx.issues.push({ code: "custom", message: problem, input: close![i], path: [...path, i] });
      return;
    }
  }
}

/**
 * Reports the first problem of a request's bars: between minDays and maxDays of them, every
 * price a positive bounded number, low ≤ open, close ≤ high. Which fields the serving bundle
 * reads is its to check (a reload may change it); here only that all bars have an open or none.
 */
export function checkBars(ctx: Issues, v: unknown, minDays: number, maxDays: number, path: Path = []): void {
  if (isObject(v)) return checkColumns(ctx, v, minDays, maxDays, path);
  if (!Array.isArray(v)) {
    ctx.issues.push({ code: "custom", message: "expected an array of bars {open?, high, low, close}, or columns {open?, high, low, close} of prices", input: v, path });
    return;
  }
  if (v.length < minDays || v.length > maxDays) {
    ctx.issues.push({ code: "custom", message: `expected ${sizeText(minDays, maxDays)} bars, got ${v.length}`, input: v, path });
    return;
  }
  checkRows(ctx, v, path);
}

/** How many days checked bars hold. */
export const daysOf = (bars: BarsInput): number => (Array.isArray(bars) ? bars.length : bars.close.length);

/** The fields every bar of a checked request carries. */
export const fieldsOf = (bars: BarsInput): BarField[] =>
  BAR_FIELDS.filter((field) => (Array.isArray(bars) ? bars[0]?.[field] : bars[field]) !== undefined);

/** Checked bars as columns of the given fields (each present: see fieldsOf). */
export function barColumns(bars: BarsInput, fields: readonly BarField[]): Bars {
  if (!Array.isArray(bars)) return Object.fromEntries(fields.map((field) => [field, bars[field]!])) as unknown as Bars;
  return Object.fromEntries(fields.map((field) => [field, bars.map((bar) => bar[field]!)])) as unknown as Bars;
}
