import cluster, { type Worker } from "node:cluster";
import { BundleError } from "./inference/bundle.js";
import { type BundleRef, bundleRef, type ModelRegistry, reloadInProgress } from "./inference/registry.js";
import { AppError, unavailable } from "./plugins/errors.js";

/**
 * Reloads of the whole server (POST /admin/reload, SIGHUP): every process swaps to the new
 * bundle, or none does.
 *
 * A single process runs ModelRegistry.reload(). With WORKERS > 1 the primary coordinates a
 * two-phase reload over IPC: every worker prepares (opens, verifies and, under eager loading,
 * loads and warms the bundle without serving it); when all have, all commit (swap); if any
 * fails, does not answer in time, or read a different bundle, all abort and the old bundle
 * keeps serving everywhere. A worker's /admin/reload asks the primary and answers with its
 * outcome, so a 200 means every worker serves the new bundle.
 *
 * At most one reload runs at a time. A reload asked for while one runs is not queued: it is
 * refused with 409 reload_in_progress (a SIGHUP meanwhile is logged and dropped), since the
 * running one may have read MODEL_DIR before the change its caller wants to see.
 */

export interface ReloadResult {
  bundle: BundleRef;
  previous?: BundleRef;
  /** Processes now serving `bundle`. */
  workers: number;
}

/** Reload every process; throws an AppError (409, 422, 503) when nothing changed. */
export type Reload = () => Promise<ReloadResult>;

const rejected = (reason: string) => new AppError(422, "bundle_rejected", `${reason}; the previous bundle keeps serving`);

/** A single process: the registry's own reload. */
export function localReload(registry: ModelRegistry): Reload {
  return async () => {
    const previous = registry.serving?.bundle;
    try {
      const bundle = await registry.reload();
      return { bundle: bundleRef(bundle), ...(previous ? { previous: bundleRef(previous) } : {}), workers: 1 };
    } catch (error) {
      throw error instanceof BundleError ? rejected(error.message) : error;
    }
  };
}

type Outcome = { ok: true; result: ReloadResult } | { ok: false; status: number; code: string; message: string };

type Prepared = { wavelet: "prepared"; id: number } & ({ ok: true; bundle: BundleRef; previous?: BundleRef } | { ok: false; error: string });
type Committed = { wavelet: "committed"; id: number; ok: boolean };
/** Worker → primary. */
type ToPrimary = { wavelet: "ready" } | { wavelet: "reload"; id: number } | Prepared | Committed;
/** Primary → worker. */
type ToWorker =
  | { wavelet: "certificate" }
  | { wavelet: "prepare"; id: number }
  | { wavelet: "commit"; id: number }
  | { wavelet: "abort"; id: number; reason: string }
  | { wavelet: "outcome"; id: number; outcome: Outcome };

const outcomeOf = (error: AppError): Outcome => ({ ok: false, status: error.statusCode, code: error.code, message: error.message });

/**
 * The primary's side: reloads every worker that said it is ready, for a worker's request or
 * for SIGHUP (the returned handler, which also has the workers re-read the TLS certificate).
 * Workers not ready yet load what MODEL_DIR holds when they are. `timeoutMs` is
 * RELOAD_TIMEOUT_MS; the workers time their own loads with it, so the primary waits a little
 * longer before giving one up.
 */
export function coordinateReloads(timeoutMs: number, log: (msg: string) => void): () => void {
  const ready = new Set<Worker>();
  const replies = new Map<string, (reply: Prepared | Committed) => void>();
  let running = false;
  let lastId = 0;

  const send = (worker: Worker, message: ToWorker) => {
    try {
      worker.send(message);
    } catch {
      // gone: its exit ends the wait
    }
  };
  /** The worker's reply to `message`, or undefined if it exits or does not answer within `ms`. */
  function ask<R extends Prepared | Committed>(worker: Worker, message: Extract<ToWorker, { id: number }>, phase: R["wavelet"], ms: number): Promise<R | undefined> {
    return new Promise((resolve) => {
      const key = `${worker.id}:${phase}:${message.id}`;
      const done = (reply?: Prepared | Committed) => {
        clearTimeout(timer);
        worker.off("exit", gone);
        replies.delete(key);
        resolve(reply as R | undefined);
      };
      const gone = () => done();
      const timer = setTimeout(gone, ms);
      worker.once("exit", gone);
      replies.set(key, done);
      send(worker, message);
    });
  }

  async function twoPhase(): Promise<Outcome> {
    const workers = [...ready];
    if (!workers.length) return outcomeOf(unavailable("no worker is ready to reload"));
    const id = ++lastId;
    const prepared = await Promise.all(workers.map((w) => ask<Prepared>(w, { wavelet: "prepare", id }, "prepared", timeoutMs + 2000)));
    const errors = new Set(prepared.map((p) => (!p ? `a worker did not answer within ${timeoutMs} ms` : p.ok ? "" : p.error)).filter(Boolean));
    const digests = new Set(prepared.map((p) => (p?.ok ? p.bundle.digest : "")));
    if (!errors.size && digests.size > 1) errors.add("the workers read different bundles (MODEL_DIR changed during the reload)");
    const first = prepared[0];
    if (errors.size || !first?.ok) {
      const reason = [...errors].join("; ");
      for (const w of workers) send(w, { wavelet: "abort", id, reason });
      log(`reload refused by the workers, none swapped: ${reason}`);
      return outcomeOf(rejected(reason));
    }
    const committed = await Promise.all(workers.map((w) => ask<Committed>(w, { wavelet: "commit", id }, "committed", timeoutMs)));
    if (!committed.every((c) => c?.ok)) {
      log("reload: a worker did not confirm the swap");
      return outcomeOf(new AppError(503, "reload_incomplete", "not every worker confirmed the swap (one may have restarted); retry"));
    }
    log(`reload: ${workers.length} workers serve ${first.bundle.name} ${first.bundle.version} ${first.bundle.digest}`);
    return { ok: true, result: { bundle: first.bundle, ...(first.previous ? { previous: first.previous } : {}), workers: workers.length } };
  }

  async function reloadAll(): Promise<Outcome> {
    if (running) return outcomeOf(reloadInProgress());
    running = true;
    try {
      return await twoPhase();
    } finally {
      running = false;
    }
  }

  cluster.on("message", (worker: Worker, message: ToPrimary) => {
    switch (message?.wavelet) {
      case "ready":
        ready.add(worker);
        break;
      case "reload":
        void reloadAll().then((outcome) => send(worker, { wavelet: "outcome", id: message.id, outcome }));
        break;
      case "prepared":
      case "committed":
        replies.get(`${worker.id}:${message.wavelet}:${message.id}`)?.(message);
        break;
    }
  });
  cluster.on("exit", (worker: Worker) => ready.delete(worker));
  return () => {
    log("SIGHUP: reloading the TLS certificate and the bundle of every worker");
    for (const worker of ready) send(worker, { wavelet: "certificate" });
    void reloadAll().then((outcome) => outcome.ok || log(`SIGHUP: reload failed: ${outcome.message}`));
  };
}

const toPrimary = (message: ToPrimary) => process.send!(message);

/**
 * A worker's side: prepare, commit and abort the registry and reload the certificate as the
 * primary says, and tell it this worker takes part in reloads from now on (call once it is
 * listening).
 */
export function serveReloads(registry: ModelRegistry, timeoutMs: number, reloadCertificate: () => void): void {
  process.on("message", (message: ToWorker) => {
    switch (message?.wavelet) {
      case "certificate":
        reloadCertificate();
        break;
      case "prepare": {
        const previous = registry.serving?.bundle;
        registry.prepare(timeoutMs).then(
          (bundle) => toPrimary({ wavelet: "prepared", id: message.id, ok: true, bundle: bundleRef(bundle), ...(previous ? { previous: bundleRef(previous) } : {}) }),
          (error: Error) => toPrimary({ wavelet: "prepared", id: message.id, ok: false, error: error.message }),
        );
        break;
      }
      case "commit": {
        let ok = true;
        try {
          registry.commit();
        } catch {
          ok = false; // nothing prepared: the primary reports the reload as incomplete
        }
        toPrimary({ wavelet: "committed", id: message.id, ok });
        break;
      }
      case "abort":
        registry.abort(message.reason);
        break;
    }
  });
  toPrimary({ wavelet: "ready" });
}

/** A worker's /admin/reload: the primary reloads every worker and says how it went. */
export function askPrimary(): Reload {
  const waiting = new Map<number, (outcome: Outcome) => void>();
  let lastId = 0;
  process.on("message", (message: ToWorker) => {
    if (message?.wavelet !== "outcome") return;
    waiting.get(message.id)?.(message.outcome);
    waiting.delete(message.id);
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = ++lastId;
      waiting.set(id, (o) => (o.ok ? resolve(o.result) : reject(new AppError(o.status, o.code, o.message))));
      toPrimary({ wavelet: "reload", id });
    });
}
