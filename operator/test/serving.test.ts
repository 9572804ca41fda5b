import { describe, expect, it } from "vitest";
import { servingColors } from "../src/reconcile/serving.js";

const rollout = (phase: "Deploying" | "Analyzing" | "AwaitingPromotion" | "Promoting" | "ScalingDown" | "Failed", color: "blue" | "green") => ({
  phase,
  color,
  templateHash: "h",
  startedAt: "2026-01-01T00:00:00Z",
  since: "2026-01-01T00:00:00Z",
});

describe("the colours that carry traffic, or may at any moment (issue 21)", () => {
  it("none before anything has served: the first deployment may replace its pods", () => {
    expect([...servingColors({ rollout: rollout("Deploying", "blue") }, "blue")]).toEqual([]);
    expect([...servingColors(undefined, undefined)]).toEqual([]);
  });

  it("the active colour, and the one the active Service selects", () => {
    expect([...servingColors({ activeColor: "blue", rollout: rollout("Deploying", "green") }, "blue")]).toEqual(["blue"]);
    expect([...servingColors({ activeColor: "blue", rollout: rollout("Deploying", "green") }, "green")]).toEqual(["blue", "green"]);
  });

  it("the new colour of a recorded promotion, the old one during its scale-down delay", () => {
    expect([...servingColors({ activeColor: "blue", rollout: rollout("Promoting", "green") }, "blue")]).toEqual(["blue", "green"]);
    expect([...servingColors({ activeColor: "green", rollout: rollout("ScalingDown", "blue") }, "green")]).toEqual(["green", "blue"]);
    expect([...servingColors({ activeColor: "green", rollout: rollout("Failed", "blue") }, "green")]).toEqual(["green"]);
  });
});
