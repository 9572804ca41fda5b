/**
 * The channel vocabulary of features-spec v2: which per-day channels a manifest may name, and
 * how many returns of history each one needs. The manifest schema checks a spec with it (its
 * min_prices); the feature code (features/) computes the channels it names. It sits below both,
 * so the schema never imports the feature code.
 */

/** Which energy a channel holds: a detail level 1..J, or the smooth at level J. */
export type EnergyBand = number | "smooth";

export type Channel =
  | { kind: "denoised" }
  | { kind: "return" }
  | { kind: "energy"; band: EnergyBand }
  | { kind: "gjr" };

/** The channel a manifest name stands for, or undefined for a name the server does not know. */
export function parseChannel(name: string): Channel | undefined {
  if (name === "dn_ret" || name === "dn_sq") return { kind: "denoised" };
  if (name === "ret") return { kind: "return" };
  if (name === "gjr_vol") return { kind: "gjr" };
  if (name === "wav_es") return { kind: "energy", band: "smooth" };
  const level = /^wav_e([1-9][0-9]*)$/.exec(name)?.[1];
  return level === undefined ? undefined : { kind: "energy", band: Number(level) };
}

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
}

/** Returns (before and including day t) the channel's value at t depends on. */
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
  }
}

/** Prices one feature vector needs: W + the longest channel history (in returns). */
export function minPrices(spec: HistorySpec): number {
  return spec.window + Math.max(...spec.channels.map((name) => channelHistory(parseChannel(name)!, spec)));
}
