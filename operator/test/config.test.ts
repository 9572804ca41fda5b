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

describe("leader election settings", () => {
  it("in a pod: on, in the pod's namespace; outside a cluster: off, in default", () => {
    expect(parseConfig({}, "wavelet-system")).toMatchObject({ LEADER_ELECTION: true, OPERATOR_NAMESPACE: "wavelet-system" });
    expect(parseConfig({})).toMatchObject({ LEADER_ELECTION: false, OPERATOR_NAMESPACE: "default" });
    expect(parseConfig({ LEADER_ELECTION: "true" })).toMatchObject({ LEADER_ELECTION: true, OPERATOR_NAMESPACE: "default" });
  });

  it("refuses a renew deadline that does not end before the lease, or leaves no time to retry", () => {
    expect(() => parseConfig({ LEASE_DURATION_SECONDS: "10", RENEW_DEADLINE_SECONDS: "10" })).toThrow(/LEASE_DURATION_SECONDS: must be greater than RENEW_DEADLINE_SECONDS/);
    expect(() => parseConfig({ RENEW_DEADLINE_SECONDS: "2", RETRY_PERIOD_SECONDS: "2" })).toThrow(/RENEW_DEADLINE_SECONDS: must be greater than RETRY_PERIOD_SECONDS/);
  });
});

describe("throughput settings (issue 13)", () => {
  it("workers and the API rate default to 4, 100/s with bursts of 200, and take other values", () => {
    expect(parseConfig({})).toMatchObject({ WORKERS: 4, KUBE_API_QPS: 200, KUBE_API_BURST: 400 });
    expect(parseConfig({ WORKERS: "16", KUBE_API_QPS: "500", KUBE_API_BURST: "1000" })).toMatchObject({ WORKERS: 16, KUBE_API_QPS: 500, KUBE_API_BURST: 1000 });
  });

  it("refuses a rate of zero and a fractional burst", () => {
    expect(() => parseConfig({ KUBE_API_QPS: "0" })).toThrow(/KUBE_API_QPS/);
    expect(() => parseConfig({ KUBE_API_BURST: "1.5" })).toThrow(/KUBE_API_BURST/);
  });
});

describe("custom metrics API settings (issue 25)", () => {
  it("off by default; scrapes every 5 s over a 30 s window", () => {
    expect(parseConfig({})).toMatchObject({ METRICS_API: false, METRICS_API_PORT: 6443, METRICS_SCRAPE_INTERVAL_SECONDS: 5, METRICS_WINDOW_SECONDS: 30 });
    expect(parseConfig({ METRICS_API: "true", METRICS_SCRAPE_INTERVAL_SECONDS: "2", METRICS_WINDOW_SECONDS: "10", METRICS_SCRAPE_TIMEOUT_SECONDS: "1" })).toMatchObject({
      METRICS_API: true,
      METRICS_SCRAPE_INTERVAL_SECONDS: 2,
      METRICS_WINDOW_SECONDS: 10,
    });
  });

  it("refuses a window that cannot hold two scrapes, a timeout as long as the interval, the operator's own port", () => {
    expect(() => parseConfig({ METRICS_SCRAPE_INTERVAL_SECONDS: "20", METRICS_WINDOW_SECONDS: "30", METRICS_SCRAPE_TIMEOUT_SECONDS: "1" })).toThrow(/METRICS_WINDOW_SECONDS: must hold at least two scrapes/);
    expect(() => parseConfig({ METRICS_SCRAPE_TIMEOUT_SECONDS: "5" })).toThrow(/METRICS_SCRAPE_TIMEOUT_SECONDS: must be shorter/);
    expect(() => parseConfig({ METRICS_API_PORT: "8080" })).toThrow(/METRICS_API_PORT: must differ from PORT/);
  });
});
