import type { FastifyBaseLogger } from "fastify";
import { AppError, unavailable } from "../plugins/errors.js";
import { Bundle, type BundleOptions, BundleError, type ModelType, locateBundle } from "./bundle.js";
import { ModelRunner, type RunnerOptions } from "./runner.js";

/**
 * The bundle being served, and its atomic replacement.
 *
 * A reload has two phases so that several worker processes can swap together (reloads.ts):
 * prepare() opens and verifies the new bundle (and, with eager loading, loads and warms
 * every model) without changing anything; commit() swaps it in, abort() discards it. A
 * bundle that fails leaves the old one serving. The old bundle's sessions are released once the
 * last request that started on it has finished.
 */

/** A verified bundle that is not the one EXPECTED_BUNDLE_DIGEST names (its own metric and alert). */
export class DigestMismatch extends BundleError {}

export interface RegistryOptions {
  modelDir: string;
  /** MODEL_BUNDLE: which bundle in modelDir, when it holds several. */
  bundleName?: string | undefined;
  /** models unset (MODELS unset): those of the bundle loaded at start, which every later one must hold. */
  bundle: BundleOptions;
  /** The models served when `bundle.models` is unset and no bundle could be loaded at start. */
  fallbackModels: readonly ModelType[];
  loading: "eager" | "lazy";
  runner: RunnerOptions;
  expectedDigest?: string | undefined;
  /** RELOAD_TIMEOUT_MS: a reload whose bundle is not ready by then fails. */
  timeoutMs?: number | undefined;
  log: FastifyBaseLogger;
  onSwap?: (next: Bundle, previous: Bundle | undefined) => void;
  onReloadFailed?: (error: BundleError) => void;
  /** A reason to refuse a verified bundle, or undefined to take it. */
  accept?: (bundle: Bundle) => string | undefined;
}

export class Serving {
  private readonly runners = new Map<ModelType, Promise<ModelRunner>>();
  private users = 0;
  private retired = false;

  constructor(
    readonly bundle: Bundle,
    private readonly options: RegistryOptions,
  ) {}

  /** The runner of a model, loading it first under lazy loading; 503 when not configured. */
  runner(model: ModelType): Promise<ModelRunner> {
    if (!this.bundle.isConfigured(model)) return Promise.reject(unavailable(`Model ${model} not loaded`));
    let runner = this.runners.get(model);
    if (!runner) {
      runner = this.bundle.load(model).then((loaded) => new ModelRunner(loaded, this.bundle.width, this.options.runner));
      runner.catch(() => this.runners.delete(model));
      this.runners.set(model, runner);
    }
    return runner;
  }

  enter(): void {
    this.users++;
  }

  leave(): void {
    this.users--;
    if (this.retired && this.users === 0) void this.bundle.close();
  }

  retire(): void {
    this.retired = true;
    if (this.users === 0) void this.bundle.close();
  }
}

export interface ReloadRecord {
  at: string;
  ok: boolean;
  bundle?: BundleRef;
  error?: string;
}

export interface BundleRef {
  name: string;
  version: string;
  digest: string;
}

export const bundleRef = (bundle: Bundle): BundleRef => ({ name: bundle.name, version: bundle.version, digest: bundle.digest });

export const reloadInProgress = () =>
  new AppError(409, "reload_in_progress", "a reload is already running; this one was not started (retry once it has ended)");

export class ModelRegistry {
  private current: Serving | undefined;
  private failure: string | undefined;
  /** The reload under way, from prepare() to commit() or abort(): at most one at a time. */
  private pending: Promise<Bundle> | undefined;
  /** Its bundle, once prepared. */
  private prepared: Bundle | undefined;
  lastReload: ReloadRecord | undefined;
  /** How bundles are opened: after start(), with the models this process serves. */
  private bundleOptions: BundleOptions;

  constructor(private readonly options: RegistryOptions) {
    this.bundleOptions = options.bundle;
  }

  /**
   * The models this process serves (its published API lists them), fixed by start(): MODELS,
   * else those of the bundle it started with, else (none loaded) the fallback.
   */
  get models(): readonly ModelType[] {
    const { models } = this.bundleOptions;
    if (!models) throw new Error("the served models are known once start() has run");
    return models;
  }

  get serving(): Serving | undefined {
    return this.current;
  }

  /**
   * First load; failure leaves the server up but not ready, with the reason in /health. Not
   * timed: nothing waits behind it, and the startup probe sees a server that never gets ready.
   */
  async start(): Promise<void> {
    await this.prepare().then(
      () => this.commit(),
      () => undefined, // prepare() recorded why: /health reports it
    );
    if (this.bundleOptions.models) return;
    // MODELS unset: every later bundle must hold what this one serves, as the published API lists it.
    const first = this.current?.bundle;
    const source = first ? `the models of the bundle it started with, ${first.name}` : "the guide's models, as it started without a bundle";
    this.bundleOptions = {
      ...this.bundleOptions,
      models: first?.options.models ?? this.options.fallbackModels,
      lacking: `, a model the API this process publishes serves (MODELS unset: ${source}); restart the server to serve it`,
    };
  }

  /** prepare() then commit(): the whole reload of a single process. */
  async reload(): Promise<Bundle> {
    await this.prepare(this.options.timeoutMs);
    return this.commit();
  }

  /**
   * Open, verify, accept and (eager loading) load and warm the bundle now in MODEL_DIR,
   * changing nothing that is served. 409 while another reload is pending; a BundleError
   * (recorded in lastReload) when the bundle is refused or not ready within `timeoutMs`.
   */
  async prepare(timeoutMs?: number): Promise<Bundle> {
    if (this.pending) throw reloadInProgress();
    const work = this.open();
    this.pending = work;
    let bundle: Bundle;
    try {
      bundle = await (timeoutMs === undefined ? work : withTimeout(work, timeoutMs));
    } catch (error) {
      // A load that outlived its timeout is released whenever it ends.
      void work.then((late) => late.close(), () => undefined);
      if (this.pending === work) {
        this.pending = undefined;
        this.fail(error);
      }
      throw error;
    }
    if (this.pending !== work) throw new BundleError("the reload was aborted"); // abort() closes the bundle
    this.prepared = bundle;
    return bundle;
  }

  /** Serve the prepared bundle; the previous one is released once its last request ends. */
  commit(): Bundle {
    const bundle = this.prepared;
    if (!bundle) throw new Error("commit without a prepared bundle");
    this.pending = this.prepared = undefined;
    const previous = this.current;
    this.current = new Serving(bundle, this.options);
    this.failure = undefined;
    this.lastReload = { at: new Date().toISOString(), ok: true, bundle: bundleRef(bundle) };
    this.options.onSwap?.(bundle, previous?.bundle);
    previous?.retire();
    this.options.log.info({ bundle: bundle.name, version: bundle.version, digest: bundle.digest, dir: bundle.dir }, "serving bundle");
    return bundle;
  }

  /** Discard the reload under way (another worker failed): the current bundle keeps serving. */
  abort(reason: string): void {
    const work = this.pending;
    if (!work) return;
    this.pending = this.prepared = undefined;
    this.fail(new BundleError(reason));
    void work.then((bundle) => bundle.close(), () => undefined);
  }

  private async open(): Promise<Bundle> {
    let bundle: Bundle | undefined;
    try {
      bundle = await Bundle.open(await locateBundle(this.options.modelDir, this.options.bundleName), this.bundleOptions);
      const { expectedDigest } = this.options;
      if (expectedDigest && bundle.digest !== expectedDigest) {
        throw new DigestMismatch(`bundle digest ${bundle.digest} is not the expected ${expectedDigest} (EXPECTED_BUNDLE_DIGEST)`);
      }
      const refusal = this.options.accept?.(bundle);
      if (refusal) throw new BundleError(refusal);
      if (this.options.loading === "eager") await bundle.loadAll();
      return bundle;
    } catch (error) {
      await bundle?.close();
      if (error instanceof BundleError) throw error;
      throw new BundleError("bundle load failed (the server log has the details)", error);
    }
  }

  private fail(error: unknown): void {
    const failure = error instanceof BundleError ? error : new BundleError(String(error));
    this.lastReload = { at: new Date().toISOString(), ok: false, error: failure.message };
    if (!this.current) this.failure = failure.message;
    this.options.log.error({ err: failure.detail ?? failure }, `bundle refused: ${failure.message}`);
    this.options.onReloadFailed?.(failure);
  }

  /** Ready when a bundle is verified and every configured model is loaded (eager). */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    const serving = this.current;
    if (!serving) {
      reasons.push(this.failure ?? "bundle not loaded yet");
      return { ready: false, reasons };
    }
    if (this.options.loading === "eager") {
      for (const model of serving.bundle.options.models) {
        if (serving.bundle.status(model) !== "loaded") reasons.push(`model ${model} is ${serving.bundle.status(model)}`);
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  async close(): Promise<void> {
    this.abort("the server is closing");
    this.current?.retire();
    this.current = undefined;
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BundleError(`the bundle was not verified and loaded within ${ms} ms (RELOAD_TIMEOUT_MS)`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
