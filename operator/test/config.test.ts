import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";

describe("WATCH_NAMESPACE", () => {
  it("unset or empty: the whole cluster", () => {
    expect(parseConfig({}).WATCH_NAMESPACE).toEqual([]);
    expect(parseConfig({ WATCH_NAMESPACE: "" }).WATCH_NAMESPACE).toEqual([]);
  });

  it("one namespace, as before", () => {
    expect(parseConfig({ WATCH_NAMESPACE: "team-a" }).WATCH_NAMESPACE).toEqual(["team-a"]);
  });

  it("a comma list, spaces and repeats ignored", () => {
    expect(parseConfig({ WATCH_NAMESPACE: "team-a, team-b,,team-a" }).WATCH_NAMESPACE).toEqual(["team-a", "team-b"]);
  });

  it("refuses a name that is not a namespace", () => {
    expect(() => parseConfig({ WATCH_NAMESPACE: "team-a,Team_B" })).toThrow(/WATCH_NAMESPACE: namespace names are DNS-1123 labels/);
  });
});
