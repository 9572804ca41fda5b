import { describe, expect, it } from "vitest";
import { parseSelector, SelectorError } from "../../src/metricsapi/selector.js";

/**
 * Expectations checked against k8s.io/apimachinery v0.34.12's labels.Parse and Matches (the
 * parser the API server and the HPA use), selector by selector and label set by label set.
 */

const SETS: Record<string, Record<string, string> | undefined> = {
  none: undefined,
  empty: {},
  "a=b": { a: "b" },
  "a=c": { a: "c" },
  "a=": { a: "" },
  "a=5": { a: "5" },
  "a=b,c=x": { a: "b", c: "x" },
  "x/a=b": { "x/a": "b" },
};

const matching = (selector: string) => {
  const matches = parseSelector(selector);
  return Object.keys(SETS).filter((name) => matches(SETS[name]));
};

describe("parseSelector", () => {
  it.each([
    ["", ["none", "empty", "a=b", "a=c", "a=", "a=5", "a=b,c=x", "x/a=b"]],
    ["   ", ["none", "empty", "a=b", "a=c", "a=", "a=5", "a=b,c=x", "x/a=b"]],
    ["a=b", ["a=b", "a=b,c=x"]],
    ["a==b", ["a=b", "a=b,c=x"]],
    [" a = b ", ["a=b", "a=b,c=x"]],
    ["a!=b", ["none", "empty", "a=c", "a=", "a=5", "x/a=b"]],
    ["a=", ["a="]],
    ["a!=", ["none", "empty", "a=b", "a=c", "a=5", "a=b,c=x", "x/a=b"]],
    ["a in (b,c)", ["a=b", "a=c", "a=b,c=x"]],
    ["a\tin\t( b , c )", ["a=b", "a=c", "a=b,c=x"]],
    ["a notin (b)", ["none", "empty", "a=c", "a=", "a=5", "x/a=b"]],
    ["a in ()", ["a="]],
    ["a in (,c)", ["a=c", "a="]],
    ["a in (b,,c)", ["a=b", "a=c", "a=", "a=b,c=x"]],
    ["a notin ()", ["none", "empty", "a=b", "a=c", "a=5", "a=b,c=x", "x/a=b"]],
    ["a", ["a=b", "a=c", "a=", "a=5", "a=b,c=x"]],
    ["!a", ["none", "empty", "x/a=b"]],
    ["a,!c", ["a=b", "a=c", "a=", "a=5"]],
    ["a=b,c", ["a=b,c=x"]],
    ["c notin (x),a", ["a=b", "a=c", "a=", "a=5"]],
    ["x/a=b", ["x/a=b"]],
    ["a>4", ["a=5"]],
    ["a<6", ["a=5"]],
    ["a>5", []],
    ["in=b", []],
    ["a in (in,notin)", []],
  ])("%j selects %j", (selector, expected) => {
    expect(matching(selector)).toEqual(expected);
  });

  it.each([
    "a b",
    "a=b c",
    "a,",
    ",a",
    "a,,b",
    "a=(",
    "a in b",
    "a in (b",
    "a in (b c)",
    "!a=b",
    "!!a",
    "a=b=c",
    "a!b",
    "a=>1",
    "a=!b",
    "(a)",
    "=a",
    "a=-b",
    "a=b-",
    `a=${"v".repeat(64)}`,
    `${"k".repeat(64)}=v`,
    "Example.com/a=b",
    "a/b/c=d",
    "/a=b",
    "-a=b",
    "é=b",
    "a=é",
    "a>x",
    "a>",
    "a>-1",
    "a<99999999999999999999",
  ])("refuses %j", (selector) => {
    expect(() => parseSelector(selector)).toThrow(SelectorError);
  });

  it("reads what an HPA sends for a ReplicaSet's selector", () => {
    const matches = parseSelector("app.kubernetes.io/instance=spx,wavelet.dev/color=blue,wavelet.dev/model=spx");
    expect(matches({ "app.kubernetes.io/instance": "spx", "wavelet.dev/model": "spx", "wavelet.dev/color": "blue", extra: "x" })).toBe(true);
    expect(matches({ "app.kubernetes.io/instance": "spx", "wavelet.dev/model": "spx", "wavelet.dev/color": "green" })).toBe(false);
  });

  it("does not take inherited properties for labels", () => {
    expect(parseSelector("constructor")({})).toBe(false);
    expect(parseSelector("!toString")({})).toBe(true);
  });
});
