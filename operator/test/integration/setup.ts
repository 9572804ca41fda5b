import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { waitEstablished } from "../../../test-support/crds.js";
import { buildHelm } from "../helm.js";

/**
 * One real control plane for the operator's integration tests: kube-apiserver, etcd,
 * kube-controller-manager, kube-scheduler and kwok (e2e/cluster/up.sh, binaries built from
 * the Go module proxy on first use). The CRD is installed here, as an administrator would;
 * the operator never installs it. The tests take the operator's RBAC from the Helm chart, so
 * helm is built here too. KEEP_CLUSTER=1 leaves the cluster up afterwards; IT_CLUSTER names
 * another cluster (to run these tests while another run uses the default one).
 */

export const CLUSTER = process.env.IT_CLUSTER ?? "wavelet-it";
const root = resolve(import.meta.dirname, "../../..");

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfig: string;
    kubectl: string;
    helm: string;
  }
}

export default function setup(project: TestProject) {
  const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
    execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  const bin = run(`${root}/e2e/cluster/build.sh`, []).trim().split("\n").at(-1)!;
  // Test files run in parallel and their models' pods together pass one fake node's 110.
  const kubeconfig = run(`${root}/e2e/cluster/up.sh`, [CLUSTER], { WAVELET_KWOK_NODES: "3" }).trim().split("\n").at(-1)!;
  const kubectl = `${bin}/kubectl`;
  const helm = buildHelm();
  run(kubectl, ["apply", "--server-side", "-f", `${root}/crds/waveletmodel.yaml`], { KUBECONFIG: kubeconfig });
  waitEstablished(kubectl, kubeconfig, ["waveletmodels.wavelet.dev"]);
  project.provide("kubeconfig", kubeconfig);
  project.provide("kubectl", kubectl);
  project.provide("helm", helm);
  return () => {
    if (!process.env.KEEP_CLUSTER) run(`${root}/e2e/cluster/down.sh`, [CLUSTER]);
  };
}
