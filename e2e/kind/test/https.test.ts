import { X509Certificate } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { makeCA, makeCert, type Pair, pkiDir } from "../../../test-support/pki.js";
import {
  Load,
  PREDICT_BODY,
  SwitchWatch,
  builtinSpec,
  expectNoFailures,
  kube,
  models,
  nodePortUrl,
  peerCertificate,
  scenarioNamespace,
  seconds,
  toBundleImage,
  waitFor,
  waitReady,
} from "./harness.js";
import { recordResult } from "./results.js";

/**
 * Scenario 11: a WaveletModel with spec.tls serves HTTPS through its Service to clients that
 * verify the chain; a blue-green rollout under HTTPS load; then the Secret is renewed (as
 * cert-manager renews it: same name, new pair) under load: new connections get the new
 * certificate, no request fails, no pod restarts, nothing rolls out.
 */

const RATE = 100;
const b64 = (text: string) => Buffer.from(text).toString("base64");
const serial = (p: Pair) => new X509Certificate(p.cert).serialNumber;

describe("11. HTTPS from the WaveletModel", () => {
  it("serves HTTPS, rolls out blue-green under HTTPS load, and serves a renewed certificate without a restart", async () => {
    const k = kube();
    const namespace = await scenarioNamespace(k, "e2e-https");
    const dir = pkiDir();
    const ca = makeCA(dir, "e2e-https-ca");
    // Clients reach the NodePort at the node's address; in the cluster the Service's name.
    const names = { cn: "https", dns: [inject("node").ip, `https.${namespace}.svc`] };
    const first = makeCert(dir, ca, "first", names);
    const secret = (pair: Pair) => ({
      metadata: { name: "https-tls", namespace },
      type: "kubernetes.io/tls",
      data: { "tls.crt": b64(pair.cert), "tls.key": b64(pair.key), "ca.crt": b64(ca.cert) },
    });
    await k.core.createNamespacedSecret({ namespace, body: secret(first) });
    const wm = models(k, namespace);
    await wm.create("https", builtinSpec({ tls: { secretName: "https-tls" } }));
    const ready = await waitReady(k, namespace, "https");
    const oldColor = ready.status!.activeColor!;
    const url = await nodePortUrl(k, namespace, "https", { ca: ca.cert });
    expect((await peerCertificate(`${url}/livez`, ca.cert)).serial).toBe(serial(first));
    const service = await k.core.readNamespacedService({ name: "https", namespace });
    expect(service.spec?.ports?.[0]?.appProtocol).toBe("https");

    const load = new Load(url, RATE, PREDICT_BODY, "/predict", { ca: ca.cert }).start();
    const loaded = Date.now();
    const watch = await new SwitchWatch(k, namespace, "https").start();
    const changed = Date.now();
    await wm.patch("https", toBundleImage());
    await waitFor("the switch", async () => watch.changes.length > 1, 300_000);
    const switchedAt = watch.changes[1]!.at;
    const switched = await waitReady(k, namespace, "https");
    const newColor = switched.status!.activeColor!;
    expect(newColor).not.toBe(oldColor);

    const serving = async () =>
      (await k.core.listNamespacedPod({ namespace, labelSelector: `wavelet.dev/model=https,wavelet.dev/color=${newColor}` })).items.map((p) => ({
        name: p.metadata!.name!,
        restarts: p.status?.containerStatuses?.[0]?.restartCount ?? 0,
      }));
    const before = await serving();
    const second = makeCert(dir, ca, "second", names);
    const rotated = Date.now();
    await k.core.replaceNamespacedSecret({ name: "https-tls", namespace, body: secret(second) });
    const seenAt = await waitFor(
      "new connections to get the renewed certificate",
      async () => (await peerCertificate(`${url}/livez`, ca.cert)).serial === serial(second) && Date.now(),
      120_000,
    );
    // Every pod serves it: fresh connections, spread by the Service, all see the new one.
    await waitFor("every pod to serve the renewed certificate", async () => {
      const serials = await Promise.all(Array.from({ length: 12 }, () => peerCertificate(`${url}/livez`, ca.cert).then((c) => c.serial)));
      return serials.every((s) => s === serial(second));
    }, 60_000);
    await new Promise((r) => setTimeout(r, 5000));
    const summary = await load.stop();
    watch.stop();

    const after = await waitReady(k, namespace, "https");
    recordResult({
      scenario: `11. HTTPS (spec.tls): ${RATE} requests/s verifying the chain, a rollout, then the Secret renewed`,
      requests: summary.sent,
      failed: summary.failed,
      switchSeconds: seconds(switchedAt - changed),
      notes: `the renewed certificate reached new connections ${seconds(seenAt - rotated)} s after the Secret changed; no pod restarted, no rollout; p99 ${summary.p99} ms`,
    });

    // The renewal reached the running pods: same pods, no restart, no new rollout.
    expect(await serving()).toEqual(before);
    expect(before.every((p) => p.restarts === 0)).toBe(true);
    expect(after.status?.activeColor).toBe(newColor);
    expect(after.metadata.generation).toBe(switched.metadata.generation);
    expect(watch.changes).toHaveLength(2);
    expect(seenAt - rotated).toBeLessThan(60_000);
    expectNoFailures(summary, { "the load": loaded, "the change": changed, "the switch": switchedAt, "the renewal": rotated });
  });
});
