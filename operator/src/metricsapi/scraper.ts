import type { Clock } from "../controller/clock.js";
import type { Log } from "../log.js";
import { BodyTooLarge, readBody } from "../kube/body.js";
import { readServerSample } from "./exposition.js";
import type { MetricStore } from "./rates.js";

/**
 * Reads every server pod's /metrics each interval into the MetricStore. A pod's image is its
 * tenant's and one operator serves every model, so no pod may cost it more than `timeoutMs`
 * (its answer read to the end) or `maxBodyBytes` of memory, nor hold up the other pods: at
 * most `concurrency` at once, and a round never overlaps the next.
 */

export interface Target {
  /** The pod's uid, the store's key. */
  uid: string;
  namespace: string;
  name: string;
  /** Its /metrics URL, by pod IP on the metrics port. */
  url: string;
  headers?: Record<string, string>;
}

/** A bounded label for a metric of scrapes. */
export type ScrapeOutcome = "ok" | "error" | "timeout" | "too_large";

export interface ScraperOptions {
  /** The pods to scrape now, read at the start of each round. */
  targets: () => Target[];
  store: Pick<MetricStore, "record" | "retain">;
  clock: Clock;
  intervalMs: number;
  timeoutMs: number;
  concurrency: number;
  maxBodyBytes: number;
  onScrape?: (outcome: ScrapeOutcome) => void;
  log?: Pick<Log, "debug" | "warn">;
}

class ScrapeTimeout extends Error {
  override name = "ScrapeTimeout";
}

export class Scraper {
  private completed = 0;
  private timer: { cancel(): void } | undefined;
  private stopping: AbortController | undefined;
  private round: Promise<void> | undefined;

  constructor(private readonly options: ScraperOptions) {}

  /** Rounds completed since the start. */
  get rounds(): number {
    return this.completed;
  }

  /** Two rounds make the first rates (a rate needs two observations): until then the API has no data to serve. */
  get ready(): boolean {
    return this.completed >= 2;
  }

  /** Scrapes now, then every interval from the start of the previous round (at once when one ran longer). */
  start(): void {
    if (this.stopping) return;
    const stopping = new AbortController();
    this.stopping = stopping;
    const loop = () => {
      const started = this.options.clock.now();
      this.round = this.scrape(stopping.signal)
        .catch((error: unknown) => this.options.log?.warn(`metrics scrape round failed: ${(error as Error).message}`))
        .then(() => {
          if (stopping.signal.aborted) return;
          this.timer = this.options.clock.setTimeout(loop, Math.max(0, started + this.options.intervalMs - this.options.clock.now()));
        });
    };
    loop();
  }

  /** Stops the rounds, aborting the one under way, and resolves once it has ended. */
  async stop(): Promise<void> {
    this.stopping?.abort();
    this.stopping = undefined;
    this.timer?.cancel();
    await this.round;
  }

  /** One round over the current targets; pods that are no longer targets leave the store. */
  async scrape(stop?: AbortSignal): Promise<void> {
    const targets = this.options.targets();
    let next = 0;
    const worker = async () => {
      while (next < targets.length && !stop?.aborted) await this.scrapeOne(targets[next++]!, stop);
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, targets.length) }, worker));
    if (stop?.aborted) return;
    this.options.store.retain(new Set(targets.map((t) => t.uid)));
    this.completed += 1;
  }

  private async scrapeOne(target: Target, stop: AbortSignal | undefined): Promise<void> {
    const { clock, timeoutMs, maxBodyBytes } = this.options;
    const deadline = new AbortController();
    const timer = clock.setTimeout(() => deadline.abort(new ScrapeTimeout(`no full answer within ${timeoutMs} ms`)), timeoutMs);
    const signal = stop ? AbortSignal.any([stop, deadline.signal]) : deadline.signal;
    const at = clock.now();
    let outcome: ScrapeOutcome;
    try {
      // No redirects: the pod's answer must not send the operator elsewhere.
      const res = await fetch(target.url, { signal, redirect: "error", ...(target.headers ? { headers: target.headers } : {}) });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`answered ${res.status}`);
      }
      const sample = readServerSample(await readBody(res, maxBodyBytes));
      this.options.store.record(target.uid, { at, ...sample });
      outcome = "ok";
    } catch (error) {
      if (stop?.aborted) return;
      outcome = deadline.signal.aborted ? "timeout" : error instanceof BodyTooLarge ? "too_large" : "error";
      this.options.log?.debug(`metrics scrape of pod ${target.namespace}/${target.name} failed`, { outcome, error: (error as Error).message });
    } finally {
      timer.cancel();
    }
    this.options.onScrape?.(outcome);
  }
}
