import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, open, readdir, realpath } from "node:fs/promises";
import { basename, join, sep } from "node:path";
import * as ort from "onnxruntime-node";
import { type FeatureParams, featureParams } from "../features/channels.js";
import { MODEL_NAME } from "../config.js";
import type { BarColumns } from "../schemas/bars.js";
import { isNamed, type Manifest, type ModelEntry, manifestSchema, paritySchema } from "../schemas/manifest.js";

/**
 * A model bundle on disk (DESIGN §3), verified before anything is served from it: the
 * manifest is schema-checked, every file it lists must match its sha256, and each model's
 * graph must have the inputs and outputs the manifest states. A model is warmed by one
 * inference on a zero row before it counts as loaded. Its features are computed from prices
 * (our bundles) or named and sent by the caller (imported bundles).
 */

/** A model's name: a key of the manifest's models (MODEL_NAME), its int8 variant's less `_int8`. */
export type ModelType = string;

/**
 * Why a bundle is refused. The message is shown to clients (/health, /admin/reload) and so
 * names files only relative to the bundle, never a path on the server's disk; `detail`
 * (the underlying error, with paths) goes to the log only.
 */
export class BundleError extends Error {
  override name = "BundleError";
  constructor(
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

export interface LoadedModel {
  name: ModelType;
  entry: ModelEntry;
  session: ort.InferenceSession;
  loadSeconds: number;
}

export interface BundleOptions {
  /** The models to serve; unset: every model the bundle holds (heldModels), in its manifest's order. */
  models?: readonly ModelType[] | undefined;
  /** What a bundle lacking one of `models` is told after naming it and what it holds. */
  lacking?: string | undefined;
  quantized: boolean;
  onLoad?: (model: ModelType, seconds: number) => void;
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** The models a manifest holds, in its order: its models' keys but their int8 variants (QUANTIZED's). */
export const heldModels = (manifest: Manifest): string[] => Object.keys(manifest.models).filter((m) => !m.endsWith("_int8"));

/** The project's default bundle, served when MODEL_DIR holds several and none is named. */
export const DEFAULT_BUNDLE = "spx-return-1d";

/**
 * A file the manifest names, read only if it is a regular file inside the bundle directory
 * (after symlinks: a Kubernetes volume's ..data links stay inside, /etc/passwd does not).
 * Opened non-blocking, so a FIFO cannot hang the load, and checked on the open descriptor.
 */
export async function readBundleFile(dir: string, file: string): Promise<Buffer> {
  let handle;
  try {
    const [root, path] = await Promise.all([realpath(dir), realpath(join(dir, file))]);
    if (!path.startsWith(root + sep)) throw new BundleError(`${file} is outside the bundle`);
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    if (!(await handle.stat()).isFile()) throw new BundleError(`${file} is not a regular file`);
    return await handle.readFile();
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError(`${file} is missing or unreadable`, error);
  } finally {
    await handle?.close();
  }
}

/**
 * Why a MODEL_DIR holding the deployment guide's raw model files (no manifest.json) is not
 * served: such files are imported into a bundle first. `found`: the guide's files it holds.
 */
export class GuideLayoutError extends BundleError {
  constructor(readonly found: readonly string[]) {
    super(guideLayoutMessage(found, "MODEL_DIR"));
  }
}

/** One line: what MODEL_DIR holds, and the command that makes a bundle of it (`dir` as the command shows it). */
export function guideLayoutMessage(found: readonly string[], dir: string): string {
  const files = found.length > 5 ? `${found.slice(0, 5).join(", ")} and ${found.length - 5} more` : found.join(", ");
  return (
    `MODEL_DIR holds model files in the deployment guide's layout (${files}) and no bundle (manifest.json): ` +
    `the server serves verified bundles; import the files into one first: wavelet-pipeline import ${dir} --name NAME --version 1.0.0 --out ${dir}-bundle`
  );
}

// The guide's model files and feature names (docs: the contract of `wavelet-pipeline import`).
const GUIDE_FILE = /^(feature_names\.json|xgboost.*\.json|.+\.(pkl|pth|pt|ubj))$/;

const isBundle = (dir: string) => access(join(dir, "manifest.json")).then(() => true, () => false);

/** The names of `dir`'s entries that are bundles; hidden ones (Kubernetes' ..data) never are. */
async function bundlesIn(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((name) => !name.startsWith("."));
  const found = await Promise.all(names.map((name) => isBundle(join(dir, name))));
  return names.filter((_, i) => found[i]).sort();
}

/**
 * The bundle directory that MODEL_DIR (and MODEL_BUNDLE, `name`) stand for: MODEL_DIR itself
 * when it holds a manifest.json; otherwise one of the subdirectories holding one, in MODEL_DIR
 * or, when it has none, in MODEL_DIR/bundles (the layout of this repository's models/). Which
 * one: `name`, else the only one, else DEFAULT_BUNDLE. Resolved at every load, so replacing
 * the contents of a mounted directory and reloading serves what is there now.
 */
export async function locateBundle(modelDir: string, name: string | undefined): Promise<string> {
  if (await isBundle(modelDir)) {
    if (name !== undefined && name !== basename(modelDir)) {
      throw new BundleError(`MODEL_BUNDLE=${name}, but MODEL_DIR is itself a bundle (${basename(modelDir)})`);
    }
    return modelDir;
  }
  let parent = modelDir;
  let found = await bundlesIn(parent).catch((error: unknown) => {
    throw new BundleError("cannot read MODEL_DIR", error);
  });
  let shown = "MODEL_DIR"; // how answers name `parent`, without the server's paths
  if (!found.length) {
    parent = join(modelDir, "bundles");
    shown = "MODEL_DIR/bundles";
    found = await bundlesIn(parent).catch(() => []);
  }
  if (!found.length) {
    const guide = (await readdir(modelDir)).filter((name) => GUIDE_FILE.test(name)).sort();
    if (guide.length) throw new GuideLayoutError(guide);
    throw new BundleError("no bundle in MODEL_DIR: no manifest.json in it, in its subdirectories or in those of its bundles/");
  }
  const chosen = name ?? (found.length === 1 ? found[0]! : found.includes(DEFAULT_BUNDLE) ? DEFAULT_BUNDLE : undefined);
  if (chosen === undefined) {
    throw new BundleError(`${shown} holds several bundles (${found.join(", ")}) and none is ${DEFAULT_BUNDLE}: set MODEL_BUNDLE to the one to serve`);
  }
  if (!found.includes(chosen)) throw new BundleError(`MODEL_BUNDLE=${chosen} is not a bundle in ${shown}, which holds ${found.join(", ")}`);
  return join(parent, chosen);
}

// One intra-op thread: rows then never depend on how they were batched (the tree ensemble
// splits work across threads differently for small and large batches), and throughput
// comes from WORKERS processes instead.
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: "all",
  logSeverityLevel: 3,
};

/** A golden case as GET /models/golden serves it: what to send to POST /predict, and each served model's answer. */
export type GoldenCase = { name: string; expected: Record<string, number> } & ({ prices: number[] } | { bars: BarColumns } | { features: number[] });

export class Bundle {
  private readonly loaded = new Map<ModelType, LoadedModel>();
  private readonly loading = new Map<ModelType, Promise<LoadedModel>>();
  /** The feature names in vector order; for named features, each name's place in the vector. */
  readonly names: readonly string[];
  readonly index: ReadonlyMap<string, number> | undefined;

  private constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly digest: string,
    /** How the features are computed from prices; undefined when the caller sends them (named features). */
    readonly computed: FeatureParams | undefined,
    readonly options: BundleOptions & { models: readonly ModelType[] },
  ) {
    this.names = manifest.features.names;
    this.index = computed ? undefined : new Map(this.names.map((name, i) => [name, i]));
  }

  get name(): string {
    return this.manifest.name;
  }

  get version(): string {
    return this.manifest.version;
  }

  /**
   * Days of lags per channel (the features' W): the values of a stream's series one feature
   * vector ends with. Named features are one vector of their own, so all of them.
   */
  get window(): number {
    return this.computed?.window ?? this.width;
  }

  /** Values in one feature vector, the models' input width: window × channels, or the named features. */
  get width(): number {
    return this.names.length;
  }

  /** Read and verify the manifest and every file's hash; load no model yet. */
  static async open(dir: string, options: BundleOptions): Promise<Bundle> {
    const raw = await readBundleFile(dir, "manifest.json");
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch (error) {
      throw new BundleError(`manifest.json is not JSON: ${(error as Error).message}`);
    }
    const parsed = manifestSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "manifest"}: ${i.message}`);
      throw new BundleError(`manifest.json is invalid: ${issues.join("; ")}`);
    }
    const manifest = parsed.data;
    const mismatched: string[] = [];
    await Promise.all(
      Object.entries(manifest.files).map(async ([file, expected]) => {
        const data = await readBundleFile(dir, file).catch((error: BundleError) => error);
        if (data instanceof BundleError) mismatched.push(data.message);
        else if (sha256(data) !== expected) mismatched.push(`${file} does not match its sha256`);
      }),
    );
    if (mismatched.length) throw new BundleError(`bundle failed verification: ${mismatched.sort().join("; ")}`);
    const held = heldModels(manifest);
    const models = options.models ?? held;
    if (!options.models) {
      // Served as they are named: in model_type, the OpenAPI document and the metrics' labels.
      const unnamed = held.filter((m) => !MODEL_NAME.test(m));
      if (unnamed.length) throw new BundleError(`bundle ${manifest.name} holds models whose names the API cannot take (${unnamed.join(", ")}; expected ${MODEL_NAME.source}): set MODELS to the models to serve`);
      if (!held.length) throw new BundleError(`bundle ${manifest.name} holds no model`);
    }
    for (const model of models) {
      const entry = manifest.models[Bundle.fileKey(manifest, model, options.quantized)];
      if (!entry) {
        // An imported bundle holds the models its user had: MODELS names those to serve.
        throw new BundleError(`bundle ${manifest.name} has no model ${model} (it holds ${held.join(", ")})${options.lacking ?? ": set MODELS to the models to serve"}`);
      }
      if (manifest.files[entry.file] !== entry.sha256) throw new BundleError(`models.${model}.sha256 differs from files["${entry.file}"]`);
    }
    const names = JSON.parse((await readBundleFile(dir, "feature_names.json")).toString("utf8")) as unknown;
    if (JSON.stringify(names) !== JSON.stringify(manifest.features.names)) {
      throw new BundleError("feature_names.json differs from manifest features.names");
    }
    return new Bundle(dir, manifest, `sha256:${sha256(raw)}`, isNamed(manifest.features) ? undefined : featureParams(manifest.features), { ...options, models });
  }

  /**
   * The bundle's golden cases (vectors/parity.json, verified like every file) as this server
   * serves them: each case's prices (or bars) and, per configured model, the prediction for its last
   * day, of the int8 variant where that is what is served; for named features, one case per
   * feature row and the original framework's prediction for it. A rollout's analysis sends them.
   */
  async golden(): Promise<GoldenCase[]> {
    const file = "vectors/parity.json";
    const expected = this.manifest.files[file];
    if (!expected) throw new BundleError(`the bundle has no ${file}`);
    const raw = await readBundleFile(this.dir, file);
    if (sha256(raw) !== expected) throw new BundleError(`${file} changed on disk since the bundle was verified`);
    const parity = paritySchema.parse(JSON.parse(raw.toString("utf8")));
    // Per served model, its prediction for row i (-1: the last) of a case.
    const answers = (predictions: Record<string, number[]>, i: number) =>
      Object.fromEntries(
        this.options.models.flatMap((m) => {
          const value = predictions[Bundle.fileKey(this.manifest, m, this.options.quantized)]?.at(i);
          return value === undefined ? [] : [[m, value] as const];
        }),
      );
    return parity.cases.flatMap((c): GoldenCase[] => {
      // Columnar, as POST /predict takes them too.
      if ("bars" in c) return [{ name: c.name, bars: c.bars, expected: answers(c.predictions, -1) }];
      if ("prices" in c) return [{ name: c.name, prices: c.prices, expected: answers(c.predictions, -1) }];
      return c.features.map((features, i) => ({ name: `${c.name}[${i}]`, features, expected: answers(c.predictions, i) }));
    });
  }

  /** The manifest key serving `model`: the int8 variant when asked for and shipped. */
  private static fileKey(manifest: Manifest, model: ModelType, quantized: boolean): string {
    const int8 = `${model}_int8`;
    return quantized && manifest.models[int8] ? int8 : model;
  }

  /** The manifest entry serving `model` (its file, signature and calibration), loaded or not. */
  entry(model: ModelType): ModelEntry {
    return this.manifest.models[Bundle.fileKey(this.manifest, model, this.options.quantized)]!;
  }

  isConfigured(model: string): model is ModelType {
    return (this.options.models as readonly string[]).includes(model);
  }

  status(model: ModelType): "loaded" | "loading" | "not_loaded" {
    if (this.loaded.has(model)) return "loaded";
    return this.loading.has(model) ? "loading" : "not_loaded";
  }

  loadedModel(model: ModelType): LoadedModel | undefined {
    return this.loaded.get(model);
  }

  /** Load, check and warm one configured model; concurrent callers share one load. */
  load(model: ModelType): Promise<LoadedModel> {
    const done = this.loaded.get(model);
    if (done) return Promise.resolve(done);
    let pending = this.loading.get(model);
    if (!pending) {
      pending = this.createSession(model).finally(() => this.loading.delete(model));
      this.loading.set(model, pending);
    }
    return pending;
  }

  async loadAll(): Promise<void> {
    await Promise.all(this.options.models.map((m) => this.load(m)));
  }

  private async createSession(model: ModelType): Promise<LoadedModel> {
    const started = performance.now();
    const entry = this.entry(model);
    const bytes = await readBundleFile(this.dir, entry.file);
    if (sha256(bytes) !== entry.sha256) throw new BundleError(`${entry.file} changed on disk since the bundle was verified`);
    const session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
    try {
      const [input, output] = [entry.inputs[0]!, entry.outputs[0]!];
      if (session.inputNames.join() !== input.name || session.outputNames.join() !== output.name) {
        throw new BundleError(
          `${entry.file}: graph has inputs [${session.inputNames}] and outputs [${session.outputNames}], manifest says ${input.name} → ${output.name}`,
        );
      }
      if (input.shape[1] !== this.width || output.shape[1] !== 1) {
        throw new BundleError(`${entry.file}: shapes ${JSON.stringify(input.shape)} → ${JSON.stringify(output.shape)} do not fit ${this.width} features`);
      }
      const warm = await session.run({ [input.name]: new ort.Tensor("float32", new Float32Array(this.width), [1, this.width]) });
      const value = (warm[output.name]!.data as Float32Array)[0];
      if (warm[output.name]!.dims.join() !== "1,1" || !Number.isFinite(value)) {
        throw new BundleError(`${entry.file}: warm-up inference gave ${String(value)} with shape ${warm[output.name]!.dims}`);
      }
    } catch (error) {
      await session.release();
      throw error;
    }
    const loaded: LoadedModel = { name: model, entry, session, loadSeconds: (performance.now() - started) / 1000 };
    this.loaded.set(model, loaded);
    this.options.onLoad?.(model, loaded.loadSeconds);
    return loaded;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.loading.values()]);
    const sessions = [...this.loaded.values()].map((m) => m.session.release());
    this.loaded.clear();
    await Promise.allSettled(sessions);
  }
}
