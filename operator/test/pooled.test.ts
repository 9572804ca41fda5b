import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PooledKubeConfig } from "../src/kube/pooled.js";
import { TokenBucket } from "../src/kube/throttle.js";
import { FakeClock } from "./fixtures.js";

/** The operator's API requests share keep-alive connections (issue 13). */

let connections = 0;
const server = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ kind: "NamespaceList", apiVersion: "v1", metadata: {}, items: [] })));
server.on("connection", () => connections++);
let url: string;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const load = (kc: PooledKubeConfig) => {
  kc.loadFromOptions({
    clusters: [{ name: "c", server: url, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc.makeApiClient(CoreV1Api);
};

describe("PooledKubeConfig", () => {
  it("sends ten requests over one connection", async () => {
    const core = load(new PooledKubeConfig());
    connections = 0;
    for (let i = 0; i < 10; i++) await core.listNamespace();
    expect(connections).toBe(1);
  });

  it("takes a token per request: past the burst, a request waits for the rate (KUBE_API_QPS, KUBE_API_BURST)", async () => {
    const clock = new FakeClock();
    const throttled: number[] = [];
    const core = load(new PooledKubeConfig({ throttle: new TokenBucket(clock, 5, 2), onThrottled: (ms) => throttled.push(ms) }));
    await core.listNamespace();
    await core.listNamespace();
    let third = false;
    const pending = core.listNamespace().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(third).toBe(false);
    clock.advance(200);
    await pending;
    expect(throttled).toEqual([200]);
  });
});
