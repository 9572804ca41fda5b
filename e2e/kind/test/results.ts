import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * What each scenario measured, one JSON line per scenario, printed as a table when the tier
 * ends (the README's table is copied from it).
 */

export const RESULTS_FILE = join(tmpdir(), "wavelet-e2e-results.jsonl");

export interface ScenarioResult {
  scenario: string;
  requests: number;
  failed: number;
  /** Seconds from apply (or change) to Ready, where the scenario has one. */
  readySeconds?: number;
  /** Seconds from the spec change to the active Service's switch. */
  switchSeconds?: number;
  notes?: string;
}

export function recordResult(r: ScenarioResult): void {
  appendFileSync(RESULTS_FILE, `${JSON.stringify(r)}\n`);
}

const fmt = (v: number | undefined) => (v === undefined ? "–" : v.toFixed(1));

export function printResults(): void {
  if (!existsSync(RESULTS_FILE)) return;
  const rows = readFileSync(RESULTS_FILE, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ScenarioResult);
  const lines = [
    "| scenario | requests | failed | to Ready (s) | to switch (s) | notes |",
    "|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.scenario} | ${r.requests} | ${r.failed} | ${fmt(r.readySeconds)} | ${fmt(r.switchSeconds)} | ${r.notes ?? ""} |`),
  ];
  process.stderr.write(`\n[e2e] results\n${lines.join("\n")}\n`);
}
