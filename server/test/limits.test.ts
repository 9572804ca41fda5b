import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { containerLimits } from "../src/limits.js";
import { testApp } from "./helpers.js";

const GiB = 1024 ** 3;

/** A directory laid out like / with just these files. */
function root(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "limits-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), `${text}\n`);
  }
  return dir;
}

describe("containerLimits reads the process's cgroup", () => {
  it("v2: cpu.max and memory.max of its own cgroup", () => {
    const dir = root({
      "proc/self/cgroup": "0::/kubepods/pod1/c1",
      "sys/fs/cgroup/cgroup.controllers": "cpu memory",
      "sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "150000 100000",
      "sys/fs/cgroup/kubepods/pod1/c1/memory.max": String(GiB / 2),
    });
    expect(containerLimits(dir, 8, 16 * GiB)).toEqual({ cpuCores: 1.5, cpuSource: "cgroup", memoryBytes: GiB / 2 });
  });

  it("v2 with a cgroup namespace (the container sees its cgroup as /), no limits set", () => {
    const dir = root({ "proc/self/cgroup": "0::/", "sys/fs/cgroup/cgroup.controllers": "cpu memory", "sys/fs/cgroup/cpu.max": "max 100000", "sys/fs/cgroup/memory.max": "max" });
    expect(containerLimits(dir, 8, 16 * GiB)).toEqual({ cpuCores: 8, cpuSource: "cpus" });
  });

  it("v1 (Docker without a cgroup namespace): the files at the mount's root when the path is not there", () => {
    const dir = root({
      "proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "50000",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
      "sys/fs/cgroup/memory/memory.limit_in_bytes": String(GiB),
    });
    expect(containerLimits(dir, 2, 24 * GiB)).toEqual({ cpuCores: 0.5, cpuSource: "cgroup", memoryBytes: GiB });
  });

  it("v1 unlimited: quota -1 and the huge 'no limit' number are no limits; a quota above the cores limits nothing", () => {
    const unlimited = root({ "proc/self/cgroup": "4:cpu:/\n12:memory:/", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000", "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712" });
    expect(containerLimits(unlimited, 2, 24 * GiB)).toEqual({ cpuCores: 2, cpuSource: "cpus" });
    const generous = root({ "proc/self/cgroup": "4:cpu:/", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "400000", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000" });
    expect(containerLimits(generous, 2, 24 * GiB)).toEqual({ cpuCores: 2, cpuSource: "cpus" });
  });

  it("no cgroup files at all: the machine's cores", () => {
    expect(containerLimits(root({}), 4, GiB)).toEqual({ cpuCores: 4, cpuSource: "cpus" });
  });
});

describe("/metrics exports the limits the CPU and memory alerts divide by", () => {
  it("with a memory limit: process_memory_limit_bytes; the CPU limit says its source; V8's heap limit", async () => {
    const app = await testApp({}, { limits: { cpuCores: 1.5, cpuSource: "cgroup", memoryBytes: GiB } });
    const body = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).toMatch(/^process_memory_limit_bytes 1073741824$/m);
    expect(body).toMatch(/^process_cpu_limit_cores\{source="cgroup"\} 1\.5$/m);
    expect(body).toMatch(/^nodejs_heap_size_limit_bytes [1-9]\d+$/m);
    await app.close();
  });

  it("without one: no process_memory_limit_bytes at all (not 0), so the alert falls back to the heap", async () => {
    const app = await testApp({}, { limits: { cpuCores: 2, cpuSource: "cpus" } });
    const body = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).not.toContain("process_memory_limit_bytes");
    expect(body).toMatch(/^process_cpu_limit_cores\{source="cpus"\} 2$/m);
    await app.close();
  });
});
