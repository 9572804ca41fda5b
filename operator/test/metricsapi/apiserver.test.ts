import { copyFileSync, mkdirSync } from "node:fs";
import { Agent, request } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Answer, MetricsApiServer, type Routed } from "../../src/metricsapi/apiserver.js";
import { AuthConfigError, parseAuthConfig, type RequestHeaderConfig } from "../../src/metricsapi/authn.js";
import { Authorizer, type Attributes } from "../../src/metricsapi/authz.js";
import { makeCA, makeCert, type Pair, pkiDir } from "../../../test-support/pki.js";

/**
 * The listener the aggregator proxies to, over real TLS: only the front proxy's client
 * certificate gets in, the user it names is what gets authorized, and a renewed serving
 * certificate is served without a restart.
 */

const dir = pkiDir();
const proxyCA = makeCA(dir, "front-proxy-ca");
const otherCA = makeCA(dir, "other-ca");
const servingCA = makeCA(dir, "serving-ca");
const proxy = makeCert(dir, proxyCA, "front-proxy-client", { cn: "front-proxy-client", client: true });
const impostor = makeCert(dir, otherCA, "impostor", { cn: "front-proxy-client", client: true });
const wrongName = makeCert(dir, proxyCA, "wrong-name", { cn: "someone-else", client: true });
const certDir = join(dir, "serving");
mkdirSync(certDir);
const serve = (p: Pair) => {
  copyFileSync(p.certFile, join(certDir, "tls.crt"));
  copyFileSync(p.keyFile, join(certDir, "tls.key"));
};

const auth: RequestHeaderConfig = parseAuthConfig({
  "requestheader-client-ca-file": proxyCA.cert,
  "requestheader-allowed-names": '["front-proxy-client"]',
  "requestheader-username-headers": '["X-Remote-User"]',
  "requestheader-group-headers": '["X-Remote-Group"]',
  "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
});

const asked: { user: string; groups: string[]; extra: Record<string, string[]>; what: Attributes }[] = [];
const codes: number[] = [];
let server: MetricsApiServer;
let port: number;

beforeAll(async () => {
  serve(makeCert(dir, servingCA, "serving-1", { cn: "serving-1", dns: ["localhost", "127.0.0.1"] }));
  server = new MetricsApiServer({
    route: (url): Routed => ({
      attributes: { nonResource: { path: url.pathname, verb: "get" } },
      answer: (): Answer => {
        if (url.pathname === "/boom") throw new Error("secret detail");
        return { status: 200, body: { path: url.pathname } };
      },
    }),
    authorize: async (who, what) => {
      asked.push({ ...who, what });
      return who.user === "denied" ? { allowed: false, reason: "no RBAC" } : { allowed: true };
    },
    authConfig: async () => auth,
    certDir,
    onRequest: (code) => codes.push(code),
    log: { debug: () => undefined, warn: () => undefined, info: () => undefined },
  });
  await server.listen(0, "127.0.0.1");
  port = (server.server.address() as AddressInfo).port;
});

afterAll(() => server.close());

interface Got {
  status: number;
  body: { reason?: string; message?: string; path?: string };
  serial: string;
}

function get(path: string, opts: { client?: Pair; headers?: Record<string, string | string[]>; method?: string; agent?: Agent } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: opts.method ?? "GET",
        ca: servingCA.cert,
        servername: "localhost",
        cert: opts.client?.cert,
        key: opts.client?.key,
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        // Read now: a keep-alive agent takes the socket back once the answer ends.
        const serial = (res.socket as import("node:tls").TLSSocket).getPeerCertificate().serialNumber;
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text), serial }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("the front proxy's requestheader settings", () => {
  it("are read from extension-apiserver-authentication, header names case-insensitive", () => {
    expect(auth).toMatchObject({ allowedNames: ["front-proxy-client"], usernameHeaders: ["x-remote-user"], groupHeaders: ["x-remote-group"], extraPrefixes: ["x-remote-extra-"] });
  });

  it("a cluster without a front proxy is refused in one line", () => {
    expect(() => parseAuthConfig({ "client-ca-file": "..." })).toThrow(AuthConfigError);
    expect(() => parseAuthConfig({ "client-ca-file": "..." })).toThrow(/--requestheader-client-ca-file/);
  });
});

describe("the custom metrics API listener", () => {
  it("serves the front proxy, naming the user, groups and extras it sends for authorization", async () => {
    const got = await get("/apis/custom.metrics.k8s.io/v1beta2", {
      client: proxy,
      headers: { "X-Remote-User": "system:serviceaccount:kube-system:horizontal-pod-autoscaler", "X-Remote-Group": ["system:serviceaccounts", "a, b"], "X-Remote-Extra-Scopes%2Fx": "one" },
    });
    expect(got).toMatchObject({ status: 200, body: { path: "/apis/custom.metrics.k8s.io/v1beta2" } });
    expect(asked.at(-1)).toEqual({
      user: "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
      // A group name holding a comma stays one group; every user the proxy names is authenticated.
      groups: ["system:serviceaccounts", "a, b", "system:authenticated"],
      extra: { "scopes/x": ["one"] },
      what: { nonResource: { path: "/apis/custom.metrics.k8s.io/v1beta2", verb: "get" } },
    });
  });

  it("refuses a request without a client certificate, one from another CA, one from a name not allowed to proxy", async () => {
    const before = asked.length;
    for (const client of [undefined, impostor, wrongName]) {
      const got = await get("/apis/custom.metrics.k8s.io/v1beta2", { client, headers: { "X-Remote-User": "admin", "X-Remote-Group": "system:masters" } });
      expect(got.status).toBe(401);
      expect(got.body.reason).toBe("Unauthorized");
    }
    // Nothing reached the authorizer.
    expect(asked.length).toBe(before);
  });

  it("counts a user the proxy names with no group as authenticated (the kube-aggregator's discovery requests)", async () => {
    await get("/apis/custom.metrics.k8s.io/v1beta2", { client: proxy, headers: { "X-Remote-User": "system:kube-aggregator" } });
    expect(asked.at(-1)).toMatchObject({ user: "system:kube-aggregator", groups: ["system:authenticated"] });
  });

  it("refuses the proxy when it names no user, a user the API server denies, and any method but GET", async () => {
    expect((await get("/x", { client: proxy })).status).toBe(401);
    const denied = await get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/*/requests_per_second", { client: proxy, headers: { "X-Remote-User": "denied" } });
    expect(denied).toMatchObject({ status: 403, body: { reason: "Forbidden" } });
    expect(denied.body.message).toContain('user "denied" cannot get');
    expect((await get("/x", { client: proxy, method: "DELETE", headers: { "X-Remote-User": "u" } })).status).toBe(405);
  });

  it("answers a handler's failure with a generic 500", async () => {
    const got = await get("/boom", { client: proxy, headers: { "X-Remote-User": "u" } });
    expect(got).toMatchObject({ status: 500, body: { reason: "InternalError", message: "internal error" } });
    expect(codes).toContain(500);
  });

  it("serves a renewed certificate without a restart; a broken pair keeps the current one", async () => {
    const user = { "X-Remote-User": "u" };
    const first = await get("/x", { client: proxy, headers: user });
    serve(makeCert(dir, servingCA, "serving-2", { cn: "serving-2", dns: ["localhost"] }));
    expect(await server.load()).toBe(true);
    const second = await get("/x", { client: proxy, headers: user });
    expect(second.status).toBe(200);
    expect(second.serial).not.toBe(first.serial);
    expect(await server.load()).toBe(false);
    // A key that does not match the certificate (a half-written Secret).
    copyFileSync(proxy.keyFile, join(certDir, "tls.key"));
    await expect(server.load()).rejects.toThrow();
    expect((await get("/x", { client: proxy, headers: user })).serial).toBe(second.serial);
  });
});

describe("stopping", () => {
  it("does not wait for the aggregator's keep-alive connection to idle", async () => {
    const agent = new Agent({ keepAlive: true });
    expect((await get("/x", { client: proxy, headers: { "X-Remote-User": "u" }, agent })).status).toBe(200);
    const started = Date.now();
    await server.close();
    // Node would otherwise hold the close until the connection went (the aggregator's never idles long).
    expect(Date.now() - started).toBeLessThan(2000);
    agent.destroy();
  });
});

describe("authorization by SubjectAccessReview", () => {
  it("sends the user's attributes and caches the decision for its TTL, bounded", async () => {
    let now = 0;
    const sent: unknown[] = [];
    const authorizer = new Authorizer(
      async (body) => {
        sent.push(body.spec);
        return { ...body, status: { allowed: body.spec.user === "hpa" } };
      },
      { ttlMs: 10_000, maxEntries: 2, now: () => now },
    );
    const hpa = { user: "hpa", groups: ["g"], extra: {} };
    const what: Attributes = { resource: { group: "custom.metrics.k8s.io", version: "v1beta2", resource: "pods", subresource: "requests_per_second", name: "*", namespace: "ns", verb: "get" } };
    expect(await authorizer.authorize(hpa, what)).toEqual({ allowed: true, reason: undefined });
    expect(sent[0]).toEqual({ user: "hpa", groups: ["g"], extra: {}, resourceAttributes: what.resource });
    await authorizer.authorize(hpa, what);
    expect(sent).toHaveLength(1);
    expect((await authorizer.authorize({ user: "eve", groups: [], extra: {} }, what)).allowed).toBe(false);
    now = 10_001;
    await authorizer.authorize(hpa, what);
    expect(sent).toHaveLength(3);
    // Two entries at most: a third user evicts the oldest.
    await authorizer.authorize({ user: "x", groups: [], extra: {} }, what);
    await authorizer.authorize({ user: "eve", groups: [], extra: {} }, what);
    expect(sent).toHaveLength(5);
  });
});
