import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { loggedUrl, loggerOptions } from "../src/logging.js";
import { testApp } from "./helpers.js";

describe("request logs", () => {
  it("hide every query value at info too (a client may send ?api_key=)", async () => {
    let logs = "";
    const stream = new Writable({ write: (chunk, _encoding, done) => ((logs += String(chunk)), done()) });
    const app = await testApp({ API_KEY: "k".repeat(24) }, { logger: { ...loggerOptions("info"), stream } });
    try {
      await app.inject({ method: "GET", url: "/models?api_key=query-key-secret&token" });
      expect(logs).toContain('"url":"/models?api_key=[redacted]&[redacted]"');
      expect(logs).not.toContain("query-key-secret");
      expect(logs).not.toContain('"headers"'); // headers only at debug and trace
    } finally {
      await app.close();
    }
  });

  it("name the address the rate limit charges: a forwarded value that is no address is the proxy's (issue 22, item 4)", async () => {
    let logs = "";
    const stream = new Writable({ write: (chunk, _encoding, done) => ((logs += String(chunk)), done()) });
    const app = await testApp({ TRUST_PROXY: "203.0.113.7" }, { logger: { ...loggerOptions("info"), stream } });
    try {
      await app.inject({ method: "GET", url: "/livez", remoteAddress: "203.0.113.7", headers: { "x-forwarded-for": "x1" } });
      await app.inject({ method: "GET", url: "/livez", remoteAddress: "203.0.113.7", headers: { "x-forwarded-for": "198.51.100.9:54321" } });
      const addresses = [...logs.matchAll(/"remoteAddress":"([^"]*)"/g)].map((m) => m[1]);
      expect(addresses).toEqual(["203.0.113.7", "198.51.100.9"]);
    } finally {
      await app.close();
    }
  });

  it("loggedUrl keeps the path and the query's names", () => {
    expect(loggedUrl("/predict")).toBe("/predict");
    expect(loggedUrl("/predict?")).toBe("/predict?[redacted]");
    expect(loggedUrl("/x?a=1&b=&c")).toBe("/x?a=[redacted]&b=[redacted]&[redacted]");
  });
});
