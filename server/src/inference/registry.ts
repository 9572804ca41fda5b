import type { FastifyBaseLogger } from "fastify";
import { unavailable } from "../plugins/errors.js";
import { Bundle, type BundleOptions, BundleError, type ModelType, locateBundle } from "./bundle.js";
import { ModelRunner, type RunnerOptions } from "./runner.js";

/**
 * The bundle being served, and its atomic replacement.
 *
 * A reload opens and verifies the new bundle (and, with eager loading, loads and warms
 * every model) before anything changes; only then does the registry swap it in. A bundle
 * that fails leaves the old one serving. The old bundle's sessions are released once the
 * last request that started on it has finished.
 */

export interface RegistryOptions {
  modelDir: string;
  /** MODEL_BUNDLE: which bundle in modelDir, when it holds several. */
  bundleName?: string | undefined;
  bundle: BundleOptions;
  loading: "eager" | "lazy";
  runner: RunnerOptions;
  expectedDigest?: string | undefined;
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
      runner = this.bundle.load(model).then((loaded) => new ModelRunner(loaded, this.bundle.window, this.options.runner));
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
  bundle?: { name: string; version: string; digest: string };
  error?: string;
}

export class ModelRegistry {
  private current: Serving | undefined;
  private failure: string | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  lastReload: ReloadRecord | undefined;

  constructor(private readonly options: RegistryOptions) {}

  get serving(): Serving | undefined {
    return this.current;
  }

  /** First load; failure leaves the server up but not ready, with the reason in /health. */
  async start(): Promise<void> {
    try {
      await this.reload();
    } catch (error) {
      this.failure = (error as Error).message;
      this.options.log.error({ err: error }, "initial bundle load failed");
    }
  }

  /** Serialize reloads; each one either swaps in a verified bundle or changes nothing. */
  reload(): Promise<Bundle> {
    const next = this.chain.then(() => this.swap());
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async swap(): Promise<Bundle> {
    const at = new Date().toISOString();
    let bundle: Bundle | undefined;
    try {
      bundle = await Bundle.open(await locateBundle(this.options.modelDir, this.options.bundleName), this.options.bundle);
      const refusal = this.options.accept?.(bundle);
      if (refusal) throw new BundleError(refusal);
      if (this.options.loading === "eager") await bundle.loadAll();
    } catch (error) {
      await bundle?.close();
      const message = error instanceof BundleError ? error.message : `bundle load failed: ${(error as Error).message}`;
      this.lastReload = { at, ok: false, error: message };
      const failure = new BundleError(message);
      this.options.onReloadFailed?.(failure);
      throw failure;
    }
    const previous = this.current;
    this.current = new Serving(bundle, this.options);
    this.failure = undefined;
    this.lastReload = { at, ok: true, bundle: { name: bundle.name, version: bundle.version, digest: bundle.digest } };
    this.options.onSwap?.(bundle, previous?.bundle);
    previous?.retire();
    this.options.log.info({ bundle: bundle.name, version: bundle.version, digest: bundle.digest, dir: bundle.dir }, "serving bundle");
    return bundle;
  }

  /** Ready when a bundle is verified, every configured model is loaded (eager) and the digest is the expected one. */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    const serving = this.current;
    if (!serving) {
      reasons.push(this.failure ?? "bundle not loaded yet");
      return { ready: false, reasons };
    }
    const { bundle } = serving;
    if (this.options.expectedDigest && bundle.digest !== this.options.expectedDigest) {
      reasons.push(`bundle digest ${bundle.digest} is not the expected ${this.options.expectedDigest}`);
    }
    if (this.options.loading === "eager") {
      for (const model of bundle.options.models) {
        if (bundle.status(model) !== "loaded") reasons.push(`model ${model} is ${bundle.status(model)}`);
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  async close(): Promise<void> {
    await this.chain;
    this.current?.retire();
    this.current = undefined;
  }
}
