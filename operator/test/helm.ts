import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

/** The Helm chart, and helm v3 to render it, for tests (unit and integration). */

const root = resolve(import.meta.dirname, "../..");
export const CHART = resolve(root, "charts/wavelet-operator");

/** helm, built from the Go module proxy by e2e/kind/build.sh: minutes the first time, cached after. */
export function buildHelm(): string {
  const out = execFileSync(`${root}/e2e/kind/build.sh`, ["helm"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return `${out.trim().split("\n").at(-1)}/helm`;
}

/** `helm template` of the chart; a failure throws with helm's message. */
export function helmTemplate(helm: string, args: string[] = []): string {
  return execFileSync(helm, ["template", "wavelet-operator", CHART, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export function renderChart(helm: string, args: string[] = []): KubernetesObject[] {
  return parseAllDocuments(helmTemplate(helm, args))
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o) => o !== null);
}
