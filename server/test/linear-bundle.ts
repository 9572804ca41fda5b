import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { RETURN_BUNDLE } from "./helpers.js";

/**
 * A multi-channel bundle that exists whatever the pipeline has committed: the return
 * bundle's manifest with six channels (features-spec v2) and, for every model, one real ONNX
 * graph, a linear map of the 60 features written here as protobuf (no ONNX library in Node).
 * onnxruntime runs it like any trained graph, so the server's multi-channel paths (schemas,
 * streams, intervals, drift) are tested end to end without a trained bundle.
 */

/** Manifest JSON as tests edit it. */
export type Json = Record<string, any>;

export const lags = (stem: string, window: number) => Array.from({ length: window }, (_, i) => `${stem}_lag${window - 1 - i}`);

/**
 * The return bundle's feature settings with channels dn_ret, ret, wav_e1, wav_e2, wav_es,
 * gjr_vol. Histories (in returns): dn_ret 32, ret 1, Haar wav_e1 5 + 2 − 1 = 6, wav_e2 and
 * wav_es 5 + 4 − 1 = 8, gjr_vol 64; so min_prices = 10 + 64 = 74.
 */
export function multiChannelFeatures(): Json {
  const features = JSON.parse(readFileSync(join(RETURN_BUNDLE, "manifest.json"), "utf8")).features;
  const channels = ["dn_ret", "ret", "wav_e1", "wav_e2", "wav_es", "gjr_vol"];
  return {
    ...features,
    channels,
    names: channels.flatMap((c) => lags(c, 10)),
    min_prices: 74,
    energy: { levels: 2, span: 5 },
    garch: { kind: "gjr", omega: 0.02, alpha: 0.01, gamma: 0.2, beta: 0.85, trailing: 64, horizon: 5 },
  };
}

/**
 * The return bundle's feature settings with range channels from daily bars (features-spec v2,
 * as the pipeline's FeatureSpec.describe writes them): dn_ret, rng_1d, rng_5d, rng_w1, rng_v1,
 * gjr_vol, gjrx_vol, read from bars {open, high, low, close} (Garman–Klass) or, with
 * "parkinson", {high, low, close}. Histories: dn_ret 32, rng_1d 1, rng_5d 5, Haar rng_w1 and
 * rng_v1 (2 − 1)(2 − 1) + 1 = 2, gjr_vol 40, gjrx_vol 40 + 5 − 1 = 44; so min_prices = 10 + 44 = 54.
 */
export function rangeFeatures(estimator: "garman_klass" | "parkinson" = "garman_klass"): Json {
  const features = JSON.parse(readFileSync(join(RETURN_BUNDLE, "manifest.json"), "utf8")).features;
  const channels = ["dn_ret", "rng_1d", "rng_5d", "rng_w1", "rng_v1", "gjr_vol", "gjrx_vol"];
  return {
    ...features,
    channels,
    names: channels.flatMap((c) => lags(c, 10)),
    min_prices: 54,
    inputs: estimator === "garman_klass" ? ["open", "high", "low", "close"] : ["high", "low", "close"],
    garch: { kind: "gjr", omega: 0.02, alpha: 0.01, gamma: 0.2, beta: 0.85, trailing: 40, horizon: 5, method: "…" },
    range: { estimator, log_floor: 1e-4, stale_open_rtol: 1e-9, levels: 1, method: "…" },
    garchx: { kind: "gjr-x", omega: 0.01, alpha: 0.02, gamma: 0.1, beta: 0.7, delta: 0.15, kappa: 0.9, span: 5, trailing: 40, horizon: 5, method: "…" },
  };
}

// Protobuf wire format: varint (0) and length-delimited (2) fields are all an ONNX model needs here.
function varint(n: number): number[] {
  const out: number[] = [];
  for (; n > 0x7f; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}
const field = (no: number, value: number) => Buffer.from([...varint(no * 8), ...varint(value)]);
const bytes = (no: number, body: Buffer | string) => {
  const b = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  return Buffer.concat([Buffer.from([...varint(no * 8 + 2), ...varint(b.length)]), b]);
};
const message = (...parts: Buffer[]) => Buffer.concat(parts);

/** A float tensor type of shape [batch, width] (batch symbolic), as onnx.proto's ValueInfoProto. */
function valueInfo(name: string, width: number): Buffer {
  const dims = message(bytes(1, message(bytes(2, "batch"))), bytes(1, message(field(1, width))));
  const tensorType = message(field(1, 1 /* FLOAT */), bytes(2, dims));
  return message(bytes(1, name), bytes(2, message(bytes(1, tensorType))));
}

/** ModelProto of prediction = features · weights + bias (MatMul, Add), opset 17. */
export function linearModel(weights: readonly number[], bias: number): Buffer {
  const tensor = (name: string, dims: number[], values: readonly number[]) =>
    message(...dims.map((d) => field(1, d)), field(2, 1 /* FLOAT */), bytes(8, name), bytes(9, Buffer.from(Float32Array.from(values).buffer)));
  const node = (inputs: string[], output: string, op: string) =>
    message(...inputs.map((i) => bytes(1, i)), bytes(2, output), bytes(3, op.toLowerCase()), bytes(4, op));
  const graph = message(
    bytes(1, node(["features", "weights"], "product", "MatMul")),
    bytes(1, node(["product", "bias"], "prediction", "Add")),
    bytes(2, "linear"),
    bytes(5, tensor("weights", [weights.length, 1], weights)),
    bytes(5, tensor("bias", [1], [bias])),
    bytes(11, valueInfo("features", weights.length)),
    bytes(12, valueInfo("prediction", 1)),
  );
  return message(field(1, 8 /* IR version */), bytes(2, "wavelet-platform tests"), bytes(7, graph), bytes(8, message(field(2, 17))));
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/**
 * Writes the bundle to a fresh temporary directory and returns it. Every model is the same
 * linear graph; `featureRange` becomes the manifest's feature_range when given. By default the
 * 6-channel features above, named multi-channel-linear; `files` are added to the bundle (and its manifest).
 */
export function linearBundle(
  featureRange?: { min: number[]; max: number[] },
  features: Json = multiChannelFeatures(),
  name = "multi-channel-linear",
  files: Record<string, string> = {},
): string {
  const manifest = JSON.parse(readFileSync(join(RETURN_BUNDLE, "manifest.json"), "utf8"));
  manifest.name = name;
  manifest.features = features;
  const width = manifest.features.names.length;
  // Small weights of both signs: predictions vary with every feature and stay moderate.
  const graph = linearModel(
    Array.from({ length: width }, (_, k) => ((k % 7) - 3) / 50),
    0.05,
  );
  const dir = join(mkdtempSync(join(tmpdir(), "bundle-")), name);
  mkdirSync(dir);
  const names = JSON.stringify(manifest.features.names);
  writeFileSync(join(dir, "linear.onnx"), graph);
  writeFileSync(join(dir, "feature_names.json"), names);
  const signature = {
    inputs: [{ name: "features", type: "float32", shape: [null, width] }],
    outputs: [{ name: "prediction", type: "float32", shape: [null, 1] }],
  };
  manifest.models = Object.fromEntries(
    ["xgboost", "lstm", "transformer", "ensemble"].map((model) => [
      model,
      { file: "linear.onnx", sha256: sha256(graph), bytes: graph.length, precision: "float32", ...signature, calibration: manifest.models[model].calibration },
    ]),
  );
  manifest.files = { "linear.onnx": sha256(graph), "feature_names.json": sha256(names) };
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
    manifest.files[file] = sha256(text);
  }
  // The return bundle's own feature_range describes its 10 features, not these.
  if (featureRange) manifest.feature_range = featureRange;
  else delete manifest.feature_range;
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
  return dir;
}
