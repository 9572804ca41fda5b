import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { manifestSchema, type Manifest } from "../src/schemas/manifest.js";

/** The default bundles committed under models/bundles, which every parity test covers. */
export const BUNDLES_DIR = resolve(import.meta.dirname, "../../models/bundles");

export interface ParityCase {
  name: string;
  prices: number[];
  denoised: (number | null)[];
  features: number[][];
  predictions: Record<string, number[]>;
  intervals: Record<string, { lower: number[]; upper: number[] }>;
}

export interface TestBundle {
  dir: string;
  manifest: Manifest;
  cases: ParityCase[];
}

export function defaultBundles(): TestBundle[] {
  return readdirSync(BUNDLES_DIR)
    .map((name) => join(BUNDLES_DIR, name))
    .filter((dir) => existsSync(join(dir, "manifest.json")))
    .map((dir) => ({
      dir,
      manifest: manifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))),
      cases: JSON.parse(readFileSync(join(dir, "vectors/parity.json"), "utf8")).cases as ParityCase[],
    }));
}
