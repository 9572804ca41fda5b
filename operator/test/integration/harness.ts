import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { KubeConfig, PatchStrategy, type V1ClusterRole, type V1PolicyRule } from "@kubernetes/client-node";
import { inject } from "vitest";
import { eventReasons, eventReasonsWith, kubeClients, type Model, models, readyPods } from "../../../test-support/kube.js";
import { freePort, waitFor } from "../../../test-support/wait.js";
import { renderChart } from "../helm.js";

/** Clients, namespaces and operator processes for tests against the real control plane. */

export { eventReasons, eventReasonsWith, type Model, models, readyPods, waitFor };

const root = resolve(import.meta.dirname, "../../..");
export const OPERATOR_JS = join(root, "operator/dist/main.js");
export const LOG_DIR = join(tmpdir(), "wavelet-operator-test-logs");

export const admin = () => kubeClients(inject("kubeconfig"));

export const DIGEST_A = `sha256:${"a".repeat(64)}`;
export const DIGEST_B = `sha256:${"b".repeat(64)}`;

let seq = 0;
/** A namespace name no earlier test used. */
export const uniqueNamespace = (stem: string) => `${stem}-${Date.now().toString(36)}-${seq++}`;

/** A WaveletModel spec for kwok's pods: two replicas, short delays; `over` replaces fields. */
export const modelSpec = (over: Record<string, unknown> = {}) => ({
  bundle: { builtin: "spx-return-1d", digest: DIGEST_A, version: "1.0.0" },
  replicas: 2,
  rollout: { scaleDownDelaySeconds: 2, progressDeadlineSeconds: 30 },
  ...over,
});
export type Admin = ReturnType<typeof admin>;

export interface RbacOptions {
  /** The chart's watchNamespaces: Roles there instead of a ClusterRole. */
  watch?: string[];
  /** Changes the rendered ClusterRole's rules, for a test that withholds a permission. */
  clusterRules?: (rules: V1PolicyRule[]) => V1PolicyRule[];
  /** More `helm template` arguments (`--set migrateDeployments=false`). */
  values?: string[];
  /** More chart templates to apply (`metrics-api-rbac`). */
  templates?: string[];
}

/**
 * A fresh namespace (and the watched ones), with the operator's ServiceAccount and RBAC as
 * the Helm chart renders them, named per namespace so tests do not share a ClusterRole.
 */
export async function operatorNamespace(a: Admin, name: string, { watch = [], clusterRules, values = [], templates = [] }: RbacOptions = {}): Promise<string> {
  for (const namespace of new Set([name, ...watch])) await a.core.createNamespace({ body: { metadata: { name: namespace } } });
  const args = ["--namespace", name, "--set", `fullnameOverride=wavelet-operator-${name}`, "--set-json", `watchNamespaces=${JSON.stringify(watch)}`, ...values];
  for (const template of ["serviceaccount", "rbac", "leader-election-rbac", ...templates]) args.push("--show-only", `templates/${template}.yaml`);
  for (const object of renderChart(inject("helm"), args)) {
    if (object.kind === "ClusterRole" && clusterRules) (object as V1ClusterRole).rules = clusterRules((object as V1ClusterRole).rules ?? []);
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
      LEADER_ELECTION: "true",
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

export async function condition(a: Admin, namespace: string, name: string, type: string): Promise<string | undefined> {
  const wm = await models(a, namespace).get(name);
  return wm.status?.conditions?.find((c) => c.type === type)?.status;
}

export const kubectlBin = () => inject("kubectl");
