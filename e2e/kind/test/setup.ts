import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import type { ProvidedContext } from "vitest";
import type { TestProject } from "vitest/node";
import { exportedVariables } from "../../../test-support/shell.js";
import { buildHelm } from "../../../operator/test/helm.js";
import { RESULTS_FILE, printResults } from "./results.js";

/**
 * The kind tier: one cluster (e2e/kind/up.sh: the offline-built node image, metrics-server,
 * our images loaded) and the operator installed by its Helm chart with two replicas, as a
 * user would. Each test file then applies WaveletModels in namespaces of its own and sends
 * real traffic through their Services. KEEP_CLUSTER=1 leaves the cluster up afterwards.
 */

const root = resolve(import.meta.dirname, "../../..");
export const CLUSTER = process.env.KIND_CLUSTER ?? "wavelet-e2e";
export const OPERATOR_NAMESPACE = "wavelet-system";
export const RELEASE = "wavelet-operator";
export const BUNDLES = ["spx-return-1d", "spx-vol-5d"] as const;
export type BundleName = (typeof BUNDLES)[number];

/** The imported bundles (scripts/imported-bundles.sh): a guide user's own models, two releases. */
export const IMPORTED_VERSIONS = ["1.0.0", "1.1.0"] as const;

export interface BundleRef {
  /** name@sha256:…, as a registry would have pinned it (up.sh records it in the node). */
  image: string;
  /** The bundle digest: sha256 of its manifest.json. */
  digest: string;
  version: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfig: string;
    kubectl: string;
    helm: string;
    docker: { DOCKER: string; DOCKER_HOST: string };
    node: { container: string; ip: string };
    bundles: Record<BundleName, BundleRef>;
    imported: Record<(typeof IMPORTED_VERSIONS)[number], BundleRef & { names: string[] }>;
    serverImage: string;
    operatorImage: string;
  }
}

const lastLine = (out: string) => out.trim().split("\n").at(-1)!;

export default function setup(project: TestProject) {
  const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
    execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  rmSync(RESULTS_FILE, { force: true });
  const started = Date.now();
  const kubeconfig = lastLine(run(`${root}/e2e/kind/up.sh`, []));
  const env = exportedVariables(run(`${root}/scripts/docker-env.sh`, []));
  const docker = { DOCKER: env.DOCKER!, DOCKER_HOST: env.DOCKER_HOST! };
  const dockerRun = (args: string[]) => run(docker.DOCKER, args, docker);
  const container = `${CLUSTER}-control-plane`;
  const ip = dockerRun(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container]).trim();
  const kubectl = `${lastLine(run(`${root}/e2e/cluster/build.sh`, []))}/kubectl`;
  const helm = buildHelm();
  const version = JSON.parse(readFileSync(`${root}/server/package.json`, "utf8")).version as string;

  // The digest of the manifest the node holds for an image up.sh loaded (and pinned).
  const imageDigest = (tag: string) => {
    const line = dockerRun(["exec", container, "ctr", "-n", "k8s.io", "images", "ls", `name==docker.io/library/${tag}`]).trim().split("\n")[1];
    const digest = line?.split(/\s+/)[2];
    if (!digest?.startsWith("sha256:")) throw new Error(`${tag} is not loaded in the node`);
    return digest;
  };
  const bundleRef = (name: string, dir: string) => {
    const manifest = readFileSync(`${dir}/manifest.json`);
    const parsed = JSON.parse(manifest.toString()) as { version: string; features: { names: string[] } };
    return {
      image: `wavelet-bundle-${name}@${imageDigest(`wavelet-bundle-${name}:${parsed.version}`)}`,
      digest: `sha256:${createHash("sha256").update(manifest).digest("hex")}`,
      version: parsed.version,
      names: parsed.features.names,
    };
  };
  const bundles = {} as Record<BundleName, BundleRef>;
  for (const name of BUNDLES) bundles[name] = bundleRef(name, `${root}/models/bundles/${name}`);
  // Cached: the directory images.sh built the images from.
  const importedDir = lastLine(run(`${root}/scripts/imported-bundles.sh`, []));
  const imported = Object.fromEntries(IMPORTED_VERSIONS.map((v) => [v, bundleRef("byom", `${importedDir}/byom-${v}`)])) as ProvidedContext["imported"];

  // The operator as a user installs it: the chart (CRD included), two replicas, images pinned
  // by digest (so a rebuilt image rolls the operator, and the servers through blue-green).
  run(helm, [
    "upgrade", "--install", RELEASE, `${root}/charts/wavelet-operator`,
    "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
    "--set", `image.repository=wavelet-operator,image.digest=${imageDigest(`wavelet-operator:${version}`)}`,
    "--set", `serverImage.repository=wavelet-server,serverImage.digest=${imageDigest(`wavelet-server:${version}`)}`,
    "--set", "replicaCount=2,logLevel=debug",
    "--wait", "--timeout", "5m",
  ], { KUBECONFIG: kubeconfig });
  process.stderr.write(`[e2e] cluster and operator ready in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);

  project.provide("kubeconfig", kubeconfig);
  project.provide("kubectl", kubectl);
  project.provide("helm", helm);
  project.provide("docker", docker);
  project.provide("node", { container, ip });
  project.provide("bundles", bundles);
  project.provide("imported", imported);
  project.provide("serverImage", `wavelet-server:${version}`);
  project.provide("operatorImage", `wavelet-operator:${version}`);
  return () => {
    printResults();
    if (!process.env.KEEP_CLUSTER) run(`${root}/e2e/kind/down.sh`, []);
  };
}
