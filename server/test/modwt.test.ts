import { describe, expect, it } from "vitest";
import { type EnergyParams, energyRange, modwtFilters, modwtRange } from "../src/features/modwt.js";
import { type ModwtBand, levelSpan } from "../src/schemas/channels.js";

// Orthogonal wavelets as PyWavelets states them (dec_*; rec_* is dec_* reversed).
const S = Math.SQRT1_2;
const HAAR = { dec_lo: [S, S], dec_hi: [-S, S] };
const DB2 = {
  dec_lo: [-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416],
  dec_hi: [-0.48296291314453416, 0.8365163037378079, -0.2241438680420134, -0.12940952255126037],
};

function params(wavelet: { dec_lo: number[]; dec_hi: number[] }, levels: number, span: number): EnergyParams {
  return { levels, span, ...modwtFilters([...wavelet.dec_lo].reverse(), [...wavelet.dec_hi].reverse()) };
}

/** A seeded uniform generator (mulberry32), so every run tests the same numbers. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns as the server holds them: r[0] is NaN (no return on the first day). */
function returns(n: number, seed = 1): Float64Array {
  const next = random(seed);
  const r = new Float64Array(n);
  r[0] = Number.NaN;
  for (let t = 1; t < n; t++) r[t] = (next() - 0.5) * 4;
  return r;
}

function energies(r: Float64Array, bands: ModwtBand[], p: EnergyParams, from = 0, to = r.length): Float64Array[] {
  const out = bands.map(() => new Float64Array(r.length).fill(Number.NaN));
  energyRange(r, bands, out, from, to, p);
  return out;
}

const meanSquare = (values: number[]) => values.reduce((a, v) => a + v * v, 0) / values.length;

describe("causal MODWT energies", () => {
  it("Haar level 1 by hand: W = (r_s − r_{s−1})/2, V = (r_s + r_{s−1})/2, means of squares over M days", () => {
    const r = Float64Array.of(Number.NaN, 1, -2, 0.5, 3, -1);
    const M = 3;
    const [e1, es] = energies(r, [1, "smooth"], params(HAAR, 1, M));
    // W_{1,s} is defined from s = 2 (it needs r_{s−1}), the energy from t = 2 + M − 1 = 4.
    const w = (s: number) => (r[s]! - r[s - 1]!) / 2;
    const v = (s: number) => (r[s]! + r[s - 1]!) / 2;
    for (const t of [4, 5]) {
      expect(e1![t]).toBeCloseTo(meanSquare([w(t - 2), w(t - 1), w(t)]), 14);
      expect(es![t]).toBeCloseTo(meanSquare([v(t - 2), v(t - 1), v(t)]), 14);
    }
    // t = 4: W = ((−2 − 1)/2, (0.5 + 2)/2, (3 − 0.5)/2) = (−3/2, 5/4, 5/4) → (9/4 + 25/16 + 25/16)/3.
    expect(e1![4]).toBeCloseTo((9 / 4 + 25 / 16 + 25 / 16) / 3, 14);
    for (const t of [0, 1, 2, 3]) {
      expect(e1![t]).toBeNaN();
      expect(es![t]).toBeNaN();
    }
  });

  it("Haar level 2 by hand: W_{2,s} = (V_{1,s} − V_{1,s−2})/2 (the à trous dilation)", () => {
    const r = returns(40, 7);
    const M = 4;
    const [e2] = energies(r, [2], params(HAAR, 2, M));
    const v1 = (s: number) => (r[s]! + r[s - 1]!) / 2;
    const w2 = (s: number) => (v1(s) - v1(s - 2)) / 2;
    // L_2 = 4 returns: W_2 from s = 4, its energy from t = 4 + M − 1 = 7.
    expect(levelSpan(2, 2)).toBe(4);
    expect(e2![6]).toBeNaN();
    for (let t = 7; t < r.length; t++) expect(e2![t]).toBeCloseTo(meanSquare([w2(t - 3), w2(t - 2), w2(t - 1), w2(t)]), 13);
  });

  it("db2 levels 1–3 equal a direct convolution of the returns with the equivalent filters", () => {
    const r = returns(120, 3);
    const p = params(DB2, 3, 5);
    const got = energies(r, [1, 2, 3, "smooth"], p);
    // Equivalent filter of level j: h̃ upsampled by 2^{j−1} convolved with g̃ upsampled by 2^{k−1}, k < j.
    const upsample = (f: Float64Array, by: number) => {
      const out = new Array<number>((f.length - 1) * by + 1).fill(0);
      f.forEach((v, l) => (out[l * by] = v));
      return out;
    };
    const convolve = (a: number[], b: number[]) => {
      const out = new Array<number>(a.length + b.length - 1).fill(0);
      a.forEach((x, i) => b.forEach((y, k) => (out[i + k]! += x * y)));
      return out;
    };
    const smooth = (j: number): number[] => (j === 0 ? [1] : convolve(smooth(j - 1), upsample(p.lo, 2 ** (j - 1))));
    const filters = [1, 2, 3].map((j) => convolve(smooth(j - 1), upsample(p.hi, 2 ** (j - 1))));
    filters.push(smooth(3));
    filters.forEach((f, b) => {
      expect(f.length).toBe(levelSpan(Math.min(b + 1, 3), 4));
      const coefficient = (s: number) => f.reduce((sum, v, k) => sum + v * r[s - k]!, 0);
      const first = f.length + p.span - 1; // the first day with M defined coefficients
      expect(got[b]![first - 1]).toBeNaN();
      for (let t = first; t < r.length; t++) {
        const window = Array.from({ length: p.span }, (_, i) => coefficient(t - p.span + 1 + i));
        expect(Math.abs(got[b]![t]! - meanSquare(window)), `band ${b}, day ${t}`).toBeLessThan(1e-12);
      }
    });
  });

  it("the energies add up: Σ_j e_j + e_s is the mean square of the returns when the window holds a whole burst", () => {
    // Returns zero outside a burst: the pyramid then sees the whole signal and preserves its energy exactly.
    const r = new Float64Array(200);
    r[0] = Number.NaN;
    const next = random(11);
    for (let s = 60; s < 80; s++) r[s] = (next() - 0.5) * 6;
    for (const wavelet of [HAAR, DB2]) {
      const p = params(wavelet, 3, 50);
      const bands: ModwtBand[] = [1, 2, 3, "smooth"];
      const got = energies(r, bands, p);
      const t = 79 + levelSpan(3, wavelet.dec_lo.length); // every coefficient the burst touches is in the window
      const total = got.reduce((sum, e) => sum + e[t]!, 0);
      expect(total).toBeCloseTo(meanSquare(Array.from(r.subarray(t - p.span + 1, t + 1))), 12);
    }
  });

  it("on a long random series, Σ_j e_j + e_s ≈ mean r² over the window (energy preservation up to the edges)", () => {
    const r = returns(6000, 5);
    const p = params(DB2, 4, 5000);
    const bands: ModwtBand[] = [1, 2, 3, 4, "smooth"];
    const got = energies(r, bands, p, r.length - 1, r.length);
    const t = r.length - 1;
    const total = got.reduce((sum, e) => sum + e[t]!, 0);
    const target = meanSquare(Array.from(r.subarray(t - p.span + 1, t + 1)));
    // The edges (L_J = 46 days) are under 1 % of the window.
    expect(Math.abs(total / target - 1)).toBeLessThan(0.02);
  });

  it("is causal: the energies at t do not change when returns after t do, and a range at a time equals all at once", () => {
    const r = returns(300, 9);
    const p = params(DB2, 3, 10);
    const bands: ModwtBand[] = [1, 3, "smooth"];
    const whole = energies(r, bands, p);
    const changed = Float64Array.from(r);
    for (let s = 151; s < r.length; s++) changed[s] = 50;
    const cut = energies(changed, bands, p);
    const pieces = bands.map(() => new Float64Array(r.length).fill(Number.NaN));
    for (let from = 0; from < r.length; from += 37) energyRange(r, bands, pieces, from, Math.min(r.length, from + 37), p);
    bands.forEach((_, b) => {
      expect(Array.from(cut[b]!.subarray(0, 151))).toEqual(Array.from(whole[b]!.subarray(0, 151)));
      expect(cut[b]![151]).not.toBe(whole[b]![151]);
      expect(Array.from(pieces[b]!)).toEqual(Array.from(whole[b]!));
    });
  });
});

describe("causal MODWT coefficients (the range channels' rng_w<j>, rng_v<J>)", () => {
  /** The coefficients of `bands` of a per-day series defined from day 0, for the days [from, to). */
  function coefficients(x: Float64Array, bands: ModwtBand[], p: EnergyParams, from = 0, to = x.length): Float64Array[] {
    const out = bands.map(() => new Float64Array(x.length).fill(Number.NaN));
    modwtRange(x, bands, out, from, to, p);
    return out;
  }

  it("Haar levels 1 and 2 by hand: W_1 = (x_s − x_{s−1})/2, V_2 = (V_{1,s} + V_{1,s−2})/2; defined from day L_J − 1", () => {
    const x = Float64Array.of(1, -2, 0.5, 3, -1, 4);
    const [w1, w2, v2] = coefficients(x, [1, 2, "smooth"], params(HAAR, 2, 1));
    const v1 = (s: number) => (x[s]! + x[s - 1]!) / 2;
    expect(w1![1]).toBeCloseTo((-2 - 1) / 2, 15);
    expect(w1![0]).toBeNaN();
    // L_2 = 4: W_2 and V_2 from day 3.
    expect(w2![2]).toBeNaN();
    expect(v2![2]).toBeNaN();
    for (const t of [3, 4, 5]) {
      expect(w2![t]).toBeCloseTo((v1(t) - v1(t - 2)) / 2, 15);
      expect(v2![t]).toBeCloseTo((v1(t) + v1(t - 2)) / 2, 15);
    }
  });

  it("energyRange's energies are the mean squares of these coefficients", () => {
    const r = returns(80, 4);
    const p = params(DB2, 2, 6);
    const [w2] = coefficients(r, [2], p);
    const [e2] = energies(r, [2], p);
    for (let t = 20; t < r.length; t++) expect(e2![t]).toBeCloseTo(meanSquare(Array.from(w2!.subarray(t - 5, t + 1))), 13);
  });

  it("a range at a time equals all at once, and a day's coefficients ignore later days", () => {
    const x = returns(200, 12).map((v) => (Number.isNaN(v) ? 0.3 : v));
    const p = params(DB2, 3, 1);
    const bands: ModwtBand[] = [1, 2, 3, "smooth"];
    const whole = coefficients(x, bands, p);
    const pieces = bands.map(() => new Float64Array(x.length).fill(Number.NaN));
    for (let from = 0, size = 1; from < x.length; from += size, size = (size * 5) % 17 || 1) modwtRange(x, bands, pieces, from, Math.min(x.length, from + size), p);
    const cut = coefficients(x.subarray(0, 120), bands, p);
    bands.forEach((band, b) => {
      expect(Array.from(pieces[b]!)).toEqual(Array.from(whole[b]!));
      expect(Array.from(cut[b]!)).toEqual(Array.from(whole[b]!.subarray(0, 120)));
      const first = levelSpan(band === "smooth" ? 3 : band, 4) - 1; // level j's first day
      expect(whole[b]![first - 1]).toBeNaN();
      expect(Number.isFinite(whole[b]![first])).toBe(true);
    });
  });
});
