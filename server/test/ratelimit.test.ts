import type { FastifyInstance } from "fastify";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { network } from "../src/plugins/rateLimit.js";
import { GUIDE_FEATURES, statuses, testApp } from "./helpers.js";

// A budget of 20 rows per minute; the largest requests fit in it.
const LIMITED = { RATE_LIMIT_MAX: "20", MAX_BATCH_SAMPLES: "20", MAX_STREAM_LENGTH: "20" };

interface Call {
  headers?: Record<string, string>;
  remoteAddress?: string;
}

const post = (app: FastifyInstance, url: string, body: unknown, call: Call = {}) =>
  app.inject({
    method: "POST",
    url,
    payload: JSON.stringify(body),
    headers: { "content-type": "application/json", ...call.headers },
    ...(call.remoteAddress ? { remoteAddress: call.remoteAddress } : {}),
  });
const single = (app: FastifyInstance, call: Call = {}) => post(app, "/predict", { features: GUIDE_FEATURES, model_type: "xgboost" }, call);
const batch = (app: FastifyInstance, rows: number, call: Call = {}) =>
  post(app, "/predict/batch", { samples: Array(rows).fill(GUIDE_FEATURES), model_type: "xgboost" }, call);

const allowed = (n: number, refused = 1) => [...Array<number>(n).fill(200), ...Array<number>(refused).fill(429)];

describe("rate limiting", () => {
  it("a client rotating made-up API keys gets no fresh budget", async () => {
    const app = await testApp(LIMITED);
    expect(await statuses(21, (i) => single(app, { headers: { "x-api-key": `made-up-key-number-${i}` } }))).toEqual(allowed(20));
    expect((await single(app, { headers: { authorization: "Bearer yet-another-made-up-key" } })).statusCode).toBe(429);
    await app.close();
  });

  it("verified clients behind one address have their own budgets; a refused key spends the address's, not theirs", async () => {
    const [alice, bob] = ["alice-key-0123456789", "bob-key-012345678901"];
    const app = await testApp({ ...LIMITED, API_KEY: `${alice},${bob}` });
    const as = (key: string) => () => single(app, { headers: { "x-api-key": key } });
    expect(await statuses(21, as(alice))).toEqual(allowed(20));
    const refused = await single(app, { headers: { "x-api-key": "made-up-key-0123456789" } });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers["x-ratelimit-remaining"]).toBe("19");
    expect(await statuses(21, as(bob))).toEqual(allowed(20));
    await app.close();
  });

  it("a stream with a window_size above the bundle's window is charged the fewer rows it predicts", async () => {
    const app = await testApp(LIMITED);
    const stream = await post(app, "/predict/stream", { features: [...GUIDE_FEATURES, 0.1, 0.2, 0.3], window_size: 12, model_type: "xgboost" });
    expect(stream.statusCode).toBe(200);
    expect(stream.body.trim().split("\n")).toHaveLength(3); // 2 predictions, then done
    expect(stream.headers["x-ratelimit-remaining"]).toBe("18");
    await app.close();
  });

  it("X-Forwarded-For is ignored unless TRUST_PROXY says so", async () => {
    const direct = await testApp(LIMITED);
    const forged = (i: number) => single(direct, { remoteAddress: "203.0.113.7", headers: { "x-forwarded-for": `198.51.100.${i}` } });
    expect(await statuses(21, forged)).toEqual(allowed(20));
    await direct.close();

    // Behind one proxy, the address it appends is the client's: each client has its own budget.
    const proxied = await testApp({ ...LIMITED, TRUST_PROXY: "1" });
    const via = (client: string) => single(proxied, { remoteAddress: "10.0.0.2", headers: { "x-forwarded-for": client } });
    expect(await statuses(21, () => via("198.51.100.1"))).toEqual(allowed(20));
    expect((await via("198.51.100.2")).statusCode).toBe(200);
    await proxied.close();
  });

  it("an IPv6 client is its /64, which it can roam; an IPv4 one its address, mapped or not", async () => {
    expect(network("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(network("2001:db8:1:2::")).toBe("2001:db8:1:2::/64");
    expect(network("2001:0db8::7")).toBe("2001:db8:0:0::/64");
    expect(network("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(network("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(network("192.0.2.1")).toBe("192.0.2.1");
    const app = await testApp(LIMITED);
    expect(await statuses(21, (i) => single(app, { remoteAddress: `2001:db8:1:2:${i.toString(16)}::1` }))).toEqual(allowed(20));
    expect((await single(app, { remoteAddress: "2001:db8:1:3::1" })).statusCode).toBe(200);
    await app.close();
  });

  it("the prediction routes share one budget, charged by rows: a big batch spends what as many single requests would", async () => {
    const app = await testApp(LIMITED);
    const res = await batch(app, 15);
    expect(res.statusCode).toBe(200);
    expect(res.headers).toMatchObject({ "x-ratelimit-limit": "20", "x-ratelimit-remaining": "5" });
    // A request whose rows do not fit is refused, having spent only the row charged on arrival.
    const tooBig = await batch(app, 10);
    expect(tooBig.statusCode).toBe(429);
    expect(tooBig.json().message).toContain("20 rows per 60 s");
    expect(tooBig.headers["x-ratelimit-remaining"]).toBe("4");
    // A stream costs the rows it predicts: 13 values in windows of 10 → 4 rows, the 4 left.
    const stream = await post(app, "/predict/stream", { features: [...GUIDE_FEATURES, 0.1, 0.2, 0.3], model_type: "xgboost" });
    expect(stream.statusCode).toBe(200);
    expect(stream.body.trim().split("\n")).toHaveLength(5);
    const refused = await single(app);
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error).toBe("rate_limited");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(refused.headers["x-ratelimit-remaining"]).toBe("0");

    // Another client still has its budget; a whole-budget batch spends all of it.
    expect((await batch(app, 20, { remoteAddress: "192.0.2.9" })).statusCode).toBe(200);
    expect((await single(app, { remoteAddress: "192.0.2.9" })).statusCode).toBe(429);
    await app.close();
  });

  it("an exhausted client is refused before its body is read", async () => {
    const app = await testApp(LIMITED);
    expect((await batch(app, 20)).statusCode).toBe(200);
    const res = await app.inject({ method: "POST", url: "/predict", headers: { "content-type": "application/json" }, payload: "{not json" });
    expect(res.statusCode).toBe(429);
    await app.close();
  });

  it("admin routes have their own small budget", async () => {
    const app = await testApp({ ...LIMITED, ADMIN_RATE_LIMIT_MAX: "2" });
    const reload = () => app.inject({ method: "POST", url: "/admin/reload", headers: { "content-type": "application/json" } });
    expect(await statuses(3, reload)).toEqual(allowed(2));
    expect((await reload()).json().message).toContain("2 requests per 60 s");
    expect((await single(app)).statusCode).toBe(200);
    await app.close();
  });

  it("settings: the row budget must admit the largest request; TRUST_PROXY takes hops or addresses, never everyone", () => {
    expect(parseConfig({}).RATE_LIMIT_MAX).toBeGreaterThanOrEqual(parseConfig({}).MAX_STREAM_LENGTH);
    expect(() => parseConfig({ RATE_LIMIT_MAX: "5000" })).toThrow(/RATE_LIMIT_MAX="5000": counts rows, so it must be 0 \(off\) or at least MAX_BATCH_SAMPLES/);
    expect(parseConfig({ RATE_LIMIT_MAX: "0" }).RATE_LIMIT_MAX).toBe(0);
    expect(parseConfig({}).TRUST_PROXY).toBe(false);
    expect(parseConfig({ TRUST_PROXY: "2" }).TRUST_PROXY).toBe(2);
    expect(parseConfig({ TRUST_PROXY: "10.0.0.0/8, 127.0.0.1,fd00::/8" }).TRUST_PROXY).toEqual(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
    expect(() => parseConfig({ TRUST_PROXY: "true" })).toThrow(/TRUST_PROXY="true": trusting every proxy/);
    expect(() => parseConfig({ TRUST_PROXY: "10.0.0.0/33" })).toThrow(/TRUST_PROXY=.*expected addresses or CIDR blocks/);
  });
});
