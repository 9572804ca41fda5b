import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { type V1PolicyRule, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { SwitchWatch } from "../../../test-support/kube.js";
import { waveletModel } from "../../src/api/waveletmodel.js";
import { desiredReplicaSet, templateHash } from "../../src/reconcile/replicaset.js";
import { desiredServices } from "../../src/reconcile/service.js";
import {
  type Admin,
  type OperatorProcess,
  DIGEST_A,
  DIGEST_B,
  admin,
  condition,
  eventReasons,
  eventReasonsWith,
  modelSpec,
  models,
  operatorNamespace,
  readyPods,
  serviceAccountKubeconfig,
  startOperator,
  uniqueNamespace,
  waitFor,
} from "./harness.js";

const root = resolve(import.meta.dirname, "../../..");
let a: Admin;

beforeAll(() => {
  a = admin();
});

const spec = modelSpec;

const replicaSet = (ns: string, name: string) => a.apps.readNamespacedReplicaSet({ name, namespace: ns });
const service = (ns: string, name: string) => a.core.readNamespacedService({ name, namespace: ns });
const exists = async (read: () => Promise<unknown>) =>
  read().then(
    () => true,
    () => false,
  );

describe("the CRD", () => {
  const ns = "default";
  const rejected = async (body: Record<string, unknown>, name = uniqueNamespace("bad")) => {
    try {
      await models(a, ns).create(name, body, true);
      return "accepted";
    } catch (error) {
      const body = (error as { body?: unknown }).body;
      return typeof body === "string" ? (JSON.parse(body) as { message: string }).message : String(error);
    }
  };

  it("accepts the examples in crds/examples", () => {
    const out = execFileSync(inject("kubectl"), ["apply", "--dry-run=server", "-n", ns, "-f", `${root}/crds/examples`], {
      encoding: "utf8",
      env: { ...process.env, KUBECONFIG: inject("kubeconfig") },
    });
    expect(out).toContain("spx-return-1d created (server dry run)");
    expect(out).toContain("spx-vol-5d created (server dry run)");
  });

  it("accepts an imported bundle's own model names (issue 23)", async () => {
    expect(await rejected(spec({ models: ["xgboost", "gru"], defaultModel: "gru" }))).toBe("accepted");
  });

  it.each([
    ["replicas and autoscaling together", { replicas: 2, autoscaling: { minReplicas: 1, maxReplicas: 3, targetCPUUtilizationPercentage: 50 } }, "set replicas or autoscaling, not both"],
    ["an image not pinned by digest", { bundle: { image: "repo/bundle:latest", digest: DIGEST_A } }, "bundle.image must be pinned by digest"],
    ["both image and builtin", { bundle: { image: `repo/b@sha256:${"c".repeat(64)}`, builtin: "spx", digest: DIGEST_A } }, "bundle needs exactly one of image or builtin"],
    ["neither image nor builtin", { bundle: { digest: DIGEST_A } }, "bundle needs exactly one of image or builtin"],
    ["a malformed digest", { bundle: { builtin: "spx", digest: "md5:1234" } }, "bundle.digest must be sha256:<64 hex digits>"],
    ["min above max", { replicas: undefined, autoscaling: { minReplicas: 5, maxReplicas: 2, targetCPUUtilizationPercentage: 50 } }, "autoscaling.minReplicas must not exceed maxReplicas"],
    ["autoscaling without a target", { replicas: undefined, autoscaling: { minReplicas: 1, maxReplicas: 2 } }, "autoscaling needs a CPU or memory target"],
    ["a malformed model name", { models: ["ARIMA"] }, "should match '^[a-z][a-z0-9_]{0,31}$'"],
    ["an int8 variant as a model", { models: ["lstm_int8"] }, "models names no *_int8 variant"],
    ["a default model that is not loaded", { models: ["xgboost"], defaultModel: "lstm" }, "defaultModel must be one of models"],
    ["a negative replica count", { replicas: -1 }, "should be greater than or equal to 0"],
    ["server.env setting what the operator sets", { server: { env: [{ name: "MODELS", value: "lstm" }] } }, "server.env must not set MODEL_DIR"],
    ["server.env naming a variable twice", { server: { env: [{ name: "A", value: "1" }, { name: "A", value: "2" }] } }, "Duplicate value"],
  ])("rejects %s with a readable message", async (_name, over, message) => {
    expect(await rejected(spec(over))).toContain(message);
  });

  it.each([
    ["foo-preview", "must not end in -preview"],
    ["x".repeat(56), "at most 55 characters"],
    ["1abc", "DNS-1035 label"],
  ])("rejects the name %s, which would collide or not fit a Service name", async (name, message) => {
    expect(await rejected(spec(), name)).toContain(message);
  });
});

describe("the operator against a real API server", () => {
  let ns: string;
  let operator: OperatorProcess;
  beforeAll(async () => {
    ns = await operatorNamespace(a, uniqueNamespace("wm"));
    operator = await startOperator(await serviceAccountKubeconfig(a, ns), ns);
  }, 60_000);
  afterAll(async () => {
    await operator?.stop();
  });

  it("creates the ReplicaSet, Services and HPA, then reports Ready with the endpoint", async () => {
    const m = models(a, ns);
    await m.create("spx", spec({ replicas: undefined, autoscaling: { minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 70 }, service: { type: "NodePort", port: 8080 } }));
    const blue = await waitFor("blue ReplicaSet", () => replicaSet(ns, "spx-blue"));
    expect(blue.spec?.replicas).toBe(2);
    expect(blue.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "WaveletModel", name: "spx", controller: true });
    const env = Object.fromEntries(blue.spec!.template!.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ EXPECTED_BUNDLE_DIGEST: DIGEST_A, MODEL_DIR: "/app/models/bundles/spx-return-1d" });
    const active = await waitFor("active service", () => service(ns, "spx"));
    expect(active.spec).toMatchObject({ type: "NodePort", selector: { "wavelet.dev/color": "blue" } });
    expect(active.spec!.ports![0]!.port).toBe(8080);
    // The operator applies the active Service before the preview one: wait for it too.
    const preview = await waitFor("preview service", () => service(ns, "spx-preview"));
    expect(preview.spec?.selector?.["wavelet.dev/color"]).toBe("blue");
    const pdb = await waitFor("pdb", () => a.policy.readNamespacedPodDisruptionBudget({ name: "spx", namespace: ns }));
    expect(pdb.spec?.selector?.matchLabels?.["wavelet.dev/color"]).toBe("blue");
    const hpa = await waitFor("hpa", () => a.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: "spx", namespace: ns }));
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 6, scaleTargetRef: { name: "spx-blue" } });
    const ready = await waitFor("Ready", async () => ((await m.get("spx")).status?.phase === "Ready" ? m.get("spx") : undefined));
    expect(ready.status).toMatchObject({ activeColor: "blue", readyReplicas: 2, endpoint: `http://spx.${ns}.svc:8080`, observedGeneration: 1 });
    expect(ready.status!.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "True", observedGeneration: 1 });
    expect(ready.status?.nodePort).toBe(active.spec!.ports![0]!.nodePort);
  });

  it("rolls a new bundle out blue-green at the current replica count and tells the story in Events", async () => {
    const m = models(a, ns);
    // The HPA (or anyone) scaled blue to 4: green must start at 4, not at the minimum of 2.
    await a.apps.patchNamespacedReplicaSetScale(
      { name: "spx-blue", namespace: ns, body: { spec: { replicas: 4 } } },
      (await import("@kubernetes/client-node")).setHeaderOptions("Content-Type", "application/merge-patch+json"),
    );
    await waitFor("blue at 4 ready", async () => (await replicaSet(ns, "spx-blue")).status?.readyReplicas === 4);
    const watch = await new SwitchWatch(a, ns, "spx").start();
    await m.patch("spx", { spec: { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B, version: "2.0.0" } } });
    const switchedAt = await watch.switched(30_000);
    // Green may start at the count the operator had seen; it switches only at blue's 4.
    const green = await replicaSet(ns, "spx-green");
    expect(green.spec?.replicas).toBe(4);
    expect(await readyPods(a, ns, "spx", "green")).toBe(4);
    // scaleDownDelaySeconds is 2: blue keeps its pods well into it.
    await new Promise((r) => setTimeout(r, Math.max(0, switchedAt + 1500 - Date.now())));
    expect((await replicaSet(ns, "spx-blue")).spec?.replicas).toBe(4);
    // The HPA is applied after the Services in the same pass.
    await waitFor("HPA on green", async () => (await a.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: "spx", namespace: ns })).spec?.scaleTargetRef.name === "spx-green");
    await waitFor("blue scaled to zero", async () => (await replicaSet(ns, "spx-blue")).spec?.replicas === 0, 20_000);
    expect((await a.policy.readNamespacedPodDisruptionBudget({ name: "spx", namespace: ns })).spec?.selector?.matchLabels?.["wavelet.dev/color"]).toBe("green");
    const wm = await waitFor("Ready on green", async () => {
      const x = await m.get("spx");
      return x.status?.phase === "Ready" && x.status.activeColor === "green" ? x : undefined;
    });
    expect(wm.status?.activeBundle).toMatchObject({ digest: DIGEST_B, version: "2.0.0" });
    const story = await eventReasons(a, ns, "spx");
    const from = story.lastIndexOf("RolloutStarted");
    expect(story.slice(from)).toEqual(["RolloutStarted", "PreviewReady", "Promoted", "ScaledDown"]);
    watch.stop();
    expect(watch.changes.map((c) => c.color)).toEqual(["blue", "green"]);
  }, 60_000);

  it("keeps the old colour when the new one never becomes available, then rolls back", async () => {
    const m = models(a, ns);
    const serving = (await m.get("spx")).status!.activeColor!;
    const idle = serving === "blue" ? "green" : "blue";
    // kwok keeps pods of an image named *never-ready* running but unready (e2e/cluster/README.md).
    await m.patch("spx", { spec: { server: { image: "example.invalid/never-ready:v1" }, rollout: { progressDeadlineSeconds: 10 } } });
    await waitFor("idle colour created", async () => (await replicaSet(ns, `spx-${idle}`)).metadata?.annotations?.["wavelet.dev/template-hash"]);
    const degraded = await waitFor("Degraded", async () => ((await m.get("spx")).status?.phase === "Degraded" ? m.get("spx") : undefined), 30_000);
    expect(degraded.status).toMatchObject({ activeColor: serving, rollout: { phase: "Failed" } });
    expect(degraded.status!.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "RolloutFailed" });
    expect((await service(ns, "spx")).spec?.selector?.["wavelet.dev/color"]).toBe(serving);
    await waitFor("failed colour scaled to zero", async () => (await replicaSet(ns, `spx-${idle}`)).spec?.replicas === 0);
    expect(await eventReasonsWith(a, ns, "spx", "ProgressDeadlineExceeded")).toContain("ProgressDeadlineExceeded");
    expect((degraded.status!.lastGoodSpec as { server?: { image?: string } }).server?.image).toBeUndefined();

    await m.patch("spx", { metadata: { annotations: { "wavelet.dev/rollback": "true" } } });
    const back = await waitFor("rolled back and Ready", async () => {
      const x = await m.get("spx");
      return x.status?.phase === "Ready" && !(x.spec.server as { image?: string }).image ? x : undefined;
    });
    expect(back.metadata.annotations?.["wavelet.dev/rollback"]).toBeUndefined();
    expect(back.status?.activeColor).toBe(serving);
    expect(await eventReasonsWith(a, ns, "spx", "RolledBack")).toContain("RolledBack");
  }, 60_000);

  it("puts back children edited or deleted by hand; a change that does not matter starts no rollout", async () => {
    const m = models(a, ns);
    const active = (await m.get("spx")).status!.activeColor!;
    await a.core.deleteNamespacedService({ name: "spx", namespace: ns });
    await waitFor("active service recreated", async () => (await service(ns, "spx")).spec?.selector?.["wavelet.dev/color"] === active);
    await a.apps.patchNamespacedReplicaSet(
      { name: `spx-${active}`, namespace: ns, body: { spec: { template: { spec: { containers: [{ name: "server", image: "hand-edited:1" }] } } } } },
      (await import("@kubernetes/client-node")).setHeaderOptions("Content-Type", "application/strategic-merge-patch+json"),
    );
    await waitFor("image restored", async () => (await replicaSet(ns, `spx-${active}`)).spec?.template?.spec?.containers[0]?.image === "wavelet-server:test");

    const before = (await eventReasons(a, ns, "spx")).filter((r) => r === "RolloutStarted").length;
    const generation = (await m.get("spx")).metadata.generation;
    const passes = async () => Number(/^wavelet_operator_reconciles_total\{result="ok"\} (\d+)/m.exec(await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text())?.[1] ?? 0);
    const passed = await passes();
    await m.patch("spx", { metadata: { labels: { team: "quant" }, annotations: { note: "labels and annotations are not the spec" } } });
    // A pass that saw the patch has ended: the first pass to end may have started before it, so
    // a second patch, once one has, makes sure of a pass after it (the operator passes only on
    // events that matter: nothing else would come).
    await waitFor("a pass after the patch", async () => (await passes()) >= passed + 1);
    await m.patch("spx", { metadata: { labels: { checked: "yes" } } });
    await waitFor("a pass after the second patch", async () => (await passes()) >= passed + 2);
    const after = await m.get("spx");
    expect(after.metadata.generation).toBe(generation);
    expect(after.status?.rollout).toBeUndefined();
    expect((await eventReasons(a, ns, "spx")).filter((r) => r === "RolloutStarted").length).toBe(before);
  }, 60_000);

  it("a pass that changes nothing writes nothing: edits to the model's labels reconcile with zero writes (issue 13)", async () => {
    const m = models(a, ns);
    const scrape = async () => {
      const text = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN);
      return { passes: value("wavelet_operator_pass_writes_count"), writes: value("wavelet_operator_pass_writes_sum") };
    };
    await waitFor("Ready", async () => (await m.get("spx")).status?.phase === "Ready");
    // Settled: no write for a second (the kwok pods' last status changes have been seen).
    let last = await scrape();
    await waitFor("no writes for a second", async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await scrape();
      const quiet = now.writes === last.writes;
      last = now;
      return quiet;
    });
    for (const n of [1, 2, 3]) await m.patch("spx", { metadata: { labels: { steady: String(n) } } });
    await waitFor("three more passes", async () => (await scrape()).passes >= last.passes + 3);
    expect((await scrape()).writes).toBe(last.writes);
  }, 60_000);

  it("deleting the WaveletModel garbage-collects its children", async () => {
    await models(a, ns).remove("spx");
    // The garbage collector removes them in no particular order: wait for every kind.
    const children = [
      () => replicaSet(ns, "spx-blue"),
      () => replicaSet(ns, "spx-green"),
      () => service(ns, "spx"),
      () => service(ns, "spx-preview"),
      () => a.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: "spx", namespace: ns }),
      () => a.policy.readNamespacedPodDisruptionBudget({ name: "spx", namespace: ns }),
    ];
    await waitFor("children gone", async () => (await Promise.all(children.map(exists))).every((e) => !e), 60_000);
  }, 70_000);
});

describe("failures of the operator and of the API server", () => {
  let ns: string;
  let kubeconfig: string;
  const operators: OperatorProcess[] = [];
  beforeAll(async () => {
    ns = await operatorNamespace(a, uniqueNamespace("ha"));
    kubeconfig = await serviceAccountKubeconfig(a, ns);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(operators.map((o) => o.stop()));
  });
  const holder = async () => (await a.coordination.readNamespacedLease({ name: `wavelet-operator-${ns}`, namespace: ns })).spec?.holderIdentity;

  it("two operators: one leads; the other takes over when it dies, and finishes a rollout it did not start", async () => {
    const one = await startOperator(kubeconfig, ns, { POD_NAME: "one" });
    operators.push(one);
    await waitFor("one leads", async () => (await holder()) === "one");
    const two = await startOperator(kubeconfig, ns, { POD_NAME: "two" });
    operators.push(two);
    const m = models(a, ns);
    await m.create("ha", spec({ rollout: { autoPromote: false, scaleDownDelaySeconds: 1, progressDeadlineSeconds: 60 } }));
    await waitFor("Ready", async () => (await m.get("ha")).status?.phase === "Ready");
    expect(await holder()).toBe("one");
    expect(two.logs()).not.toContain("became leader");

    await m.patch("ha", { spec: { bundle: { builtin: "spx-vol-5d", digest: DIGEST_B } } });
    await waitFor("awaiting promotion", async () => (await m.get("ha")).status?.rollout?.phase === "AwaitingPromotion");
    await one.kill(); // mid-rollout, without a chance to release the lease
    await waitFor("two leads", async () => (await holder()) === "two", 20_000);
    await m.patch("ha", { metadata: { annotations: { "wavelet.dev/promote": "true" } } });
    const done = await waitFor("promoted by the new leader", async () => {
      const x = await m.get("ha");
      return x.status?.activeColor === "green" && x.status.phase === "Ready" ? x : undefined;
    }, 30_000);
    expect(done.status?.activeBundle?.digest).toBe(DIGEST_B);
    expect(two.logs()).toContain("became leader");
  }, 90_000);

  it("a leader that cannot renew within its deadline exits at once", async () => {
    const leader = operators.find((o) => o.child.exitCode === null && o.child.signalCode === null && o.logs().includes("became leader"))!;
    const cluster = process.env.IT_CLUSTER ?? "wavelet-it";
    const stoppedAt = Date.now();
    execFileSync(`${root}/e2e/cluster/apiserver.sh`, ["stop", cluster, "--controllers"], { stdio: "ignore" });
    try {
      const code = await Promise.race([leader.exited, new Promise((r) => setTimeout(() => r("still running"), 10_000))]);
      expect(code).toBe(1);
      // RENEW_DEADLINE_SECONDS is 3 in these tests; a hung renewal must not stretch it.
      expect(Date.now() - stoppedAt).toBeLessThan(6_000);
      expect(leader.logs()).toContain("lost leadership: could not renew the lease in time");
    } finally {
      execFileSync(`${root}/e2e/cluster/apiserver.sh`, ["start", cluster, "--controllers"], { stdio: "ignore" });
    }
  }, 90_000);

  it("recovers when the API server restarts within the renew deadline", async () => {
    const cluster = process.env.IT_CLUSTER ?? "wavelet-it";
    // A lease that outlives the restart: this operator keeps leading through it.
    const patient = await startOperator(kubeconfig, ns, { POD_NAME: "patient", LEASE_DURATION_SECONDS: "60", RENEW_DEADLINE_SECONDS: "40", RETRY_PERIOD_SECONDS: "2" });
    operators.push(patient);
    await waitFor("patient leads", async () => (await holder()) === "patient", 30_000);
    // --controllers: fresh controller processes resume at once instead of after their
    // reconnect back-off (e2e/cluster/README.md); the operator's own recovery is what is tested.
    const readyz = async () => (await fetch(`http://127.0.0.1:${patient.port}/readyz`)).status;
    execFileSync(`${root}/e2e/cluster/apiserver.sh`, ["stop", cluster, "--controllers"], { stdio: "ignore" });
    try {
      // Its watches are down: not ready, though it still leads.
      await waitFor("/readyz 503 while the watches are down", async () => (await readyz()) === 503, 10_000);
    } finally {
      execFileSync(`${root}/e2e/cluster/apiserver.sh`, ["start", cluster, "--controllers"], { stdio: "ignore" });
    }
    await waitFor("/readyz 200 once they are back", async () => (await readyz()) === 200, 60_000);
    const m = models(a, ns);
    await waitFor("API server back", () => m.get("ha"), 60_000);
    await m.patch("ha", { spec: { replicas: 3 } });
    await waitFor("change after the restart reconciled", async () => (await replicaSet(ns, "ha-green")).spec?.replicas === 3, 60_000);
    expect(patient.child.exitCode).toBeNull();
  }, 150_000);
});

describe("running it locally (npm run start -w operator)", () => {
  it("outside a cluster, leader election is off by default and it reconciles", async () => {
    const ns = await operatorNamespace(a, uniqueNamespace("local"));
    const operator = await startOperator(await serviceAccountKubeconfig(a, ns), ns, { LEADER_ELECTION: "", OPERATOR_NAMESPACE: "" });
    try {
      await models(a, ns).create("spx", spec());
      await waitFor("Ready", async () => (await models(a, ns).get("spx")).status?.phase === "Ready");
      expect(operator.logs()).toContain("leader election is off");
    } finally {
      await operator.stop();
    }
  }, 60_000);

  it("with leader election in a namespace that does not exist, it stops at once with one clear line", async () => {
    const ns = await operatorNamespace(a, uniqueNamespace("nolease"));
    // As a person runs it: their own (administrator's) kubeconfig.
    // It may exit before or after its caches report ready: either way, with that line.
    const output = await startOperator(inject("kubeconfig"), ns, { OPERATOR_NAMESPACE: "no-such-namespace" }).then(
      async (op) => {
        expect(await op.exited).toBe(2);
        return op.logs();
      },
      (error: Error) => error.message,
    );
    expect(output).toContain("leader election: namespace no-such-namespace does not exist; create it");
  }, 60_000);
});

describe("one operator watching two namespaces", () => {
  it("reconciles WaveletModels in both with the chart's Roles there, no ClusterRole", async () => {
    const namespaces = [uniqueNamespace("two"), uniqueNamespace("two")];
    const [own] = namespaces as [string, string];
    await operatorNamespace(a, own, { watch: namespaces });
    const operator = await startOperator(await serviceAccountKubeconfig(a, own), own, { WATCH_NAMESPACE: namespaces.join(",") });
    try {
      for (const ns of namespaces) await models(a, ns).create("spx", spec());
      for (const ns of namespaces) await waitFor(`Ready in ${ns}`, async () => (await condition(a, ns, "spx", "Ready")) === "True");
    } finally {
      await operator.stop();
    }
  }, 60_000);
});

describe("RBAC", () => {
  it("the operator runs with its ServiceAccount's permissions only: without one, its work fails", async () => {
    const withheld = (rules: V1PolicyRule[]) => rules.map((r) => (r.resources?.includes("services") ? { ...r, verbs: ["get", "list", "watch"] } : r));
    const ns = await operatorNamespace(a, uniqueNamespace("rbac"), { clusterRules: withheld });
    const operator = await startOperator(await serviceAccountKubeconfig(a, ns), ns);
    try {
      await models(a, ns).create("spx", spec());
      // The error reaches the user: Degraded in status and one Warning Event, not only a log line.
      const degraded = await waitFor("Degraded=ReconcileFailed", async () => (await models(a, ns).get("spx")).status?.conditions?.find((c) => c.type === "Degraded" && c.reason === "ReconcileFailed"), 30_000);
      expect(degraded.message).toMatch(/^writing Service spx(-preview)?: .*forbidden/);
      expect(await exists(() => service(ns, "spx"))).toBe(false);
      expect(await condition(a, ns, "spx", "Ready")).toBe("False");
      expect((await eventReasons(a, ns, "spx")).filter((r) => r === "ReconcileFailed")).toHaveLength(1);
    } finally {
      await operator.stop();
    }
  }, 60_000);
});

describe("upgrading from an operator that made Deployments (issue 13)", () => {
  it("the serving colour moves to a ReplicaSet with no moment without ready pods, no switch and no rollout; the Deployment goes", async () => {
    const ns = await operatorNamespace(a, uniqueNamespace("upgrade"));
    const m = models(a, ns);
    // What the older operator left: the model with its status, blue's Deployment and the Services.
    await m.create("spx", spec());
    const created = await m.get("spx");
    const wm = waveletModel.parse(created);
    const settings = { defaultServerImage: "wavelet-server:test" };
    const hash = templateHash(wm, wm.spec, settings);
    const { metadata, spec: rs } = desiredReplicaSet(wm, wm.spec, "blue", 2, settings);
    await a.apps.createNamespacedDeployment({ namespace: ns, body: { apiVersion: "apps/v1", kind: "Deployment", metadata, spec: { ...rs!, template: rs!.template! } } });
    for (const body of desiredServices(wm, "blue", "blue")) await a.core.createNamespacedService({ namespace: ns, body });
    await a.custom.patchNamespacedCustomObjectStatus(
      {
        group: "wavelet.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "waveletmodels",
        name: "spx",
        body: { status: { activeColor: "blue", previewColor: "blue", activeTemplateHash: hash, lastGoodSpec: created.spec } },
      },
      setHeaderOptions("Content-Type", "application/merge-patch+json"),
    );
    await waitFor("the Deployment's pods ready", async () => (await readyPods(a, ns, "spx", "blue")) === 2);

    // From now on, every 100 ms: blue's ready pods never below 2.
    let fewest = Number.POSITIVE_INFINITY;
    const poll = setInterval(() => void readyPods(a, ns, "spx", "blue").then((n) => (fewest = Math.min(fewest, n)), () => undefined), 100);
    const operator = await startOperator(await serviceAccountKubeconfig(a, ns), ns);
    try {
      const watch = await new SwitchWatch(a, ns, "spx").start();
      await waitFor("the Deployment deleted", async () => !(await exists(() => a.apps.readNamespacedDeployment({ name: "spx-blue", namespace: ns }))), 30_000);
      const ready = await waitFor("Ready", async () => ((await m.get("spx")).status?.phase === "Ready" ? m.get("spx") : undefined));
      await waitFor("the Deployment's pods gone", async () => (await a.core.listNamespacedPod({ namespace: ns, labelSelector: "wavelet.dev/model=spx" })).items.length === 2, 30_000);
      watch.stop();
      clearInterval(poll);
      expect(ready.status).toMatchObject({ activeColor: "blue", activeTemplateHash: hash, readyReplicas: 2 });
      expect((await replicaSet(ns, "spx-blue")).spec?.replicas).toBe(2);
      expect(fewest).toBeGreaterThanOrEqual(2);
      expect(watch.changes.map((c) => c.color)).toEqual(["blue"]);
      expect(await eventReasons(a, ns, "spx")).not.toContain("RolloutStarted");
    } finally {
      clearInterval(poll);
      await operator.stop();
    }
  }, 90_000);
});
