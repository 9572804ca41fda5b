import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import {
  type OperatorProcess,
  admin,
  models,
  operatorNamespace,
  serviceAccountKubeconfig,
  startOperator,
} from "../../operator/test/integration/harness.js";
import { GUIDE_FEATURES, RETURN_BUNDLE, VOL_BUNDLE, type RedisProcess, type ServerProcess, copyBundle, startRedis, startServer } from "../../server/test/helpers.js";
import { freePort, waitFor } from "../../test-support/wait.js";

/**
 * Every query the monitoring runs, against a real Prometheus (Debian's) scraping a real server
 * (with Redis) and the real operator (against the control plane of e2e/cluster) under a load
 * that exercises every path the panels and alerts count: cache hits, 401, 429, 503 for a model
 * not served, refused non-finite inputs, inputs and predictions beyond the training, streams,
 * a Redis stall, a refused bundle, a blue-green rollout. Each dashboard panel's query, each
 * recording rule and each alert's expression must return data, and every rule evaluates
 * without error on these real label sets. When alerts fire is for the promtool tests
 * (monitoring/tests); here the alerts' comparisons are made `bool` so they return their
 * signal whether or not it crosses the threshold, and `offset 1h` (the prediction shift's
 * "day before") becomes 5 s because the run lasts a minute.
 */

const root = resolve(import.meta.dirname, "../..");
const MONITORING = join(root, "monitoring");
const DASHBOARDS = join(MONITORING, "grafana/dashboards");
const SCRAPE = "1s";
const METRICS_KEY = "live-check-metrics-key-0001";

interface Panel {
  title?: string;
  type?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Grafana's variables as the dashboard's defaults resolve them against this server. */
function substitute(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__interval", SCRAPE)
    .replaceAll("$__range", "5m")
    .replace(/\$\{?job\}?/g, "financial-api")
    .replace(/\$\{?(instance|model)\}?/g, ".*");
}

const panelQueries: [string, string][] = readdirSync(DASHBOARDS)
  .filter((f) => f.endsWith(".json"))
  .flatMap((file) => {
    const walk = (panels: Panel[] = []): Panel[] => panels.flatMap((p) => [p, ...walk(p.panels)]);
    return walk((JSON.parse(readFileSync(join(DASHBOARDS, file), "utf8")) as { panels: Panel[] }).panels)
      .filter((p) => p.type !== "row")
      .flatMap((p) => (p.targets ?? []).map((t, i) => [`${file}: ${p.title} #${i + 1}`, substitute(t.expr ?? "")] as [string, string]));
  });

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}
const rules = (parse(readFileSync(join(MONITORING, "alerts.yml"), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const records = rules.filter((r) => r.record).map((r) => [r.record!, r.record!] as [string, string]);
/** An alert's expression with every threshold comparison made `bool`: its signal, firing or not. */
const signal = (expr: string) => expr.replace(/(==|!=|>=|<=|>|<)\s*(?=[-0-9.])/g, "$1 bool ").replace(/offset 1h/g, "offset 5s");
const alerts = rules.filter((r) => r.alert).map((r) => [r.alert!, signal(r.expr)] as [string, string]);

let prometheus: { url: string; child: ChildProcess; dir: string } | undefined;
let server: ServerProcess | undefined;
let redis: RedisProcess | undefined;
let operator: OperatorProcess | undefined;

async function query(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${prometheus!.url}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== "success") throw new Error(`${q}: ${body.error}`);
  return body.data!.result;
}

/**
 * monitoring/prometheus.yml with this run's addresses, the server's metrics key in the file it
 * names, and a 1 s scrape and evaluation interval.
 */
function prometheusConfig(dir: string, port: number, apiPort: number, operatorPort: number): string {
  const config = parse(readFileSync(join(MONITORING, "prometheus.yml"), "utf8")) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs?: { targets: string[] }[]; authorization?: { credentials_file: string } }[];
  };
  config.global.scrape_interval = config.global.evaluation_interval = SCRAPE;
  config.rule_files = config.rule_files.map((f) => join(MONITORING, f));
  // No Redis exporter runs here (docker-compose has one): that job is left out.
  config.scrape_configs = config.scrape_configs.filter((j) => j.job_name !== "redis");
  const targets: Record<string, number> = { "financial-api": apiPort, prometheus: port };
  for (const job of config.scrape_configs) if (targets[job.job_name]) job.static_configs = [{ targets: [`127.0.0.1:${targets[job.job_name]}`] }];
  const api = config.scrape_configs.find((j) => j.job_name === "financial-api")!;
  api.authorization!.credentials_file = join(dir, "metrics_api_key");
  writeFileSync(api.authorization!.credentials_file, METRICS_KEY);
  mkdirSync(join(dir, "targets"));
  writeFileSync(join(dir, "targets/wavelet-operator.yml"), stringify([{ targets: [`127.0.0.1:${operatorPort}`] }]));
  const file = join(dir, "prometheus.yml");
  writeFileSync(file, stringify(config));
  return file;
}

async function startPrometheus(apiPort: number, operatorPort: number) {
  const dir = mkdtempSync(join(tmpdir(), "prometheus-live-"));
  const port = await freePort();
  const child = spawn(
    "prometheus",
    [`--config.file=${prometheusConfig(dir, port, apiPort, operatorPort)}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor("prometheus ready", async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
    return (await fetch(`${url}/-/ready`)).ok;
  });
  return { url, child, dir };
}

const post = (url: string, body: unknown, key?: string) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...(key ? { "x-api-key": key } : {}) }, body: typeof body === "string" ? body : JSON.stringify(body) }).then(async (r) => {
    await r.arrayBuffer();
    return r.status;
  });

/** Requests of every kind the panels and alerts count, until `until`. */
async function load(url: string, until: number, keys: [string, string]): Promise<Map<number, number>> {
  const [key, greedy] = keys;
  const statuses = new Map<number, number>();
  const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
  const random = () => GUIDE_FEATURES.map((v) => v + (Math.random() - 0.5) * 0.2);
  const prices = Array.from({ length: 80 }, (_, i) => 100 * Math.exp(0.01 * Math.sin(i / 3) + 0.001 * i));
  const mix: (() => Promise<number>)[] = [
    () => post(`${url}/predict`, { features: GUIDE_FEATURES }, key), // cache hits after the first
    () => post(`${url}/predict`, { features: random(), return_confidence: true }, key),
    () => post(`${url}/predict`, { prices, model_type: "xgboost" }, key),
    () => post(`${url}/predict/batch`, { samples: Array.from({ length: 20 }, random), model_type: "transformer" }, key),
    () => post(`${url}/predict/stream`, { features: Array.from({ length: 40 }, () => Math.random()) }, key),
    // Far beyond anything the training produced: drift and out-of-range predictions.
    () => post(`${url}/predict`, { features: GUIDE_FEATURES.map((v) => v * 400) }, key),
    // Not served here (MODELS leaves it out): 503.
    () => post(`${url}/predict`, { features: GUIDE_FEATURES, model_type: "lstm" }, key),
    // JSON that parses to Infinity: refused at validation.
    () => post(`${url}/predict`, `{"features": [1e999, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}`, key),
    () => post(`${url}/predict`, { features: GUIDE_FEATURES }), // no key: 401
    () => post(`${url}/predict/batch`, { samples: Array.from({ length: 500 }, random) }, greedy), // soon 429
    () => fetch(`${url}/models`, { headers: { "x-api-key": key } }).then((r) => r.arrayBuffer().then(() => r.status)),
  ];
  await Promise.all(
    Array.from({ length: 3 }, async (_, worker) => {
      for (let i = worker; Date.now() < until; i++) count(await mix[i % mix.length]!());
    }),
  );
  return statuses;
}

describe("every dashboard panel, recording rule and alert returns data from a real Prometheus", () => {
  beforeAll(async () => {
    // The operator with one model, rolled out once (blue-green, promoted by hand) so the
    // rollout metrics exist.
    const a = admin();
    const ns = await operatorNamespace(a, `monitoring-${Date.now().toString(36)}`);
    operator = await startOperator(await serviceAccountKubeconfig(a, ns), ns);
    const m = models(a, ns);
    const digest = (c: string) => `sha256:${c.repeat(64)}`;
    await m.create("spx", { bundle: { builtin: "spx-return-1d", digest: digest("a"), version: "1.0.0" }, replicas: 1, rollout: { autoPromote: false, scaleDownDelaySeconds: 1 } });
    await waitFor("spx Ready", async () => (await m.get("spx")).status?.phase === "Ready", 60_000);
    await m.patch("spx", { spec: { bundle: { builtin: "spx-vol-5d", digest: digest("b"), version: "b" } } });
    await waitFor("AwaitingPromotion", async () => (await m.get("spx")).status?.rollout?.phase === "AwaitingPromotion", 60_000);
    await m.patch("spx", { metadata: { annotations: { "wavelet.dev/promote": "true" } } });

    redis = await startRedis();
    const modelDir = copyBundle(RETURN_BUNDLE);
    const served = `sha256:${createHash("sha256").update(readFileSync(join(modelDir, "manifest.json"))).digest("hex")}`;
    const keys: [string, string] = ["live-check-key-0001", "live-check-key-0002"];
    server = await startServer({
      REDIS_URL: redis.url,
      MODEL_DIR: modelDir,
      EXPECTED_BUNDLE_DIGEST: served,
      MODELS: "xgboost,transformer,ensemble",
      API_KEY: keys.join(","),
      METRICS_API_KEY: METRICS_KEY,
      MAX_BATCH_SAMPLES: "500",
      MAX_STREAM_LENGTH: "1000",
      RATE_LIMIT_MAX: "5000",
    });
    prometheus = await startPrometheus(server.port, operator.port);

    // Load, with Redis stalled for a while in the middle (timeouts, fallbacks, the breaker).
    const until = Date.now() + 20_000;
    const traffic = load(server.url, until, keys);
    await new Promise((r) => setTimeout(r, 8_000));
    redis.pause();
    await new Promise((r) => setTimeout(r, 3_000));
    redis.resume();
    const statuses = await traffic;
    for (const status of [200, 401, 400, 429, 503]) expect(statuses.get(status), `status ${status} in ${JSON.stringify([...statuses])}`).toBeGreaterThan(0);

    // A bundle that is not EXPECTED_BUNDLE_DIGEST: refused, the old one keeps serving.
    rmSync(modelDir, { recursive: true });
    cpSync(VOL_BUNDLE, modelDir, { recursive: true });
    expect((await fetch(`${server.url}/admin/reload`, { method: "POST", headers: { "content-type": "application/json" } })).status).toBe(422);
    await waitFor("rollout promoted", async () => (await m.get("spx")).status?.rollout === undefined && (await m.get("spx")).status?.phase === "Ready", 60_000);

    // Enough scrapes after all of that for rates over a minute, and the rules evaluated on them.
    const settled = Date.now() / 1000 + 12;
    await waitFor("scrapes after the load", async () => Number((await query("max(timestamp(job:http_requests_errors:ratio_rate5m))"))[0]?.value[1]) > settled, 60_000);
  }, 300_000);

  afterAll(async () => {
    prometheus?.child.kill("SIGKILL");
    if (prometheus) rmSync(prometheus.dir, { recursive: true, force: true });
    server?.child.kill("SIGKILL");
    await redis?.stop();
    await operator?.stop();
  });

  it("scrapes the server and the operator", async () => {
    const up = await query("up");
    expect(Object.fromEntries(up.map((s) => [s.metric.job, s.value[1]]))).toMatchObject({ "financial-api": "1", "wavelet-operator": "1", prometheus: "1" });
  });

  it("evaluates every rule without error", async () => {
    const res = (await (await fetch(`${prometheus!.url}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
    const loaded = res.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name).sort()).toEqual(rules.map((r) => r.record ?? r.alert).sort());
    expect(loaded.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
  });

  it("has the dashboards' queries to check", () => {
    expect(panelQueries.length).toBeGreaterThan(20);
  });

  it.each([...panelQueries, ...records, ...alerts])("%s", async (_name, q) => {
    expect((await query(q)).length, q).toBeGreaterThan(0);
  });

  it("flags the refused bundle: WaveletBundleDigestMismatch is active", async () => {
    const res = (await (await fetch(`${prometheus!.url}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
    const states = res.data.alerts.filter((a) => a.labels.alertname === "WaveletBundleDigestMismatch").map((a) => a.state);
    expect(states).toHaveLength(1);
    expect(["pending", "firing"]).toContain(states[0]);
  });
});
