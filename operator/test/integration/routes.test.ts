import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import type { KubernetesObject, V1Ingress } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { waitEstablished } from "../../../test-support/crds.js";
import { HTTPROUTE } from "../../src/api/gatewayapi.js";
import { waveletModel } from "../../src/api/waveletmodel.js";
import { desiredHttpRoutes, desiredIngress } from "../../src/reconcile/routes.js";
import { makeCA, makeCert, pkiDir } from "../../../test-support/pki.js";
import {
  type Admin,
  type OperatorProcess,
  admin,
  eventReasons,
  eventReasonsWith,
  modelSpec,
  models,
  operatorNamespace,
  serviceAccountKubeconfig,
  startOperator,
  uniqueNamespace,
  waitFor,
} from "./harness.js";

/**
 * spec.route, spec.ingress and spec.tls (issue 26) against a real API server. The Gateway API's
 * own CRDs (standard channel, e2e/cluster/gateway-api-crds.sh) validate the HTTPRoutes. They are
 * cluster-wide, and the operator asks at start whether the cluster serves HTTPRoutes: the case of
 * a cluster without them runs first (their CRD removed, if an earlier run left it), then they are
 * installed for the rest.
 */

const GATEWAY_API_CRDS = resolve(import.meta.dirname, "../../../e2e/cluster/gateway-api-crds.sh");

const kubectl = (args: string[], input?: string) =>
  execFileSync(inject("kubectl"), args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, KUBECONFIG: inject("kubeconfig") } });

const HTTPROUTES_CRD = `${HTTPROUTE.plural}.${HTTPROUTE.group}`;
const route = { parentRefs: [{ name: "public", namespace: "gateways", sectionName: "https" }], hostnames: ["spx.example.com"], previewHostnames: ["preview.spx.example.com"] };
const ingress = { className: "nginx", hosts: ["spx.example.com"], previewHosts: ["preview.spx.example.com"] };

const degraded = async (ns: string, name: string) => (await models(a, ns).get(name)).status?.conditions?.find((c) => c.type === "Degraded" && c.status === "True");
const httpRoute = (ns: string, name: string) =>
  a.custom.getNamespacedCustomObject({ group: HTTPROUTE.group, version: HTTPROUTE.version, plural: HTTPROUTE.plural, namespace: ns, name }) as Promise<KubernetesObject & { spec: { hostnames: string[] } }>;
const ingressOf = (ns: string, name: string) => a.objects.read({ apiVersion: "networking.k8s.io/v1", kind: "Ingress", metadata: { name, namespace: ns } }) as Promise<V1Ingress>;
const gone = (read: () => Promise<unknown>) =>
  read().then(
    () => false,
    () => true,
  );

let a: Admin;
beforeAll(() => {
  a = admin();
});

/** An operator of its own namespace (the chart's RBAC, its ServiceAccount), started now: it asks the cluster what it serves. */
async function operatorIn(stem: string): Promise<{ ns: string; operator: OperatorProcess }> {
  const ns = await operatorNamespace(a, uniqueNamespace(stem));
  return { ns, operator: await startOperator(await serviceAccountKubeconfig(a, ns), ns) };
}

describe("a cluster without the Gateway API", () => {
  it("a model with spec.route is Degraded=GatewayAPIMissing, and served all the same", async () => {
    kubectl(["delete", "crd", HTTPROUTES_CRD, "--ignore-not-found", "--wait"]);
    const { ns, operator } = await operatorIn("nogw");
    try {
      await models(a, ns).create("spx", modelSpec({ route }));
      const why = await waitFor("Degraded=GatewayAPIMissing", () => degraded(ns, "spx").then((c) => c?.reason === "GatewayAPIMissing" && c));
      expect(why.message).toContain("install the Gateway API CRDs (standard channel v1.x)");
      await waitFor("blue serving", async () => (await models(a, ns).get("spx")).status?.readyReplicas === 2);
      expect((await eventReasonsWith(a, ns, "spx", "GatewayAPIMissing")).filter((r) => r === "GatewayAPIMissing")).toHaveLength(1);
      expect(operator.logs()).toContain("does not serve gateway.networking.k8s.io/v1 HTTPRoutes");
    } finally {
      await operator.stop();
    }
  }, 60_000);
});

describe("with the Gateway API's standard CRDs", () => {
  let ns: string;
  let operator: OperatorProcess;
  beforeAll(async () => {
    const crds = execFileSync(GATEWAY_API_CRDS, { encoding: "utf8" }).trim().split("\n").at(-1)!;
    kubectl(["apply", "--server-side", "-f", crds]);
    waitEstablished(inject("kubectl"), inject("kubeconfig"), [HTTPROUTES_CRD]);
    ({ ns, operator } = await operatorIn("routes"));
  }, 120_000);
  afterAll(async () => {
    await operator?.stop();
  });

  it("the HTTPRoutes and the Ingress the operator makes pass the real schemas (server-side dry run)", () => {
    const wm = waveletModel.parse({
      apiVersion: "wavelet.dev/v1alpha1",
      kind: "WaveletModel",
      metadata: { name: "dry", namespace: ns, uid: "00000000-0000-0000-0000-000000000001" },
      spec: modelSpec({
        route: { parentRefs: [{ name: "public", namespace: "gateways", sectionName: "https", port: 443 }, { name: "internal" }], hostnames: ["dry.example.com", "*.dry.example.org"], previewHostnames: ["preview.dry.example.com"] },
        ingress: { className: "nginx", hosts: ["dry.example.com", "*.dry.example.org"], previewHosts: ["preview.dry.example.com"] },
        tls: { secretName: "dry-tls" },
      }),
    });
    const objects = [...desiredHttpRoutes(wm), desiredIngress(wm)!];
    const out = kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    expect(out.trim().split("\n")).toEqual([
      "httproute.gateway.networking.k8s.io/dry created (server dry run)",
      "httproute.gateway.networking.k8s.io/dry-preview created (server dry run)",
      "ingress.networking.k8s.io/dry created (server dry run)",
    ]);
  });

  const refused = async (over: Record<string, unknown>) => {
    try {
      await models(a, ns).create(uniqueNamespace("bad"), modelSpec(over), true);
      return "accepted";
    } catch (error) {
      const body = (error as { body?: unknown }).body;
      return typeof body === "string" ? (JSON.parse(body) as { message: string }).message : String(error);
    }
  };

  it.each([
    ["a route without parentRefs", { route: { ...route, parentRefs: [] } }, "spec.route.parentRefs: Invalid value"],
    ["a preview hostname that is a main one", { route: { ...route, previewHostnames: ["spx.example.com"] } }, "route.previewHostnames must not repeat any of route.hostnames"],
    ["a hostname that is not a DNS name", { route: { ...route, hostnames: ["Spx_Example.com"] } }, "spec.route.hostnames[0]: Invalid value"],
    ["an Ingress preview host that is a main one", { ingress: { ...ingress, previewHosts: ["spx.example.com"] } }, "ingress.previewHosts must not repeat any of ingress.hosts"],
    ["an Ingress without hosts", { ingress: { ...ingress, hosts: [] } }, "spec.ingress.hosts: Invalid value"],
  ])("the CRD refuses %s", async (_name, over, message) => {
    expect(await refused(over)).toContain(message);
  });

  it("the CRD takes a wildcard hostname, as the Gateway API does", async () => {
    expect(await refused({ route: { ...route, hostnames: ["*.example.com"] } })).toBe("accepted");
  });

  it("makes the HTTPRoutes and the Ingress (HTTPS with spec.tls's Secret), follows the hostnames, removes them with the spec", async () => {
    const m = models(a, ns);
    const dir = pkiDir();
    const pair = makeCert(dir, makeCA(dir, "spx-ca"), "spx", { cn: "spx.example.com", dns: ["spx.example.com", "preview.spx.example.com"] });
    await a.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "spx-tls" }, type: "kubernetes.io/tls", stringData: { "tls.crt": pair.cert, "tls.key": pair.key } } });
    await m.create("spx", modelSpec({ route, ingress, tls: { secretName: "spx-tls" } }));
    const active = await waitFor("the HTTPRoute", () => httpRoute(ns, "spx"));
    expect(active.spec).toMatchObject({
      parentRefs: [{ name: "public", namespace: "gateways", sectionName: "https", group: "gateway.networking.k8s.io", kind: "Gateway" }],
      hostnames: ["spx.example.com"],
      rules: [{ backendRefs: [{ name: "spx", port: 80 }] }],
    });
    expect(active.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "WaveletModel", name: "spx", controller: true });
    expect((await waitFor("the preview HTTPRoute", () => httpRoute(ns, "spx-preview"))).spec).toMatchObject({ hostnames: ["preview.spx.example.com"], rules: [{ backendRefs: [{ name: "spx-preview" }] }] });
    const served = await waitFor("the Ingress", () => ingressOf(ns, "spx"));
    expect(served.spec).toMatchObject({ ingressClassName: "nginx", tls: [{ hosts: ["spx.example.com", "preview.spx.example.com"], secretName: "spx-tls" }] });
    expect(served.spec!.rules!.map((r) => [r.host, r.http!.paths[0]!.backend.service!.name])).toEqual([
      ["spx.example.com", "spx"],
      ["preview.spx.example.com", "spx-preview"],
    ]);
    await waitFor("Ready", async () => (await m.get("spx")).status?.phase === "Ready");
    expect((await m.get("spx")).status?.endpoint).toBe(`https://spx.${ns}.svc:80`);

    await m.patch("spx", { spec: { route: { hostnames: ["api.example.com"], previewHostnames: null } } });
    await waitFor("hostnames changed", async () => (await httpRoute(ns, "spx")).spec.hostnames.join() === "api.example.com");
    await waitFor("the preview HTTPRoute removed", () => gone(() => httpRoute(ns, "spx-preview")));

    await m.patch("spx", { spec: { route: null, ingress: null } });
    await waitFor("the HTTPRoute removed", () => gone(() => httpRoute(ns, "spx")));
    await waitFor("the Ingress removed", () => gone(() => ingressOf(ns, "spx")));
  }, 60_000);

  it("never adopts an HTTPRoute of the same name it does not own: Degraded=ReconcileFailed, the route left as it was", async () => {
    const theirs = { apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", metadata: { name: "owned", namespace: ns }, spec: { hostnames: ["theirs.example.com"], rules: [{ backendRefs: [{ name: "theirs", port: 80 }] }] } };
    await a.objects.create(theirs);
    await models(a, ns).create("owned", modelSpec({ route }));
    const why = await waitFor("Degraded=ReconcileFailed", () => degraded(ns, "owned").then((c) => c?.reason === "ReconcileFailed" && c));
    expect(why.message).toContain("HTTPRoute owned exists and does not belong to this WaveletModel");
    expect((await httpRoute(ns, "owned")).spec.hostnames).toEqual(["theirs.example.com"]);
    expect((await httpRoute(ns, "owned")).metadata?.ownerReferences).toBeUndefined();
  }, 60_000);
});

describe("HTTPS from spec.tls", () => {
  let ns: string;
  let operator: OperatorProcess;
  beforeAll(async () => {
    ({ ns, operator } = await operatorIn("tls"));
  }, 60_000);
  afterAll(async () => {
    await operator?.stop();
  });

  it("a missing Secret: Degraded=TLSSecretInvalid and no pods; once created, it deploys; a renewed Secret rolls nothing out", async () => {
    const m = models(a, ns);
    await m.create("spx", modelSpec({ tls: { secretName: "spx-tls" } }));
    const why = await waitFor("Degraded=TLSSecretInvalid", () => degraded(ns, "spx").then((c) => c?.reason === "TLSSecretInvalid" && c));
    expect(why.message).toContain("Secret spx-tls does not exist");
    expect((await a.apps.listNamespacedReplicaSet({ namespace: ns })).items).toEqual([]);

    const dir = pkiDir();
    const ca = makeCA(dir, "spx-ca");
    const tlsData = (name: string) => {
      const pair = makeCert(dir, ca, name, { cn: "spx.example.com", dns: ["spx.example.com"] });
      return { "tls.crt": pair.cert, "tls.key": pair.key, "ca.crt": ca.cert };
    };
    await a.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "spx-tls" }, type: "kubernetes.io/tls", stringData: tlsData("first") } });
    await waitFor("Ready", async () => (await m.get("spx")).status?.phase === "Ready");
    const blue = await a.apps.readNamespacedReplicaSet({ name: "spx-blue", namespace: ns });
    const pod = blue.spec!.template!.spec!;
    expect(pod.volumes).toContainEqual(expect.objectContaining({ name: "tls", secret: expect.objectContaining({ secretName: "spx-tls" }) }));
    expect(pod.containers[0]!.readinessProbe?.httpGet).toMatchObject({ scheme: "HTTPS" });

    // Its watch brings each new version to the operator, which checks it again; none rolls out.
    const replace = (data: Record<string, string>) => a.core.replaceNamespacedSecret({ name: "spx-tls", namespace: ns, body: { metadata: { name: "spx-tls" }, type: "kubernetes.io/tls", stringData: data } });
    await replace({ ...tlsData("broken"), "tls.key": tlsData("other")["tls.key"] });
    const broken = await waitFor("Degraded after a bad renewal", () => degraded(ns, "spx").then((c) => c?.reason === "TLSSecretInvalid" && c));
    expect(broken.message).toContain("has a tls.key that is not the private key of its tls.crt");
    await replace(tlsData("renewed"));
    await waitFor("Ready after a good one", async () => (await m.get("spx")).status?.phase === "Ready");
    expect((await eventReasons(a, ns, "spx")).filter((r) => r === "RolloutStarted")).toEqual([]);
    expect((await a.apps.readNamespacedReplicaSet({ name: "spx-blue", namespace: ns })).metadata?.annotations).toEqual(blue.metadata?.annotations);
    expect((await m.get("spx")).status?.activeColor).toBe("blue");
  }, 60_000);
});
