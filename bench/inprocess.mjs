// Baseline of (d): onnxruntime-node called in-process on the same 1,000 rows, one session
// thread as the server uses, the way an in-process caller would: JS rows in, tensor built,
// run, predictions read back into a JS array. Prints rows per second.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";

const [dir, model = "ensemble", seconds = "10"] = process.argv.slice(2);
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
const rows = JSON.parse(readFileSync(process.env.ROWS_FILE, "utf8")).samples;
const width = manifest.features.names.length; // window × channels
const session = await ort.InferenceSession.create(join(dir, manifest.models[model].file), { intraOpNumThreads: 1, interOpNumThreads: 1 });
const predict = async () => {
  const data = new Float32Array(rows.length * width);
  rows.forEach((row, i) => data.set(row, i * width));
  const out = await session.run({ features: new ort.Tensor("float32", data, [rows.length, width]) });
  return Array.from(out.prediction.data);
};
for (let i = 0; i < 20; i++) await predict();
let runs = 0;
const started = performance.now();
while (performance.now() - started < Number(seconds) * 1000) {
  await predict();
  runs++;
}
const elapsed = (performance.now() - started) / 1000;
console.log(JSON.stringify({ rows_per_second: (runs * rows.length) / elapsed, runs, elapsed }));
