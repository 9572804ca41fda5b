// Run by monitoring/check.sh after `promtool test rules` (which checks that the tests pass):
// - every alert in alerts.yml has a test where it fires and one where it stays silent;
// - every alert has its runbook section in monitoring/README.md and a row in README.md;
// - monitoring/README.md's dashboard table lists every panel with its queries as they are.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

const here = import.meta.dirname;
const read = (path) => readFileSync(join(here, path), "utf8");
const alerts = parse(read("../alerts.yml")).groups.flatMap((g) => g.rules.filter((r) => r.alert).map((r) => r.alert));
const cases = readdirSync(here)
  .filter((f) => f.endsWith(".test.yml"))
  .flatMap((f) => parse(read(f)).tests.flatMap((t) => t.alert_rule_test ?? []));
const docs = read("../README.md");
const top = read("../../README.md");
const problems = alerts.flatMap((alert) => {
  const mine = cases.filter((c) => c.alertname === alert);
  return [
    ...(mine.some((c) => (c.exp_alerts ?? []).length > 0) ? [] : [`${alert}: no test where it fires`]),
    ...(mine.some((c) => (c.exp_alerts ?? []).length === 0) ? [] : [`${alert}: no test where it stays silent`]),
    ...(docs.includes(`### ${alert}\n`) ? [] : [`${alert}: no runbook section in monitoring/README.md`]),
    ...(top.includes(`| [${alert}](monitoring/README.md#${alert.toLowerCase()})`) ? [] : [`${alert}: no row in README.md's alerts table`]),
  ];
});

const panels = (list) => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
for (const file of readdirSync(join(here, "../grafana/dashboards")).filter((f) => f.endsWith(".json"))) {
  for (const panel of panels(JSON.parse(read(`../grafana/dashboards/${file}`)).panels).filter((p) => p.type !== "row")) {
    const queries = (panel.targets ?? []).map((t) => `\`${t.expr.replaceAll("|", "\\|")}\``).join("<br>");
    if (!docs.includes(`| ${panel.title} | ${queries} |`)) problems.push(`${file}: panel "${panel.title}" is not in monitoring/README.md's table with its queries as they are`);
  }
}
if (problems.length) {
  console.error(`monitoring/check.sh:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`monitoring/tests: each of the ${alerts.length} alerts fires in a test, stays silent in another and has its runbook; the dashboard table is current`);
