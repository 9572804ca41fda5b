/**
 * A number as a Kubernetes Quantity (a metric value, an HPA target), in the canonical form the API machinery writes for
 * resource.NewMilliQuantity(v, DecimalSI): to the thousandth, trailing zeros taken into the
 * largest SI suffix that keeps an integer (12 → "12", 12.3456 → "12346m", 12000 → "12k").
 */

const SUFFIXES = new Map([
  [-3, "m"],
  [0, ""],
  [3, "k"],
  [6, "M"],
  [9, "G"],
  [12, "T"],
  [15, "P"],
  [18, "E"],
]);

/** Throws a RangeError for a negative or non-finite value: no metric served here can be one. */
export function formatQuantity(value: number): string {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${value} is not a quantity the operator writes`);
  // BigInt: a value past 2^53 thousandths still prints as digits, not in JavaScript's exponent form.
  let mantissa = BigInt(Math.round(value * 1000));
  if (mantissa === 0n) return "0";
  let exponent = -3;
  while (mantissa % 10n === 0n) {
    mantissa /= 10n;
    exponent += 1;
  }
  // Back down to a multiple of 3, the exponents the suffixes name.
  const extra = ((exponent % 3) + 3) % 3;
  mantissa *= 10n ** BigInt(extra);
  exponent -= extra;
  return `${mantissa}${SUFFIXES.get(exponent) ?? `e${exponent}`}`;
}
