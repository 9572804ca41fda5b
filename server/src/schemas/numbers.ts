/**
 * The numbers requests carry, checked in plain loops rather than per-element zod schemas (a
 * quarter of a microsecond a number was most of a big batch's overhead): their bounds, and the
 * issue that refuses one, naming where it is.
 */

// Features are percent returns, their squares, energies or volatilities: a million is already absurd, and
// the bound keeps every model's float32 arithmetic finite. Prices may be in any currency.
export const FEATURES = { minimum: -1e6, maximum: 1e6 };
export const PRICES = { minimum: 1e-10, maximum: 1e15 };

/** Marks a validation issue that refused a number as out of bounds or non-finite (input drift). */
export const REFUSED_INPUT = "refused_input";

export type Bounds = { minimum: number; maximum: number };
export type Issues = { issues: unknown[] };
export type Path = (string | number)[];

/** Reports x unless it is a number within the bounds; true when it did. */
export function refuse(ctx: Issues, x: unknown, items: Bounds, path: Path): boolean {
  if (typeof x === "number" && x >= items.minimum && x <= items.maximum) return false;
  if (typeof x !== "number") {
    ctx.issues.push({ code: "custom", message: `expected a number, got ${x === null ? "null" : typeof x}`, input: x, path });
  } else {
    // A number the model must not see (non-finite or beyond the bounds) counts as input drift.
    const message = `must be a finite number from ${items.minimum} to ${items.maximum}`;
    ctx.issues.push({ code: "custom", message, input: x, path, params: { [REFUSED_INPUT]: true } });
  }
  return true;
}

export const sizeText = (min: number, max: number) => (min === max ? `exactly ${min}` : `${min} to ${max}`);
