import type { Clock } from "../controller/clock.js";

/**
 * client-go's QPS and burst: a token bucket every API request takes a token from. `burst`
 * tokens at most, refilled at `qps` a second; requests that find none wait in order.
 * Watches are long-lived and do not take tokens.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly waiting: (() => void)[] = [];
  private timer: { cancel(): void } | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Resolves with the milliseconds waited once a token is taken. */
  take(): Promise<number> {
    this.refill();
    if (!this.waiting.length && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve(0);
    }
    const since = this.clock.now();
    return new Promise((resolve) => {
      this.waiting.push(() => resolve(this.clock.now() - since));
      this.schedule();
    });
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.refill();
        while (this.waiting.length && this.tokens >= 1) {
          this.tokens -= 1;
          this.waiting.shift()!();
        }
        if (this.waiting.length) this.schedule();
      },
      Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.qps)),
    );
  }
}
