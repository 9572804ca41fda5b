import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { PriceData } from "../src/features/channels.js";
import type { BarColumns } from "../src/schemas/bars.js";
import { type FeatureSpec, isNamed, manifestSchema, type Manifest } from "../src/schemas/manifest.js";

/** The default bundles committed under models/bundles, which every parity test covers. */
export const BUNDLES_DIR = resolve(import.meta.dirname, "../../models/bundles");

/** A computed bundle's parity case: its history is daily closes, or (a bundle that reads bars) bars as columns. */
export interface ParityCase {
  name: string;
  prices?: number[];
  bars?: BarColumns;
  denoised: (number | null)[];
  /** Per channel, its per-day values (null where undefined); in bundles with features.channels. */
  channels?: Record<string, (number | null)[]>;
  features: number[][];
  predictions: Record<string, number[]>;
  intervals: Record<string, { lower: number[]; upper: number[] }>;
}

/** A case's history as the feature code reads it. */
export const caseData = (c: ParityCase): PriceData => c.bars ?? c.prices!;
/** A case's history as a request sends it: {prices} or {bars}. */
export const caseRequest = (c: ParityCase) => (c.bars ? { bars: c.bars } : { prices: c.prices! });
/** A case's daily closes. */
export const caseCloses = (c: ParityCase): number[] => c.bars?.close ?? c.prices!;

/** A bundle that computes its features from prices (ours). */
export interface TestBundle {
  dir: string;
  manifest: Manifest & { features: FeatureSpec };
  cases: ParityCase[];
}

/** An imported bundle's parity case: feature rows, the original framework's predictions and ONNX Runtime's. */
export interface NamedParityCase {
  name: string;
  features: number[][];
  predictions: Record<string, number[]>;
  onnx_predictions: Record<string, number[]>;
}

/** An imported bundle: named features, sent by the caller. */
export interface NamedTestBundle {
  dir: string;
  manifest: Manifest;
  cases: NamedParityCase[];
}

type AnyBundle = { named: false; bundle: TestBundle } | { named: true; bundle: NamedTestBundle };

export function readBundle(dir: string): AnyBundle {
  const manifest = manifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
  const cases = JSON.parse(readFileSync(join(dir, "vectors/parity.json"), "utf8")).cases;
  return isNamed(manifest.features) ? { named: true, bundle: { dir, manifest, cases } } : { named: false, bundle: { dir, manifest: { ...manifest, features: manifest.features }, cases } };
}

/** An imported bundle's directory read as one; anything else fails the test. */
export function readNamedBundle(dir: string): NamedTestBundle {
  const read = readBundle(dir);
  if (!read.named) throw new Error(`${dir} does not hold named features`);
  return read.bundle;
}

const computedOnes = (bundles: AnyBundle[]) => bundles.flatMap((b) => (b.named ? [] : [b.bundle]));

export function defaultBundles(): TestBundle[] {
  return computedOnes(
    readdirSync(BUNDLES_DIR)
      .map((name) => join(BUNDLES_DIR, name))
      .filter((dir) => existsSync(join(dir, "manifest.json")))
      .map(readBundle),
  );
}

/** The bundles named in EXTRA_BUNDLES (directories, ":"-separated). A named directory that is not a bundle fails the run rather than silently checking less. */
const extraBundles = () => (process.env.EXTRA_BUNDLES ?? "").split(":").filter(Boolean).map((dir) => readBundle(resolve(dir)));

/**
 * The default bundles and those named in EXTRA_BUNDLES that compute their features, such as a
 * freshly trained bundle to check before it is committed.
 */
export function parityBundles(): TestBundle[] {
  return [...defaultBundles(), ...computedOnes(extraBundles())];
}

/** The imported bundles named in EXTRA_BUNDLES, such as one `wavelet-pipeline import` just wrote. */
export function namedParityBundles(): NamedTestBundle[] {
  return extraBundles().flatMap((b) => (b.named ? [b.bundle] : []));
}

/**
 * The contract's tolerance between ONNX Runtime's answer and the original framework's
 * (`predictions` of an imported bundle): 1e-5 relative plus 1e-6 absolute.
 */
export const withinFramework = (got: number, expected: number) => Math.abs(got - expected) <= 1e-5 * Math.abs(expected) + 1e-6;
