/**
 * The channel vocabulary of features-spec v2: which per-day channels a manifest may name, and
 * how many days of history each one needs. The manifest schema checks a spec with it (its
 * min_prices); the feature code (features/) computes the channels it names. It sits below both,
 * so the schema never imports the feature code.
 */

/** Which MODWT output a channel holds: a detail level 1..J, or the smooth at level J. */
export type ModwtBand = number | "smooth";

export type Channel =
  | { kind: "denoised" }
  | { kind: "return" }
  | { kind: "energy"; band: ModwtBand }
  | { kind: "gjr" }
  /** rng_<n>d: ln of the mean daily range variance over the last n days. */
  | { kind: "range"; days: number }
  /** rng_w<j> / rng_v<J>: a MODWT coefficient of the log daily range variance; `level` is the name's j or J. */
  | { kind: "rangeModwt"; band: ModwtBand; level: number }
  | { kind: "gjrx" };

const POSITIVE = "([1-9][0-9]*)";
const NUMBERED: [RegExp, (n: number) => Channel][] = [
  [new RegExp(`^wav_e${POSITIVE}$`), (n) => ({ kind: "energy", band: n })],
  [new RegExp(`^rng_${POSITIVE}d$`), (n) => ({ kind: "range", days: n })],
  [new RegExp(`^rng_w${POSITIVE}$`), (n) => ({ kind: "rangeModwt", band: n, level: n })],
  [new RegExp(`^rng_v${POSITIVE}$`), (n) => ({ kind: "rangeModwt", band: "smooth", level: n })],
];

/** The channel a manifest name stands for, or undefined for a name the server does not know. */
export function parseChannel(name: string): Channel | undefined {
  if (name === "dn_ret" || name === "dn_sq") return { kind: "denoised" };
  if (name === "ret") return { kind: "return" };
  if (name === "gjr_vol") return { kind: "gjr" };
  if (name === "gjrx_vol") return { kind: "gjrx" };
  if (name === "wav_es") return { kind: "energy", band: "smooth" };
  for (const [pattern, channel] of NUMBERED) {
    const n = pattern.exec(name)?.[1];
    if (n !== undefined) return channel(Number(n));
  }
  return undefined;
}

/** Whether a channel is computed from the daily range variance (needs features.range, and bars). */
export const readsRanges = (channel: Channel) => channel.kind === "range" || channel.kind === "rangeModwt" || channel.kind === "gjrx";

/** L_j: how many returns MODWT level j's filters span, for a wavelet of `filterLength` taps. */
export function levelSpan(level: number, filterLength: number): number {
  return (2 ** level - 1) * (filterLength - 1) + 1;
}

/** The settings of a features spec that its channels' histories depend on, as the manifest states them. */
export interface HistorySpec {
  /** W: days of lags per channel. */
  window: number;
  /** The channel names; each must parse (parseChannel). */
  channels: readonly string[];
  /** Returns the denoised channel's window spans. */
  trailing: number;
  filters: { rec_lo: readonly number[] };
  energy?: { levels: number; span: number } | undefined;
  garch?: { trailing: number } | undefined;
  range?: { levels: number } | undefined;
  garchx?: { trailing: number; span: number } | undefined;
}

/**
 * Returns (before and including day t) the channel's value at t depends on. Range channels
 * count in the same unit, as the pipeline does: the bar before their first one too (Garman–Klass
 * reads its close to tell a stale open), so rng_<n>d has n, one more than its n bars.
 */
function channelHistory(channel: Channel, spec: HistorySpec): number {
  switch (channel.kind) {
    case "denoised":
      return spec.trailing;
    case "return":
      return 1;
    case "energy":
      // M days of level-J coefficients, each spanning L_J returns. Shallower levels are defined
      // sooner, but the spec (and the pipeline's min_prices) gives every wav_* channel the deepest level's history.
      return spec.energy!.span + levelSpan(spec.energy!.levels, spec.filters.rec_lo.length) - 1;
    case "gjr":
      return spec.garch!.trailing;
    case "range":
      return channel.days;
    case "rangeModwt":
      // Every rng_w*/rng_v* channel gets the deepest level's span, like the wav_* ones.
      return levelSpan(spec.range!.levels, spec.filters.rec_lo.length);
    case "gjrx":
      // T returns, the first of which averages the range variance over m days.
      return spec.garchx!.trailing + spec.garchx!.span - 1;
  }
}

/** Days (prices or bars) one feature vector needs: W + the longest channel history. */
export function minPrices(spec: HistorySpec): number {
  return spec.window + Math.max(...spec.channels.map((name) => channelHistory(parseChannel(name)!, spec)));
}
