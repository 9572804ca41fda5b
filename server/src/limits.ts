import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { join } from "node:path";

/**
 * The CPU and memory this process may use, for the CPU/memory alerts (used ÷ limit): the
 * container's cgroup limits (v2 or v1), else the machine's cores and no memory limit (the
 * alerts then compare the V8 heap with its own limit). Read once at start: a container's
 * limits do not change under it.
 */
export interface Limits {
  cpuCores: number;
  cpuSource: "cgroup" | "cpus";
  memoryBytes?: number;
}

type Read = (path: string) => string | undefined;

const readFrom =
  (root: string): Read =>
  (path) => {
    try {
      return readFileSync(join(root, path), "utf8").trim();
    } catch {
      return undefined;
    }
  };

/** `root` is "/" in production; tests give a directory laid out like /proc and /sys. */
export function containerLimits(root = "/", cores = availableParallelism(), machineMemory = totalmem()): Limits {
  const read = readFrom(root);
  // The process's own cgroup (a container sees "/" with a cgroup namespace, its full path without).
  const own = (controller: string) =>
    (read("proc/self/cgroup") ?? "")
      .split("\n")
      .map((line) => line.split(":"))
      .find(([, controllers]) => (controller === "" ? controllers === "" : controllers?.split(",").includes(controller)))?.[2] ?? "/";
  // The file in the process's cgroup, else at the mount's root (the container's own cgroup).
  const first = (dir: string, cgroup: string, file: string) => read(join("sys/fs/cgroup", dir, cgroup, file)) ?? read(join("sys/fs/cgroup", dir, file));

  let quota: number | undefined;
  let memory: number | undefined;
  const v2 = first("", own(""), "cgroup.controllers") !== undefined;
  if (v2) {
    const [max, period] = (first("", own(""), "cpu.max") ?? "max").split(" ");
    if (max !== "max" && period) quota = Number(max) / Number(period);
    const mem = first("", own(""), "memory.max");
    if (mem && mem !== "max") memory = Number(mem);
  } else {
    const cpu = own("cpu");
    const us = Number(first("cpu", cpu, "cpu.cfs_quota_us") ?? first("cpu,cpuacct", cpu, "cpu.cfs_quota_us") ?? -1);
    const period = Number(first("cpu", cpu, "cpu.cfs_period_us") ?? first("cpu,cpuacct", cpu, "cpu.cfs_period_us") ?? 0);
    if (us > 0 && period > 0) quota = us / period;
    const mem = Number(first("memory", own("memory"), "memory.limit_in_bytes"));
    if (Number.isFinite(mem)) memory = mem;
  }
  const limited = quota !== undefined && quota > 0 && quota < cores;
  return {
    cpuCores: limited ? quota! : cores,
    cpuSource: limited ? "cgroup" : "cpus",
    // v1 writes "no limit" as a huge number; a limit above the machine's memory limits nothing.
    ...(memory !== undefined && memory > 0 && memory < machineMemory ? { memoryBytes: memory } : {}),
  };
}
