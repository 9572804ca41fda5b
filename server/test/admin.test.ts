import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "./helpers.js";

/**
 * Admin calls come from people and scripts, not web pages (issue 22, item 7). A page on the
 * server's machine could send a CORS "simple" request (text/plain, no preflight) to the
 * loopback-only /admin/reload, directly or through DNS rebinding; a proxy that set only
 * X-Real-IP or Via made a remote client look local. Real requests, raw headers, to a real
 * server process.
 */

/** POST /admin/reload with exactly these headers (Host included) and body: the status. */
function reload(server: ServerProcess, headers: Record<string, string>, body = ""): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}/admin/reload`, { method: "POST", agent: false, headers: { host: `127.0.0.1:${server.port}`, ...headers } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const JSON_TYPE = { "content-type": "application/json" };
const CONSOLE = "https://console.example";

describe("admin refuses what a browser or a proxy would send", () => {
  it("loopback-only admin: JSON from this host reloads; a page's simple request, another Host, any forwarding header do not", async () => {
    const server = await startServer({ ALLOWED_ORIGINS: CONSOLE, MODELS: "xgboost" });
    try {
      // What the review sent: a CORS simple request from a page, any Origin.
      expect(await reload(server, { "content-type": "text/plain", origin: "http://evil.example" }, "{}")).toBe(403);
      expect(await reload(server, { "content-type": "text/plain" }, "{}")).toBe(415);
      expect(await reload(server, { "content-type": "application/x-www-form-urlencoded" }, "a=1")).toBe(415);
      expect(await reload(server, {})).toBe(415);
      expect(await reload(server, { ...JSON_TYPE, origin: "http://evil.example" }, "{}")).toBe(403);
      expect(await reload(server, { ...JSON_TYPE, origin: "null" }, "{}")).toBe(403);
      // DNS rebinding: the page's name resolves to 127.0.0.1, its Host header stays its own.
      expect(await reload(server, { ...JSON_TYPE, host: `evil.example:${server.port}` }, "{}")).toBe(403);
      // A proxy on this host relaying a remote client, whatever header it sets.
      const relayed: Record<string, string> = {
        "x-real-ip": "203.0.113.9",
        via: "1.1 proxy",
        "x-forwarded-host": "api.example",
        "x-forwarded-proto": "https",
        "true-client-ip": "203.0.113.9",
        "x-client-ip": "203.0.113.9",
      };
      for (const [name, value] of Object.entries(relayed)) expect(await reload(server, { ...JSON_TYPE, [name]: value }, "{}"), name).toBe(403);
      // From this host, as a script sends it: JSON, with or without a body; localhost names too.
      expect(await reload(server, JSON_TYPE, "{}")).toBe(200);
      expect(await reload(server, { "content-type": "application/json; charset=utf-8" })).toBe(200);
      expect(await reload(server, { ...JSON_TYPE, host: `localhost:${server.port}` })).toBe(200);
      // A page ALLOWED_ORIGINS names (its requests pass a CORS preflight first).
      expect(await reload(server, { ...JSON_TYPE, origin: CONSOLE }, "{}")).toBe(200);
    } finally {
      server.child.kill("SIGKILL");
      await server.exit;
    }
  }, 60_000);

  it("with ADMIN_API_KEY, the key is needed and so is JSON from no other page", async () => {
    const adminKey = "admin-key-0123456789ab";
    const server = await startServer({ ADMIN_API_KEY: adminKey, MODELS: "xgboost" });
    try {
      const key = { "x-api-key": adminKey };
      expect(await reload(server, { ...key, "content-type": "text/plain" }, "{}")).toBe(415);
      expect(await reload(server, { ...key, ...JSON_TYPE, origin: "http://evil.example" }, "{}")).toBe(403);
      expect(await reload(server, { ...JSON_TYPE }, "{}")).toBe(401);
      // A key works from anywhere, through proxies too.
      expect(await reload(server, { ...key, ...JSON_TYPE, "x-real-ip": "203.0.113.9", host: "api.example" }, "{}")).toBe(200);
    } finally {
      server.child.kill("SIGKILL");
      await server.exit;
    }
  }, 60_000);
});
