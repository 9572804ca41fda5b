import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { SESSION_OPTIONS } from "../src/inference/bundle.js";
import { RETURN_BUNDLE } from "./helpers.js";
import { linearModel } from "./linear-bundle.js";

/**
 * An imported ("named features") bundle written here, without the Python importer, in the
 * form /work/contract23.md gives `wavelet-pipeline import` (issue 23): manifest with
 * features.kind "named", no calibration unless asked, vectors/parity.json of feature rows with
 * `predictions` and `onnx_predictions`. Its graphs are real: xgboost is the default return
 * bundle's XGBoost graph (10 inputs); lstm, transformer and ensemble are linear graphs whose
 * every weight differs, so any change in the order of the features changes their answers.
 * The parity answers are onnxruntime-node's, computed here once: the Python side's tests prove
 * the graphs equal the original frameworks; these prove the server serves what ONNX Runtime
 * computes, from features put in the right order. `predictions` stand for the framework's own
 * (float64) answers: the same, off by a relative 2e-7, well within the contract's 1e-5.
 */

export const FEATURE_NAMES = ["rsi_14", "macd", "macd_signal", "bb_width", "atr_14", "obv_z", "vol_20", "ret_1", "ret_5", "skew_60"];

/** The parity rows: moderate values of both signs, a different mix in each row. */
export const PARITY_ROWS = Array.from({ length: 6 }, (_, r) => FEATURE_NAMES.map((_, k) => Math.round(1e6 * 0.8 * Math.sin(1.7 * r + 0.9 * k + 0.3)) / 1e6));

const FRAMEWORK_OFFSET = 2e-7;

export interface NamedBundleOptions {
  name?: string;
  version?: string;
  names?: readonly string[];
  /** With calibration data: every model's calibration, target_range and feature_range, as `--calibration FILE.csv` gives. */
  calibrated?: boolean;
  /** The models the user had (default all four). */
  models?: readonly string[];
  /** Multiplies every parity prediction (an importer that got the framework's answers wrong). */
  spoilPredictions?: number;
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** ONNX Runtime's answers for `rows`, with the server's session options. */
async function run(graph: string, rows: readonly (readonly number[])[]): Promise<number[]> {
  const session = await ort.InferenceSession.create(graph, SESSION_OPTIONS);
  const width = rows[0]!.length;
  const out = await session.run({ features: new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, width]) });
  await session.release();
  return Array.from(out.prediction!.data as Float32Array);
}

/** Writes the bundle to a fresh temporary directory and returns it (its name as the directory's). */
export async function namedBundle(opts: NamedBundleOptions = {}): Promise<string> {
  const name = opts.name ?? "guide-import";
  const names = opts.names ?? FEATURE_NAMES;
  const width = names.length;
  const dir = join(mkdtempSync(join(tmpdir(), "bundle-")), name);
  mkdirSync(join(dir, "vectors"), { recursive: true });
  // Distinct weights of both signs, each model its own.
  const linear = (seed: number) => linearModel(Array.from({ length: width }, (_, k) => ((k + 1) * (k % 2 ? -1 : 1) * seed) / 40), 0.01 * seed);
  const all = {
    xgboost: { file: "xgboost_optimized.onnx", format: "xgboost-ubjson", graph: () => linear(4) },
    lstm: { file: "lstm_optimized.onnx", format: "torch-state-dict", graph: () => linear(1) },
    transformer: { file: "transformer_optimized.onnx", format: "torch-state-dict", graph: () => linear(2) },
    ensemble: { file: "ensemble_optimized.onnx", format: "ensemble-weights", graph: () => linear(3) },
  };
  const models = opts.models ?? Object.keys(all);
  const graphs = Object.fromEntries(Object.entries(all).filter(([model]) => models.includes(model)));
  for (const [model, { file, graph }] of Object.entries(graphs)) {
    if (model === "xgboost" && width === 10) copyFileSync(join(RETURN_BUNDLE, file), join(dir, file));
    else writeFileSync(join(dir, file), graph());
  }

  const rows = PARITY_ROWS.map((row) => Array.from({ length: width }, (_, k) => row[k % row.length]!));
  const onnx: Record<string, number[]> = {};
  for (const [model, { file }] of Object.entries(graphs)) onnx[model] = await run(join(dir, file), rows);
  const spoil = opts.spoilPredictions ?? 1;
  const framework = Object.fromEntries(Object.entries(onnx).map(([m, values]) => [m, values.map((v) => v * (1 + FRAMEWORK_OFFSET) * spoil)]));
  writeFileSync(
    join(dir, "vectors/parity.json"),
    JSON.stringify({
      description: "feature rows through each original model and through its ONNX graph",
      kind: "named",
      cases: [{ name: "fixture-rows", features: rows, predictions: framework, onnx_predictions: onnx }],
    }),
  );
  writeFileSync(join(dir, "feature_names.json"), JSON.stringify(names));

  const files: Record<string, string> = {};
  for (const file of [...Object.values(graphs).map((g) => g.file), "feature_names.json", "vectors/parity.json"]) {
    files[file] = sha256(readFileSync(join(dir, file)));
  }
  const signature = {
    inputs: [{ name: "features", type: "float32", shape: [null, width] }],
    outputs: [{ name: "prediction", type: "float32", shape: [null, 1] }],
  };
  const calibration = { level: 0.9, scale: "prediction", scale_floor: 0.05, quantile: 1.5, n: 200 };
  const manifest = {
    schema_version: 1,
    name,
    version: opts.version ?? "1.0.0",
    created: "2026-12-07T12:00:00Z",
    description: "a guide user's models, imported",
    target: { name: "target", kind: "return", horizon: 1, units: "as trained", link: "identity" },
    features: { kind: "named", names, sequence_length: 1 },
    source: { kind: "import", dir_files: { "xgboost_optimized.ubj": sha256("ubj"), "feature_names.json": files["feature_names.json"] }, pickle: false },
    default_model: models.includes("ensemble") ? "ensemble" : models[0],
    models: Object.fromEntries(
      Object.entries(graphs).map(([model, { file, format }]) => [
        model,
        {
          file,
          sha256: files[file],
          bytes: statSync(join(dir, file)).size,
          precision: "float32",
          ...signature,
          source: { format, file: file.replace(".onnx", format === "xgboost-ubjson" ? ".ubj" : ".pth"), sha256: sha256(format) },
          ...(opts.calibrated ? { calibration } : {}),
        },
      ]),
    ),
    conformal: opts.calibrated
      ? { level: 0.9, lower_bound_zero: false }
      : { level: 0.9, lower_bound_zero: false, available: false, why: "imported without --calibration data" },
    ...(opts.calibrated
      ? { target_range: { min: -3, max: 3 }, feature_range: { min: Array(width).fill(-0.9), max: Array(width).fill(0.9) } }
      : {}),
    files,
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  return dir;
}
