import type { BarField } from "../schemas/bars.js";
import type { Api } from "./http.js";

/** Where the CLI writes: the process's streams, or a test's buffers. */
export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether stderr is a terminal (a progress bar redraws in place). */
  tty: boolean;
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  get tty() {
    return process.stderr.isTTY === true;
  },
};

/**
 * What the served bundle's feature vector looks like (GET /models): `window` days of `channels`
 * values; named features (an imported bundle) are one vector, a stream's window of them all.
 * A bundle that computes its features says from how many days (`minPrices`) and what each day
 * carries (`inputs`: closes, or bar fields); a server from before bars reads closes.
 */
export interface Shape {
  window: number;
  channels: number;
  minPrices?: number | undefined;
  inputs: BarField[];
}

export async function shapeOf(api: Api): Promise<Shape> {
  const r = await api.call("GET", "/models");
  const features = (r.json as { features?: { window?: number; channels?: string[]; names: string[]; min_prices?: number; inputs?: BarField[] } }).features;
  if (r.status !== 200 || !features) throw new Error(`GET /models answered ${r.status}: no bundle to learn the feature shape from`);
  return { window: features.window ?? features.names.length, channels: features.channels?.length ?? 1, minPrices: features.min_prices, inputs: features.inputs ?? ["close"] };
}

/**
 * A made-up feature value in [0.1, 0.8]: positive, so it fits every channel (a return may be
 * positive; a variance, an energy or a volatility must be, or a model may answer non-finite).
 */
export const synthetic = (x: number): number => 0.45 + 0.35 * Math.sin(x);

/** A feature vector of the served shape that varies with i, so the cache does not answer. */
export function sample(i: number, shape: Shape): number[] {
  return Array.from({ length: shape.window * shape.channels }, (_, j) => synthetic(i * 0.37 + j));
}
