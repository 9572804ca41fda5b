/**
 * The server's own view of its latency, from two scrapes of its Prometheus text: the delta of
 * one histogram's series between them, and quantiles of it computed as PromQL's
 * histogram_quantile does, so the CLI's numbers match a dashboard's over the same interval.
 */

/** Cumulative counts by upper bound (`le`), ascending, the last one +Inf. */
export type Buckets = { le: number; count: number }[];

const SAMPLE = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of `name` whose labels include `match`, summed per remaining label `by` (e.g. `le`). */
export function samples(text: string, name: string, match: Record<string, string>, by?: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = SAMPLE.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = new Map<string, string>();
    for (const [, key, value] of (m[2] ?? "").matchAll(LABEL)) labels.set(key!, value!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c)));
    if (Object.entries(match).some(([key, value]) => labels.get(key) !== value)) continue;
    const key = by === undefined ? "" : (labels.get(by) ?? "");
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}

/** The buckets of histogram `name` (without its _bucket suffix) for series matching `match`. */
export function histogram(text: string, name: string, match: Record<string, string>): Buckets {
  return [...samples(text, `${name}_bucket`, match, "le")]
    .map(([le, count]) => ({ le: le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), count }))
    .sort((a, b) => a.le - b.le);
}

/** after − before, bucket by bucket; a series absent before (nothing observed yet) counts from 0. */
export function delta(before: Buckets, after: Buckets): Buckets {
  const earlier = new Map(before.map((b) => [b.le, b.count]));
  return after.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) }));
}

/** Observations in the histogram (its +Inf bucket). */
export const total = (buckets: Buckets): number => buckets.at(-1)?.count ?? 0;

/**
 * The q-quantile as Prometheus' histogram_quantile computes it: find the bucket holding rank
 * q·total and interpolate linearly inside it (the first bucket starts at 0); a rank in the
 * +Inf bucket answers the highest finite bound. NaN without observations.
 */
export function histogramQuantile(q: number, buckets: Buckets): number {
  const n = total(buckets);
  if (buckets.length < 2 || n <= 0) return Number.NaN;
  const rank = q * n;
  const i = buckets.findIndex((b) => b.count >= rank);
  const bucket = buckets[i]!;
  if (bucket.le === Number.POSITIVE_INFINITY) return buckets[i - 1]!.le;
  const lower = i === 0 ? 0 : buckets[i - 1]!.le;
  const below = i === 0 ? 0 : buckets[i - 1]!.count;
  if (i === 0 && bucket.le <= 0) return bucket.le;
  return lower + ((bucket.le - lower) * (rank - below)) / (bucket.count - below);
}
