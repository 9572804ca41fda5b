import type { Bar } from "../src/schemas/bars.js";

/**
 * Daily bars of a seeded random walk for tests: each day opens near the previous close (every
 * `staleEvery`-th day exactly at it, a stale open), closes after a shock, and ranges a little
 * beyond both; a crash halfway moves every channel, and one day is flat (high = low = open = close).
 */
export function randomBars(n: number, seed = 5, staleEvery = 7): Bar[] {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const bars: Bar[] = [];
  let close = 100;
  for (let t = 0; t < n; t++) {
    const open = t % staleEvery === 0 && t > 0 ? close : close * Math.exp((next() - 0.5) / 100);
    close = open * Math.exp(((next() - 0.5) * 3 + (t > n / 2 && t < n / 2 + 5 ? -5 : 0)) / 100);
    if (t === Math.floor(n / 3)) {
      bars.push({ open: close, high: close, low: close, close });
      continue;
    }
    bars.push({ open, high: Math.max(open, close) * (1 + next() / 100), low: Math.min(open, close) * (1 - next() / 100), close });
  }
  return bars;
}

/** Bars as columns (one array per field), as the feature code and the parity vectors hold them. */
export function columns(bars: readonly Bar[]): { open: number[]; high: number[]; low: number[]; close: number[] } {
  return { open: bars.map((b) => b.open!), high: bars.map((b) => b.high), low: bars.map((b) => b.low), close: bars.map((b) => b.close) };
}
