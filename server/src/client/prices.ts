import { readFileSync } from "node:fs";
import type { BarField } from "../schemas/bars.js";

/**
 * A CSV of daily prices for the CLI's --prices, read as the pipeline reads one (README:
 * train-csv): a header, oldest day first; Close, and Open, High, Low where present; with an
 * Adj Close column the close is the adjusted one and that day's Open, High and Low are scaled
 * by Adj Close ÷ Close. A Date column, when there is one, must increase. Other columns (Volume)
 * are ignored. What is sent is the bundle's to say: prices, or bars of the fields it reads.
 */

export type PriceColumns = { close: number[] } & { [F in Exclude<BarField, "close">]?: number[] };

/** A price file that cannot be used: the message names the file and line. */
export class PriceFileError extends Error {}

const HEADERS: Record<string, BarField | "adj" | "date"> = { date: "date", open: "open", high: "high", low: "low", close: "close", "adj close": "adj", adj_close: "adj" };

/** The file's columns, adjusted; throws PriceFileError saying what is wrong and where. */
export function readPrices(path: string): PriceColumns {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new PriceFileError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const lines = text.split(/\r?\n/);
  const header = lines[0]!.split(",").map((h) => HEADERS[h.trim().replace(/^"|"$/g, "").toLowerCase()]);
  const at = (name: BarField | "adj" | "date") => header.indexOf(name);
  if (at("close") < 0) throw new PriceFileError(`${path}: no Close column in its header (${lines[0]})`);
  const fields = (["open", "high", "low", "close", "adj"] as const).filter((name) => at(name) >= 0);
  const columns = Object.fromEntries(fields.map((name) => [name, [] as number[]])) as Record<(typeof fields)[number], number[]>;
  let lastDate = Number.NEGATIVE_INFINITY;
  for (let i = 1; i < lines.length; i++) {
    if (!lines[i]!.trim()) continue;
    const cells = lines[i]!.split(",").map((c) => c.trim().replace(/^"|"$/g, ""));
    if (at("date") >= 0) {
      const date = Date.parse(cells[at("date")]!);
      if (!(date > lastDate)) throw new PriceFileError(`${path} line ${i + 1}: date ${cells[at("date")]} does not follow the one before (oldest first)`);
      lastDate = date;
    }
    for (const name of fields) {
      const value = Number(cells[at(name)]);
      if (!(value > 0 && Number.isFinite(value))) throw new PriceFileError(`${path} line ${i + 1}: ${name} ${JSON.stringify(cells[at(name)] ?? "")} is not a positive number`);
      columns[name].push(value);
    }
  }
  if (!columns.close.length) throw new PriceFileError(`${path}: no prices below its header`);
  const { adj, ...prices } = columns;
  if (!adj) return prices as PriceColumns;
  const scale = adj.map((a, t) => a / prices.close[t]!);
  return Object.fromEntries(Object.entries(prices).map(([name, column]) => [name, column.map((v, t) => v * scale[t]!)])) as PriceColumns;
}

/**
 * The last `days` days (all when undefined) as a request sends them to a bundle reading
 * `inputs` (GET /models features.inputs): {prices} of closes, or {bars} of those fields, as
 * columns; throws PriceFileError when the file lacks one.
 */
export function historyBody(prices: PriceColumns, inputs: readonly BarField[], days?: number): { prices: number[] } | { bars: Partial<Record<BarField, number[]>> } {
  const last = (column: number[]) => (days === undefined ? column : column.slice(-days));
  if (inputs.length === 1 && inputs[0] === "close") return { prices: last(prices.close) };
  const missing = inputs.filter((field) => !prices[field]);
  if (missing.length) throw new PriceFileError(`the bundle reads ${inputs.join(", ")} of each day (GET /models features.inputs); the file has no ${missing.join(", ")}`);
  return { bars: Object.fromEntries(inputs.map((field) => [field, last(prices[field]!)])) };
}
