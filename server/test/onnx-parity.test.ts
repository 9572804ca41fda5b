import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { SESSION_OPTIONS } from "../src/inference/bundle.js";
import { parityBundles } from "./bundles.js";

// The vectors hold onnxruntime's (Python) float32 outputs; the same runtime version in
// Node, with the server's session options, must reproduce them to float32 rounding. (With
// several intra-op threads a tree ensemble sums in another order: a few ulps off.)
const TOLERANCE = 1e-6;

describe("every model of every default bundle reproduces its parity vectors in onnxruntime-node", () => {
  for (const bundle of parityBundles()) {
    for (const [model, entry] of Object.entries(bundle.manifest.models)) {
      it(`${bundle.manifest.name} (${bundle.dir}) / ${model}`, async () => {
        const session = await ort.InferenceSession.create(join(bundle.dir, entry.file), SESSION_OPTIONS);
        expect(session.inputNames).toEqual([entry.inputs[0]!.name]);
        expect(session.outputNames).toEqual([entry.outputs[0]!.name]);
        for (const c of bundle.cases) {
          const width = bundle.manifest.features.names.length; // window × channels
          const input = new ort.Tensor("float32", Float32Array.from(c.features.flat()), [c.features.length, width]);
          const output = await session.run({ [session.inputNames[0]!]: input });
          const got = Array.from(output[session.outputNames[0]!]!.data as Float32Array);
          const expected = c.predictions[model]!;
          expect(got.length).toBe(expected.length);
          const worst = Math.max(...got.map((v, i) => Math.abs(v - expected[i]!)));
          expect(worst, `${c.name}`).toBeLessThanOrEqual(TOLERANCE);
        }
        await session.release();
      });
    }
  }
});
