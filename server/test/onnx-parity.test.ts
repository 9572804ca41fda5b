import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { SESSION_OPTIONS } from "../src/inference/bundle.js";
import type { ModelEntry } from "../src/schemas/manifest.js";
import { type NamedTestBundle, namedParityBundles, parityBundles, readNamedBundle, withinFramework } from "./bundles.js";
import { namedBundle } from "./named-bundle.js";

// The vectors hold onnxruntime's (Python) float32 outputs; the same runtime version in
// Node, with the server's session options, must reproduce them to float32 rounding. (With
// several intra-op threads a tree ensemble sums in another order: a few ulps off.)
const TOLERANCE = 1e-6;

/** A model's answers to feature rows in onnxruntime-node, with the server's session options. */
async function answers(dir: string, entry: ModelEntry, rows: readonly (readonly number[])[]): Promise<number[]> {
  const session = await ort.InferenceSession.create(join(dir, entry.file), SESSION_OPTIONS);
  try {
    expect(session.inputNames).toEqual([entry.inputs[0]!.name]);
    expect(session.outputNames).toEqual([entry.outputs[0]!.name]);
    const width = entry.inputs[0]!.shape[1]!;
    const output = await session.run({ [session.inputNames[0]!]: new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, width]) });
    return Array.from(output[session.outputNames[0]!]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

const worst = (got: number[], expected: number[]) => {
  expect(got.length).toBe(expected.length);
  return Math.max(...got.map((v, i) => Math.abs(v - expected[i]!)));
};

describe("every model of every default bundle reproduces its parity vectors in onnxruntime-node", () => {
  for (const bundle of parityBundles()) {
    for (const [model, entry] of Object.entries(bundle.manifest.models)) {
      it(`${bundle.manifest.name} (${bundle.dir}) / ${model}`, async () => {
        for (const c of bundle.cases) expect(worst(await answers(bundle.dir, entry, c.features), c.predictions[model]!), c.name).toBeLessThanOrEqual(TOLERANCE);
      });
    }
  }
});

/**
 * Per model and case of an imported bundle, where ONNX Runtime here departs from the answers the
 * import recorded: its own (onnx_predictions, to float32 rounding) and the original framework's
 * (predictions, within the contract's 1e-5 relative + 1e-6).
 */
async function importGaps(bundle: NamedTestBundle): Promise<string[]> {
  const gaps: string[] = [];
  for (const [model, entry] of Object.entries(bundle.manifest.models)) {
    for (const c of bundle.cases) {
      const got = await answers(bundle.dir, entry, c.features);
      if (worst(got, c.onnx_predictions[model]!) > TOLERANCE) gaps.push(`${model} / ${c.name}: not ONNX Runtime's answers at import`);
      const off = got.findIndex((v, i) => !withinFramework(v, c.predictions[model]![i]!));
      if (off >= 0) gaps.push(`${model} / ${c.name}[${off}]: ${got[off]} is not the framework's ${c.predictions[model]![off]}`);
    }
  }
  return gaps;
}

describe("every model of an imported bundle answers as its original framework did, in onnxruntime-node", () => {
  // The fixture written here, and any imported bundle named in EXTRA_BUNDLES.
  it.each([["the test fixture", ""], ...namedParityBundles().map((b) => [`${b.manifest.name} (${b.dir})`, b.dir])])("%s", async (_label, dir) => {
    expect(await importGaps(readNamedBundle(dir || (await namedBundle())))).toEqual([]);
  });

  it("a bundle whose framework answers differ by 1e-3 relative fails the check, model by model", async () => {
    const gaps = await importGaps(readNamedBundle(await namedBundle({ spoilPredictions: 1.001 })));
    expect(gaps.map((g) => g.split(" / ")[0])).toEqual(["xgboost", "lstm", "transformer", "ensemble"]);
  });
});
