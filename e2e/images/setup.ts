import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { exportedVariables } from "../../test-support/shell.js";

/** The images built the offline way (scripts/images.sh), in the daemon it chose. */

declare module "vitest" {
  export interface ProvidedContext {
    docker: { DOCKER: string; DOCKER_HOST: string };
    images: string[];
  }
}

export default function setup(project: TestProject) {
  const root = resolve(import.meta.dirname, "../..");
  const out = execFileSync(`${root}/scripts/images.sh`, [], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const env = exportedVariables(out);
  project.provide("docker", { DOCKER: env.DOCKER!, DOCKER_HOST: env.DOCKER_HOST! });
  project.provide("images", env.WAVELET_IMAGES!.split(" "));
}
