// Every alert in alerts.yml has a promtool test where it fires and one where it stays silent
// (run by monitoring/check.sh after `promtool test rules`, which checks that they pass).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

const here = import.meta.dirname;
const alerts = parse(readFileSync(join(here, "../alerts.yml"), "utf8")).groups.flatMap((g) => g.rules.filter((r) => r.alert).map((r) => r.alert));
const cases = readdirSync(here)
  .filter((f) => f.endsWith(".test.yml"))
  .flatMap((f) => parse(readFileSync(join(here, f), "utf8")).tests.flatMap((t) => t.alert_rule_test ?? []));
const missing = alerts.flatMap((alert) => {
  const mine = cases.filter((c) => c.alertname === alert);
  return [
    ...(mine.some((c) => (c.exp_alerts ?? []).length > 0) ? [] : [`${alert}: no test where it fires`]),
    ...(mine.some((c) => (c.exp_alerts ?? []).length === 0) ? [] : [`${alert}: no test where it stays silent`]),
  ];
});
if (missing.length) {
  console.error(`monitoring/tests: ${missing.join("; ")}`);
  process.exit(1);
}
console.log(`monitoring/tests: each of the ${alerts.length} alerts fires in a test and stays silent in another`);
