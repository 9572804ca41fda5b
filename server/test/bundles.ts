import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { manifestSchema, type Manifest } from "../src/schemas/manifest.js";

/** The default bundles committed under models/bundles, which every parity test covers. */
export const BUNDLES_DIR = resolve(import.meta.dirname, "../../models/bundles");

export interface ParityCase {
  name: string;
  prices: number[];
  denoised: (number | null)[];
  /** Per channel, its per-day values (null where undefined); in bundles with features.channels. */
  channels?: Record<string, (number | null)[]>;
  features: number[][];
  predictions: Record<string, number[]>;
  intervals: Record<string, { lower: number[]; upper: number[] }>;
}

export interface TestBundle {
  dir: string;
  manifest: Manifest;
  cases: ParityCase[];
}

function readBundle(dir: string): TestBundle {
  return {
    dir,
    manifest: manifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))),
    cases: JSON.parse(readFileSync(join(dir, "vectors/parity.json"), "utf8")).cases as ParityCase[],
  };
}

export function defaultBundles(): TestBundle[] {
  return readdirSync(BUNDLES_DIR)
    .map((name) => join(BUNDLES_DIR, name))
    .filter((dir) => existsSync(join(dir, "manifest.json")))
    .map(readBundle);
}

/**
 * The default bundles and those named in EXTRA_BUNDLES (directories, ":"-separated), such as
 * a freshly trained bundle to check before it is committed. A named directory that is not a
 * bundle fails the run rather than silently checking less.
 */
export function parityBundles(): TestBundle[] {
  const extra = (process.env.EXTRA_BUNDLES ?? "").split(":").filter(Boolean);
  return [...defaultBundles(), ...extra.map((dir) => readBundle(resolve(dir)))];
}
