import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { SERVER_JS, GUIDE_FEATURES, fresh, json, startServer, statuses, testApp } from "./helpers.js";

/** TRUST_PROXY: whose X-Forwarded-For is believed, and what a forwarded value may be. */

// A budget of 20 rows per minute; the largest requests fit in it.
const LIMITED = { RATE_LIMIT_MAX: "20", MAX_BATCH_SAMPLES: "20", MAX_STREAM_LENGTH: "20", MODELS: "xgboost" };

describe("TRUST_PROXY", () => {
  it("a set that trusts every address is refused at start: exit 2, one line naming it", () => {
    for (const setting of [
      "0.0.0.0/1,128.0.0.0/1,::/1,8000::/1", // the halves of both families: everyone, split
      "0.0.0.0/0",
      "::/0",
      "0.0.0.0/2,64.0.0.0/2,128.0.0.0/1", // every IPv4 address
      "::/1", // holds ::ffff:0:0/96, every IPv4 address as IPv6
      "2000::/3", // every IPv6 address on the internet
    ]) {
      const run = spawnSync(process.execPath, [SERVER_JS], { env: { ...process.env, TRUST_PROXY: setting }, encoding: "utf8", timeout: 25_000 });
      expect(run.status, setting).toBe(2);
      expect(run.stderr, setting).toMatch(/^invalid configuration:\n {2}TRUST_PROXY=".*": trusts every IPv[46] (internet )?address/);
      expect(run.stderr.trim().split("\n"), setting).toHaveLength(2);
      expect(run.stderr, setting).not.toMatch(/TypeError|\bat /);
    }
  }, 120_000);

  it("forwarded values that are not addresses count as the proxy, and ip:port as the ip: no fresh budgets", async () => {
    const server = await startServer({ ...LIMITED, TRUST_PROXY: "127.0.0.1" });
    const predict = (forwarded: string) =>
      fresh(`${server.url}/predict`, { body: { features: GUIDE_FEATURES }, headers: { "x-forwarded-for": forwarded } }).then((r) => r.status);
    const send = async (n: number, forwarded: (i: number) => string) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(await predict(forwarded(i)));
      return out;
    };
    const allowed = [...Array<number>(20).fill(200), 429];
    try {
      // Made-up values share the budget of the proxy that relayed them (here the direct peer).
      expect(await send(21, (i) => `x${i}`)).toEqual(allowed);
      expect(await predict("127.0.0.1")).toBe(429);
      // Application Gateway writes ip:port: a new port is the same client.
      expect(await send(21, (i) => `203.0.113.5:${50_000 + i}`)).toEqual(allowed);
      expect(await predict("203.0.113.5")).toBe(429);
      expect(await send(21, (i) => `[2001:db8::1]:${443 + i}`)).toEqual(allowed);
      // Real addresses are clients of their own.
      expect(await predict("198.51.100.1")).toBe(200);
      expect(await predict("[2001:db8:1::1]")).toBe(200);
    } finally {
      server.child.kill("SIGKILL");
    }
  }, 60_000);

  it("a listed proxy is believed, through hops written as ip:port; a peer not listed is not", async () => {
    const app = await testApp({ ...LIMITED, TRUST_PROXY: "192.0.2.1, 10.0.0.0/8" });
    const predict = (remoteAddress: string, forwarded: string) =>
      app.inject({ method: "POST", url: "/predict", remoteAddress, ...json({ features: GUIDE_FEATURES }), headers: { "content-type": "application/json", "x-forwarded-for": forwarded } });
    const allowed = [...Array<number>(20).fill(200), 429];
    // The client behind an inner proxy that Application Gateway (the peer) reported as ip:port.
    expect(await statuses(21, () => predict("192.0.2.1", "198.51.100.7, 10.0.0.5:4431"))).toEqual(allowed);
    expect((await predict("192.0.2.1", "198.51.100.7")).statusCode).toBe(429);
    expect((await predict("192.0.2.1", "198.51.100.8, 10.0.0.5:4431")).statusCode).toBe(200);
    // An unlisted peer's forwarded addresses are its own claims.
    expect(await statuses(21, (i) => predict("203.0.113.9", `198.51.100.${i}`))).toEqual(allowed);
    await app.close();
  });
});
