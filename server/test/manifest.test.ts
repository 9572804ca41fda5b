import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { featureParams } from "../src/features/channels.js";
import { featureSpecSchema, manifestSchema } from "../src/schemas/manifest.js";
import { RETURN_BUNDLE, VOL_BUNDLE } from "./helpers.js";
import { type Json, lags, multiChannelFeatures, rangeFeatures } from "./linear-bundle.js";

const read = (dir: string): Json => JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
/** The return bundle's manifest with the 6-channel features of linear-bundle.ts (min_prices 74). */
function multiChannel(): Json {
  const { feature_range: _ofTheReturnFeatures, ...manifest } = read(RETURN_BUNDLE);
  return { ...manifest, features: multiChannelFeatures() };
}

const issues = (m: Json) => {
  const parsed = manifestSchema.safeParse(m);
  return parsed.success ? [] : parsed.error.issues.map((i) => i.message);
};

describe("the manifest's feature channels", () => {
  it("an old manifest has one channel, its denoised series", () => {
    expect(manifestSchema.parse(read(RETURN_BUNDLE)).features.channels).toEqual(["dn_ret"]);
    const vol = read(VOL_BUNDLE);
    delete vol.features.channels; // the committed vol bundle may already have channels
    vol.features.names = lags("dn_sq", vol.features.window);
    vol.features.min_prices = vol.features.trailing + vol.features.window;
    delete vol.features.energy;
    delete vol.features.garch;
    delete vol.feature_range;
    expect(manifestSchema.parse(vol).features.channels).toEqual(["dn_sq"]);
  });

  it("accepts a consistent multi-channel manifest and derives its parameters", () => {
    const parsed = manifestSchema.parse(multiChannel());
    const p = featureParams(featureSpecSchema.parse(parsed.features));
    expect(p.minPrices).toBe(74);
    expect(p.channels.map((c) => c.kind)).toEqual(["denoised", "return", "energy", "energy", "energy", "gjr"]);
    expect(p.energy!.lo.length).toBe(2);
    expect(p.energy!.lo[0]).toBeCloseTo(0.5, 15); // Haar: rec_lo / √2
    expect(p.energy!.hi[1]).toBeCloseTo(-0.5, 15);
  });

  it("every wav_* channel has the deepest level's history, as the pipeline counts it (wav_e1 alone with J = 4, M = 22: 22 + 16 − 1)", () => {
    const m = multiChannel();
    m.features.channels = ["dn_ret", "ret", "wav_e1"];
    m.features.names = m.features.channels.flatMap((c: string) => lags(c, 10));
    m.features.energy = { levels: 4, span: 22 };
    delete m.features.garch;
    m.features.min_prices = 10 + 37;
    expect(issues(m)).toEqual([]);
    m.features.min_prices = 10 + 32; // wav_e1's own 22 + 2 − 1 = 23 would make dn_ret's 32 the longest
    expect(issues(m).join()).toContain("(47)");
  });

  const spoilt: [string, (m: Json) => void, string][] = [
    ["names not window × channels", (m) => m.features.names.pop(), "window × channels"],
    ["names in another order than the channels", (m) => m.features.names.push(...m.features.names.splice(0, 10)), "channel after channel"],
    ["min_prices not window + the longest history", (m) => (m.features.min_prices = 42), "(74)"],
    ["an energy channel without energy settings", (m) => delete m.features.energy, "features.energy"],
    ["energy settings without an energy channel", (m) => {
      m.features.channels = ["dn_ret", "ret", "gjr_vol"];
      m.features.names = m.features.channels.flatMap((c: string) => lags(c, 10));
    }, "features.energy"],
    ["gjr_vol without garch parameters", (m) => delete m.features.garch, "features.garch"],
    ["an energy level above energy.levels", (m) => (m.features.channels[3] = "wav_e3"), "above energy.levels"],
    ["an unknown channel", (m) => (m.features.channels[1] = "rsi"), "not a known channel"],
    ["a repeated channel", (m) => (m.features.channels[1] = "dn_ret"), "must not repeat"],
    ["a denoised channel of the other series", (m) => (m.features.channels[0] = "dn_sq"), "the denoised channel of series log_return_pct is dn_ret"],
    ["garch with alpha + gamma < 0", (m) => (m.features.garch.gamma = -0.5), "alpha + gamma"],
    ["a feature_range of the wrong length", (m) => (m.feature_range = { min: [0], max: [1] }), "one entry per feature"],
  ];
  for (const [name, spoil, message] of spoilt) {
    it(`refuses ${name}`, () => {
      const m = multiChannel();
      expect(issues(m)).toEqual([]);
      spoil(m);
      expect(issues(m).join("; ")).toContain(message);
    });
  }
});

describe("the manifest's range channels (features from daily bars)", () => {
  /** The return bundle's manifest with the range features of linear-bundle.ts (min_prices 54). */
  function ranged(estimator: "garman_klass" | "parkinson" = "garman_klass"): Json {
    const { feature_range: _ofTheReturnFeatures, ...manifest } = read(RETURN_BUNDLE);
    return { ...manifest, features: rangeFeatures(estimator) };
  }
  const withChannels = (m: Json, channels: string[]) => {
    m.features.channels = channels;
    m.features.names = channels.flatMap((c) => lags(c, 10));
  };

  it("accepts them as the pipeline writes them, for either estimator, and derives their parameters", () => {
    for (const estimator of ["garman_klass", "parkinson"] as const) {
      const parsed = manifestSchema.parse(ranged(estimator));
      const p = featureParams(featureSpecSchema.parse(parsed.features));
      expect(p.minPrices).toBe(54);
      expect(p.inputs).toEqual(estimator === "garman_klass" ? ["open", "high", "low", "close"] : ["high", "low", "close"]);
      expect(p.channels.map((c) => c.kind)).toEqual(["denoised", "range", "range", "rangeModwt", "rangeModwt", "gjr", "gjrx"]);
      expect(p.range).toMatchObject({ estimator, logFloor: 1e-4, staleOpenRtol: 1e-9, levels: 1 });
      expect(p.range!.lo[0]).toBeCloseTo(0.5, 15);
      expect(p.garchx).toEqual({ omega: 0.01, alpha: 0.02, gamma: 0.1, beta: 0.7, delta: 0.15, kappa: 0.9, span: 5, trailing: 40, horizon: 5 });
    }
  });

  it("a manifest without inputs reads closes", () => {
    expect(manifestSchema.parse(read(RETURN_BUNDLE)).features).toMatchObject({ inputs: ["close"] });
  });

  it("histories: rng_<n>d n days, rng_w/rng_v the deepest level's L_J, gjrx_vol T + m − 1", () => {
    const m = ranged();
    withChannels(m, ["dn_ret", "rng_22d"]);
    delete m.features.garch;
    delete m.features.garchx;
    m.features.min_prices = 10 + 32; // dn_ret's 32 beats rng_22d's 22
    expect(issues(m)).toEqual([]);
    withChannels(m, ["dn_ret", "rng_w1"]);
    m.features.range.levels = 6; // Haar: L_6 = 63 + 1 = 64
    expect(issues(m).join()).toContain("(74)");
    m.features.min_prices = 74;
    expect(issues(m)).toEqual([]);
    const x = ranged();
    x.features.garchx.span = 30; // 40 + 30 − 1 = 69
    expect(issues(x).join()).toContain("(79)");
  });

  const spoilt: [string, (m: Json) => void, string][] = [
    ["a rng_* channel without range settings", (m) => delete m.features.range, "features.range must be given exactly when"],
    ["range settings without a range channel", (m) => {
      withChannels(m, ["dn_ret", "gjr_vol"]);
      delete m.features.garchx;
    }, "features.range must be given exactly when"],
    ["gjrx_vol without garchx parameters", (m) => delete m.features.garchx, "features.garchx must be given exactly when"],
    ["garchx parameters without gjrx_vol", (m) => withChannels(m, ["dn_ret", "rng_1d", "rng_5d", "rng_w1", "rng_v1", "gjr_vol"]), "features.garchx must be given exactly when"],
    ["rng_w<j> above range.levels", (m) => (m.features.channels[3] = "rng_w2"), "rng_w<j> needs j ≤ range.levels"],
    ["rng_v<J> with J not range.levels", (m) => (m.features.channels[4] = "rng_v2"), "rng_v<J> J = range.levels (1)"],
    ["inputs without the open Garman–Klass reads", (m) => (m.features.inputs = ["high", "low", "close"]), 'features.inputs must be ["open","high","low","close"] for the garman_klass estimator'],
    ["inputs of closes only with range channels", (m) => delete m.features.inputs, "features.inputs must be"],
    ["bar inputs without range channels", (m) => {
      withChannels(m, ["dn_ret", "gjr_vol"]);
      delete m.features.range;
      delete m.features.garchx;
    }, 'features.inputs must be ["close"] without range channels'],
    ["an unknown bar field", (m) => (m.features.inputs = ["open", "high", "low", "close", "volume"]), "Invalid option"],
    ["an unknown estimator", (m) => (m.features.range.estimator = "yang_zhang"), "Invalid option"],
    ["a negative delta", (m) => (m.features.garchx.delta = -0.1), "Too small"],
    ["garchx with alpha + gamma < 0", (m) => (m.features.garchx.gamma = -0.5), "garchx: alpha + gamma"],
    ["garchx of another kind", (m) => (m.features.garchx.kind = "gjr"), "Invalid input"],
    ["min_prices not window + the longest history", (m) => (m.features.min_prices = 42), "(54)"],
  ];
  for (const [name, spoil, message] of spoilt) {
    it(`refuses ${name}`, () => {
      const m = ranged();
      expect(issues(m)).toEqual([]);
      spoil(m);
      expect(issues(m).join("; ")).toContain(message);
    });
  }
  it("refuses parkinson with an open it does not read", () => {
    const m = ranged("parkinson");
    m.features.inputs = ["open", "high", "low", "close"];
    expect(issues(m).join()).toContain('features.inputs must be ["high","low","close"] for the parkinson estimator');
  });
});

describe("the manifest of an imported bundle (named features)", () => {
  /** The return bundle's manifest as the importer writes one: named features, no calibration data. */
  function imported(): Json {
    const { feature_range: _range, target_range: _targets, ...manifest } = read(RETURN_BUNDLE);
    for (const entry of Object.values<Json>(manifest.models)) delete entry.calibration;
    return {
      ...manifest,
      features: { kind: "named", names: ["rsi_14", "macd", "vol_20", "ret_1"], sequence_length: 2 },
      conformal: { level: 0.9, lower_bound_zero: false, available: false, why: "imported without --calibration data" },
      source: { kind: "import", dir_files: { "xgboost_optimized.ubj": "0".repeat(64) }, pickle: false },
    };
  }

  it("accepts one without calibration, target_range or feature_range, and keeps its source", () => {
    const parsed = manifestSchema.parse(imported());
    expect(parsed.features).toEqual({ kind: "named", names: ["rsi_14", "macd", "vol_20", "ret_1"], sequence_length: 2 });
    expect(parsed.source).toEqual(imported().source);
    expect(parsed.conformal.available).toBe(false);
  });

  it("a computed bundle may say so, and still needs its calibration and target_range", () => {
    const ours = read(RETURN_BUNDLE);
    expect(issues({ ...ours, features: { ...ours.features, kind: "computed" } })).toEqual([]);
    delete ours.models.lstm.calibration;
    delete ours.target_range;
    expect(issues(ours)).toEqual(["a bundle that computes its features needs target_range", "a bundle that computes its features needs every model's calibration"]);
  });

  const spoilt: [string, (m: Json) => void, string][] = [
    ["a repeated name", (m) => (m.features.names[3] = "macd"), "features.names must be unique: macd repeated"],
    ["an empty name", (m) => (m.features.names[0] = ""), "Too small"],
    ["no names", (m) => (m.features.names = []), "Too small"],
    ["a sequence_length that does not divide the names", (m) => (m.features.sequence_length = 3), "features.sequence_length (3) must divide the 4 names"],
    ["a kind the server does not know", (m) => (m.features.kind = "learned"), "Invalid discriminator value"],
    ["a feature_range of the wrong length", (m) => (m.feature_range = { min: [0], max: [1] }), "one entry per feature"],
  ];
  for (const [name, spoil, message] of spoilt) {
    it(`refuses ${name}`, () => {
      const m = imported();
      spoil(m);
      expect(issues(m).join("; ")).toContain(message);
    });
  }
});

it("the schemas import no feature code (the channel vocabulary sits below both: schemas/channels.ts)", () => {
  const dir = join(import.meta.dirname, "../src/schemas");
  const imports = readdirSync(dir).flatMap((file) => [...readFileSync(join(dir, file), "utf8").matchAll(/from "([^"]+)"/g)].map((m) => `${file}: ${m[1]}`));
  expect(imports.filter((line) => line.includes("features/"))).toEqual([]);
});
