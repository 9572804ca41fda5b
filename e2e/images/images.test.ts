import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { freePort, waitFor } from "../../test-support/wait.js";

/**
 * The images as users run them: the guide's `docker run` line against the server image,
 * hardened the way the Deployments run it (read-only root filesystem, non-root, no
 * capabilities), stopped with `docker stop`; what the images hold and do not hold; sizes.
 */

const root = resolve(import.meta.dirname, "../..");
const image = (prefix: string) => inject("images").find((i) => i.startsWith(prefix))!;
const SERVER = () => image("wavelet-server:");
const OPERATOR = () => image("wavelet-operator:");

function docker(args: string[], input?: string): string {
  const { DOCKER, DOCKER_HOST } = inject("docker");
  return execFileSync(DOCKER, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, DOCKER_HOST } });
}
const inspect = (img: string) => JSON.parse(docker(["image", "inspect", img]))[0];
/** Runs `node -e` inside an image (the only program the runtime images have). */
const nodeIn = (img: string, script: string) => docker(["run", "--rm", "--entrypoint", "/usr/local/bin/node", img, "-e", script]).trim();
// docker-proxy accepts connections before the container listens; a fetch on one of those
// would wait for headers for undici's default 300 s.
const probe = (url: string) => fetch(url, { signal: AbortSignal.timeout(2000) });
const sha256 = (file: string) => `sha256:${createHash("sha256").update(readFileSync(file)).digest("hex")}`;

const started: string[] = [];
afterAll(() => {
  for (const name of started) {
    try {
      docker(["rm", "-f", name]);
    } catch {
      // already gone
    }
  }
});

describe("the server image", () => {
  it("serves the guide's `docker run` line (MODEL_DIR a directory of bundles), hardened, and stops cleanly on docker stop", async () => {
    const port = await freePort();
    const name = `wavelet-image-test-${port}`;
    const logs = mkdtempSync(join(tmpdir(), "wavelet-logs-"));
    started.push(name);
    // docker run -d --name financial-api -p 8000:8000 -v $(pwd)/models:/app/models:ro
    //   -v $(pwd)/logs:/app/logs -e MODEL_DIR=/app/models financial-wavelet-api:latest
    // run from the repository root, plus what the Deployments add: --read-only, no capabilities,
    // and limits (which /metrics reports for the CPU and memory alerts).
    docker([
      "run", "-d", "--name", name, "-p", `127.0.0.1:${port}:8000`,
      "-v", `${root}/models:/app/models:ro`, "-v", `${logs}:/app/logs`, "-e", "MODEL_DIR=/app/models",
      "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "768m", "--cpus", "1.5",
      SERVER(),
    ]);
    const base = `http://127.0.0.1:${port}`;
    const health = await waitFor("the container's /health", async () => {
      const res = await probe(`${base}/health`);
      return res.ok && ((await res.json()) as { bundle: { name: string; digest: string } });
    }, 60_000);
    expect(health.bundle.name).toBe("spx-return-1d");
    expect(health.bundle.digest).toBe(sha256(`${root}/models/bundles/spx-return-1d/manifest.json`));
    const predict = await fetch(`${base}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ features: [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], model_type: "ensemble" }),
    });
    expect(predict.status).toBe(200);
    expect(((await predict.json()) as { prediction: number }).prediction).toEqual(expect.any(Number));
    expect((await fetch(`${base}/docs`)).status).toBe(200);
    expect((await fetch(`${base}/redoc/redoc.standalone.js`)).status).toBe(200);
    // The container's own cgroup limits, read from inside it.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^process_memory_limit_bytes 805306368$/m);
    expect(metrics).toMatch(/^process_cpu_limit_cores\{source="cgroup"\} 1\.5$/m);

    // node is PID 1 and gets SIGTERM: it drains (SHUTDOWN_DELAY_MS, 5 s) and exits 0 before
    // docker stop's 10 s would end in SIGKILL (exit 137).
    const t = Date.now();
    docker(["stop", name]);
    const stopSeconds = (Date.now() - t) / 1000;
    expect(docker(["inspect", "-f", "{{.State.ExitCode}}", name]).trim()).toBe("0");
    expect(stopSeconds).toBeLessThan(9);
  });

  it("serves its built-in bundles with MODEL_DIR unset, MODEL_DIR=/app/models and MODEL_BUNDLE", async () => {
    for (const [env, bundle] of [
      [[], "spx-return-1d"],
      [["-e", "MODEL_DIR=/app/models"], "spx-return-1d"],
      [["-e", "MODEL_DIR=/app/models", "-e", "MODEL_BUNDLE=spx-vol-5d"], "spx-vol-5d"],
      [["-e", "MODEL_DIR=/app/models", "-e", "MODEL_BUNDLE=spx-range-vol-5d"], "spx-range-vol-5d"],
    ] as const) {
      const port = await freePort();
      const name = `wavelet-image-test-${port}`;
      started.push(name);
      docker(["run", "-d", "--name", name, "-p", `127.0.0.1:${port}:8000`, "--read-only", ...env, SERVER()]);
      const health = await waitFor(`/health with ${env.join(" ") || "no settings"}`, async () => {
        const res = await probe(`http://127.0.0.1:${port}/health`);
        return res.ok && ((await res.json()) as { bundle: { name: string } });
      }, 60_000);
      expect(health.bundle.name).toBe(bundle);
      docker(["rm", "-f", name]);
    }
  });

  it("runs as uid 10001 with only node: no shell, no npm, onnxruntime for linux-x64 only, labelled, under 300 MB", () => {
    const info = inspect(SERVER());
    expect(info.Config.User).toBe("10001:10001");
    expect(Object.keys(info.Config.ExposedPorts)).toEqual(["8000/tcp"]);
    expect(info.Config.Entrypoint[0]).toBe("/usr/local/bin/node");
    for (const label of ["version", "revision", "source"]) expect(info.Config.Labels[`org.opencontainers.image.${label}`]).toBeTruthy();
    expect(info.Size / 1e6).toBeLessThanOrEqual(300);
    expect(nodeIn(SERVER(), "process.stdout.write(String(process.getuid()))")).toBe("10001");
    const present = (path: string) => nodeIn(SERVER(), `process.stdout.write(String(require("fs").existsSync(${JSON.stringify(path)})))`);
    for (const path of ["/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/local/bin/npm", "/usr/bin/apt"]) expect(present(path), path).toBe("false");
    const platforms = nodeIn(
      SERVER(),
      `const fs=require("fs"),p="/app/node_modules/onnxruntime-node/bin";
       process.stdout.write(JSON.stringify(fs.readdirSync(p).flatMap(n=>fs.readdirSync(p+"/"+n).flatMap(o=>fs.readdirSync(p+"/"+n+"/"+o).map(a=>o+"/"+a)))))`,
    );
    expect(JSON.parse(platforms)).toEqual(["linux/x64"]);
  });
});

describe("the operator image", () => {
  it("prints the CRD the repository ships (the bundled operator runs), as uid 10001, without a shell, under 150 MB", () => {
    expect(docker(["run", "--rm", "--read-only", OPERATOR(), "crd"])).toBe(readFileSync(`${root}/crds/waveletmodel.yaml`, "utf8"));
    const info = inspect(OPERATOR());
    expect(info.Config.User).toBe("10001:10001");
    expect(Object.keys(info.Config.ExposedPorts)).toEqual(["8080/tcp"]);
    for (const label of ["version", "revision", "source"]) expect(info.Config.Labels[`org.opencontainers.image.${label}`]).toBeTruthy();
    expect(info.Size / 1e6).toBeLessThanOrEqual(150);
    expect(nodeIn(OPERATOR(), 'process.stdout.write(String(require("fs").existsSync("/bin/sh")))')).toBe("false");
  });
});

describe("the bundle images", () => {
  for (const bundle of ["spx-return-1d", "spx-vol-5d"]) {
    it(`${bundle}: the init container's copy gives the bundle byte for byte`, () => {
      const img = image(`wavelet-bundle-${bundle}:`);
      // An emptyDir, as the pod has: writable by the image's user.
      const out = mkdtempSync(join(tmpdir(), "wavelet-bundle-"));
      chmodSync(out, 0o777);
      // What the operator's init container runs.
      docker(["run", "--rm", "--read-only", "-v", `${out}:/models/bundle`, img, "-R", "/bundle/.", "/models/bundle"]);
      const dir = `${root}/models/bundles/${bundle}`;
      const files = (d: string): string[] =>
        readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(d, e.name)).map((f) => `${e.name}/${f}`) : [e.name]));
      expect(files(out).sort()).toEqual(files(dir).sort());
      for (const f of files(dir)) expect(sha256(join(out, f)), f).toBe(sha256(join(dir, f)));
      const info = inspect(img);
      expect(info.Config.User).toBe("10001:10001");
      expect(info.Size / 1e6).toBeLessThan(10);
    });
  }
});
