import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1PolicyRule,
} from "@kubernetes/client-node";
import { inject } from "vitest";
import { freePort, waitFor } from "../../../test-support/wait.js";
import { GROUP, PLURAL, VERSION, type WaveletModelStatus } from "../../src/api/waveletmodel.js";
import { CLUSTER_RULES, rbac } from "../../src/deploy.js";

/** Clients, namespaces and operator processes for tests against the real control plane. */

export { waitFor };

const root = resolve(import.meta.dirname, "../../..");
export const OPERATOR_JS = join(root, "operator/dist/main.js");
export const LOG_DIR = join(tmpdir(), "wavelet-operator-test-logs");

export function admin() {
  const kc = new KubeConfig();
  kc.loadFromFile(inject("kubeconfig"));
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    autoscaling: kc.makeApiClient(AutoscalingV2Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}
export type Admin = ReturnType<typeof admin>;

/** A fresh namespace, and the operator's ServiceAccount + RBAC (from deploy.ts) for it. */
export async function operatorNamespace(a: Admin, name: string, rules: V1PolicyRule[] = CLUSTER_RULES): Promise<string> {
  await a.core.createNamespace({ body: { metadata: { name } } });
  for (const object of rbac(name, `wavelet-operator-${name}`, rules)) {
    await a.objects.patch(object, undefined, undefined, "wavelet-tests", true, PatchStrategy.ServerSideApply);
  }
  return name;
}

/** A kubeconfig that authenticates as the operator's ServiceAccount, so only its RBAC applies. */
export async function serviceAccountKubeconfig(a: Admin, namespace: string): Promise<string> {
  const token = await a.core.createNamespacedServiceAccountToken({
    name: `wavelet-operator-${namespace}`,
    namespace,
    body: { spec: { expirationSeconds: 3600, audiences: [] } },
  });
  const cluster = a.kc.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "operator", token: token.status!.token }],
    contexts: [{ name: "operator", cluster: cluster.name, user: "operator" }],
    currentContext: "operator",
  });
  const file = join(mkdtempSync(join(tmpdir(), "operator-")), "kubeconfig");
  writeFileSync(file, kc.exportConfig());
  return file;
}

export interface OperatorProcess {
  child: ChildProcess;
  port: number;
  logs(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** The built operator (dist/main.js) as its own process, watching one namespace. */
export async function startOperator(kubeconfig: string, namespace: string, env: Record<string, string> = {}): Promise<OperatorProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [OPERATOR_JS], {
    env: {
      ...process.env,
      KUBECONFIG: kubeconfig,
      WATCH_NAMESPACE: namespace,
      OPERATOR_NAMESPACE: namespace,
      LEASE_NAME: `wavelet-operator-${namespace}`,
      SERVER_IMAGE: "wavelet-server:test",
      PORT: String(port),
      LEASE_DURATION_SECONDS: "4",
      RENEW_DEADLINE_SECONDS: "3",
      RETRY_PERIOD_SECONDS: "1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  // Kept on disk too: the first place to look when an integration test fails.
  const logFile = join(LOG_DIR, `${namespace}-${env.POD_NAME ?? "operator"}-${port}.log`);
  mkdirSync(LOG_DIR, { recursive: true });
  const append = (d: Buffer) => {
    output += d.toString();
    appendFileSync(logFile, d);
  };
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  await waitFor("operator /readyz", async () => {
    if (child.exitCode !== null) throw new Error(`operator exited: ${output}`);
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
  });
  return { child, port, logs: () => output, exited, stop: () => end("SIGTERM"), kill: () => end("SIGKILL") };
}

export type Model = { metadata: { name: string; generation: number; resourceVersion: string; annotations?: Record<string, string> }; spec: Record<string, unknown>; status?: WaveletModelStatus };

export function models(a: Admin, namespace: string) {
  const base = { group: GROUP, version: VERSION, namespace, plural: PLURAL };
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    create: (name: string, spec: Record<string, unknown>, dryRun = false) =>
      a.custom.createNamespacedCustomObject({
        ...base,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: "WaveletModel", metadata: { name }, spec },
        ...(dryRun ? { dryRun: "All" } : {}),
      }),
    get: (name: string) => a.custom.getNamespacedCustomObject({ ...base, name }) as Promise<Model>,
    patch: (name: string, body: Record<string, unknown>) => a.custom.patchNamespacedCustomObject({ ...base, name, body }, merge),
    remove: (name: string) => a.custom.deleteNamespacedCustomObject({ ...base, name }),
  };
}

/** The reasons of the Events about one object, oldest first. */
export async function eventReasons(a: Admin, namespace: string, name: string): Promise<string[]> {
  const list = await a.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  return list.items
    .filter((e) => e.involvedObject.kind === "WaveletModel")
    // etcd revisions order writes; fine for tests against this one etcd.
    .sort((x, y) => Number(x.metadata?.resourceVersion) - Number(y.metadata?.resourceVersion))
    .map((e) => e.reason!);
}

export async function condition(a: Admin, namespace: string, name: string, type: string): Promise<string | undefined> {
  const wm = await models(a, namespace).get(name);
  return wm.status?.conditions?.find((c) => c.type === type)?.status;
}

export const kubectlBin = () => inject("kubectl");
