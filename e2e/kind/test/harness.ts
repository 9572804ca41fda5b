import { execFileSync } from "node:child_process";
import { Agent, request } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { TLSSocket } from "node:tls";
import { expect, inject, onTestFinished } from "vitest";
import { type Clients, type Model, SwitchWatch, activeColor, eventReasons, kubeClients, models, readyPods } from "../../../test-support/kube.js";
import { waitFor } from "../../../test-support/wait.js";

/** Clients, WaveletModels and real traffic for the kind scenarios. */

export { activeColor, eventReasons, type Model, models, readyPods, SwitchWatch, waitFor };

export const kube = () => kubeClients(inject("kubeconfig"));
export type Kube = Clients;

export function kubectl(args: string[], input?: string): string {
  return execFileSync(inject("kubectl"), args, {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    env: { ...process.env, KUBECONFIG: inject("kubeconfig") },
  });
}

/** A command inside the kind node (curl, crictl, ...). */
export function onNode(args: string[]): string {
  const { DOCKER, DOCKER_HOST } = inject("docker");
  return execFileSync(DOCKER, ["exec", inject("node").container, ...args], { encoding: "utf8", env: { ...process.env, DOCKER_HOST } });
}

/** Registers cleanup for the test that runs: a concurrent test passes its context's own (vitest's rule). */
export type OnFinished = (fn: () => Promise<void>) => void;

/**
 * A fresh namespace for one scenario, deleted (without waiting) when the test ends, passed
 * or failed: pods left running would slow every later scenario on this 2-core machine.
 */
export async function scenarioNamespace(k: Kube, name: string, onFinished: OnFinished = onTestFinished): Promise<string> {
  await k.core.deleteNamespace({ name }).catch(() => undefined);
  await waitFor(`namespace ${name} gone`, async () => !(await k.core.readNamespace({ name }).catch(() => undefined)), 120_000);
  await k.core.createNamespace({ body: { metadata: { name } } });
  onFinished(async () => void (await k.core.deleteNamespace({ name }).catch(() => undefined)));
  return name;
}

export const condition = (wm: Model, type: string) => wm.status?.conditions?.find((c) => c.type === type);

/** Ready=True at the model's current generation: the rollout is done. Answers the model. */
export async function waitReady(k: Kube, namespace: string, name: string, timeoutMs = 300_000): Promise<Model> {
  return waitFor(
    `${namespace}/${name} Ready`,
    async () => {
      const wm = await models(k, namespace).get(name);
      const ready = condition(wm, "Ready");
      return ready?.status === "True" && ready.observedGeneration === wm.metadata.generation && wm;
    },
    timeoutMs,
  );
}

/** The colour the active Service selects right now. */

/**
 * The URL of a NodePort Service from this machine (the kind node's address), once it routes.
 * Ready says the pods serve; kube-proxy programs their endpoints a moment later, and until
 * then it rejects connections (ECONNREFUSED), as for any Service. Load starts after that.
 */
export async function nodePortUrl(k: Kube, namespace: string, name: string, tls?: { ca: string }): Promise<string> {
  const svc = await k.core.readNamespacedService({ name, namespace });
  const port = svc.spec?.ports?.[0]?.nodePort;
  if (!port) throw new Error(`${namespace}/${name} is not a NodePort Service`);
  const url = `${tls ? "https" : "http"}://${inject("node").ip}:${port}`;
  let answered = 0;
  await waitFor(`${namespace}/${name} to route`, async () => {
    const ok = tls
      ? await peerCertificate(`${url}/livez`, tls.ca).then((c) => c.status === 200, () => false)
      : await fetch(`${url}/livez`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    answered = ok ? answered + 1 : 0;
    return answered >= 10;
  }, 60_000);
  return url;
}

/** A GET on a fresh HTTPS connection verified against `ca`: its status and the certificate the server showed. */
export function peerCertificate(url: string, ca: string): Promise<{ status: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, agent: false, timeout: 2000 }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, serial }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

// ---- load ---------------------------------------------------------------------------------

/**
 * A /predict request every bundle that computes its features answers while one replaces another:
 * their feature vectors differ (10 values; 40), so it sends 300 days, more history than either
 * needs, as daily bars {open, high, low, close}: a bundle of closes reads their closes, one whose
 * features read ranges (GET /models features.inputs) the fields it needs, so a rollout between
 * the two kinds is loaded the same way throughout.
 */
const CLOSES = Array.from({ length: 300 }, (_, i) => Number((100 * Math.exp(0.0003 * i + 0.02 * Math.sin(i / 5))).toFixed(2)));
const BARS = CLOSES.map((close, i) => {
  const open = Number(((i === 0 ? close : CLOSES[i - 1]!) * (1 + 0.001 * Math.sin(i))).toFixed(2));
  return { open, high: Number((Math.max(open, close) * 1.004).toFixed(2)), low: Number((Math.min(open, close) * 0.996).toFixed(2)), close };
});
export const PREDICT_BODY = JSON.stringify({ bars: BARS, model_type: "ensemble" });

export interface Sample {
  /** When the request was sent (ms since epoch) and how long it took. */
  at: number;
  ms: number;
  status?: number;
  digest?: string;
  error?: string;
}

export interface LoadSummary {
  sent: number;
  failed: number;
  failures: Sample[];
  byDigest: Record<string, { count: number; first: number; last: number }>;
  p50: number;
  p99: number;
}

/**
 * Open-loop load: `rate` requests per second whatever the answers take (a slow or failing
 * server does not slow the client down and hide it), over keep-alive connections as real
 * clients use them. Every answer is recorded with the bundle digest it names; a failure is
 * any non-2xx answer or connection error.
 */
export class Load {
  readonly samples: Sample[] = [];
  private readonly agent: Agent;
  private readonly send: typeof request;
  private timer: NodeJS.Timeout | undefined;
  private inflight = new Set<Promise<void>>();
  private sent = 0;
  private started = 0;

  /** An https:// URL is verified against `tls.ca`. */
  constructor(
    private readonly url: string,
    private readonly rate: number,
    private readonly body = PREDICT_BODY,
    private readonly path = "/predict",
    tls?: { ca: string },
  ) {
    this.agent = tls ? new HttpsAgent({ keepAlive: true, maxSockets: 64, ca: tls.ca }) : new Agent({ keepAlive: true, maxSockets: 64 });
    this.send = (tls ? httpsRequest : request) as typeof request;
  }

  start(): this {
    this.started = Date.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((Date.now() - this.started) * this.rate) / 1000);
      while (this.sent < due) this.fire();
    }, 5);
    return this;
  }

  private fire(): void {
    this.sent++;
    const at = Date.now();
    const done = new Promise<void>((resolveDone) => {
      const finish = (s: Omit<Sample, "at" | "ms">) => {
        this.samples.push({ at, ms: Date.now() - at, ...s });
        resolveDone();
      };
      const req = this.send(
        `${this.url}${this.path}`,
        { method: "POST", agent: this.agent, headers: { "content-type": "application/json" }, timeout: 10_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            let digest: string | undefined;
            try {
              digest = JSON.parse(Buffer.concat(chunks).toString()).bundle?.digest;
            } catch {
              // not JSON: counted by its status
            }
            finish({ status: res.statusCode, ...(digest ? { digest } : {}) });
          });
          res.on("error", (e) => finish({ error: String(e) }));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout after 10 s")));
      req.on("error", (e: NodeJS.ErrnoException) => finish({ error: e.code ?? e.message }));
      req.end(this.body);
    });
    this.inflight.add(done);
    void done.then(() => this.inflight.delete(done));
  }

  /** Requests so far, for progress checks while the load runs. */
  get count(): number {
    return this.samples.length;
  }

  async stop(): Promise<LoadSummary> {
    clearInterval(this.timer);
    await Promise.all(this.inflight);
    this.agent.destroy();
    return summarize(this.samples);
  }
}

export function summarize(samples: Sample[]): LoadSummary {
  const failures = samples.filter((s) => s.error !== undefined || !s.status || s.status < 200 || s.status > 299);
  const byDigest: LoadSummary["byDigest"] = {};
  for (const s of samples) {
    if (!s.digest) continue;
    const d = (byDigest[s.digest] ??= { count: 0, first: s.at, last: s.at });
    d.count++;
    d.first = Math.min(d.first, s.at);
    d.last = Math.max(d.last, s.at);
  }
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] ?? 0;
  return { sent: samples.length, failed: failures.length, failures: failures.slice(0, 10), byDigest, p50: q(0.5), p99: q(0.99) };
}

export const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** No request failed; if some did, say when relative to the scenario's moments (ms since epoch). */
export function expectNoFailures(summary: LoadSummary, moments: Record<string, number>): void {
  const when = (at: number) => Object.entries(moments).map(([name, t]) => `${((at - t) / 1000).toFixed(2)} s after ${name}`).join(", ");
  expect(summary.failures.map((f) => `${f.error ?? `HTTP ${f.status}`} ${when(f.at)}`)).toEqual([]);
  expect(summary.failed).toBe(0);
}

// ---- WaveletModels of the scenarios ---------------------------------------------------------

/** A WaveletModel serving the built-in return bundle through a NodePort Service. */
export function builtinSpec({ server, ...overrides }: Record<string, unknown> = {}): Record<string, unknown> {
  const b = inject("bundles")["spx-return-1d"];
  return {
    bundle: { builtin: "spx-return-1d", digest: b.digest, version: b.version },
    replicas: 2,
    // All load comes from one client (and through the NodePort from one address): the
    // per-client rate limit would answer 429 to a load test, as it should to a real client.
    // Two colours of two pods, and the scenario before still terminating, on a 2-core node
    // that runs the control plane too: the operator's default 250m each would not fit.
    server: { env: [{ name: "RATE_LIMIT_MAX", value: "0" }], resources: { requests: { cpu: "50m", memory: "128Mi" } }, ...(server as object) },
    service: { type: "NodePort", port: 80 },
    rollout: { scaleDownDelaySeconds: 10, progressDeadlineSeconds: 300 },
    ...overrides,
  };
}

/** Where each load scenario starts: its namespace, one model created, Ready, and its Service routing. */
export async function servedModel(namespaceName: string, name: string, spec: Record<string, unknown>, onFinished?: OnFinished) {
  const k = kube();
  const namespace = await scenarioNamespace(k, namespaceName, onFinished);
  const wm = models(k, namespace);
  await wm.create(name, spec);
  const ready = await waitReady(k, namespace, name);
  const oldColor = ready.status!.activeColor!;
  const newColor = oldColor === "blue" ? "green" : "blue";
  return { k, namespace, wm, ready, oldColor, newColor, url: await nodePortUrl(k, namespace, name) };
}

/** The merge patch that moves a model to the volatility bundle's image (pinned by digest). */
export function toBundleImage(digest = inject("bundles")["spx-vol-5d"].digest): Record<string, unknown> {
  const b = inject("bundles")["spx-vol-5d"];
  return { spec: { bundle: { builtin: null, image: b.image, path: "/bundle", digest, version: b.version } } };
}


export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pods of one colour of a model that still exist (terminating ones included). */
export async function colorPods(k: Kube, namespace: string, name: string, color: string) {
  const pods = await k.core.listNamespacedPod({ namespace, labelSelector: `wavelet.dev/model=${name},wavelet.dev/color=${color}` });
  return pods.items;
}

/** What the colours asked for and had while a rollout waited to switch. */
export interface SwitchSample {
  active: number;
  idle: number;
  /** Ready pods of the idle colour, as the operator counts them (the ReplicaSet's status comes later). */
  idleAvailable: number;
}

/** Until the active Service switches (`watch` sees a second colour), each colour's replicas, sampled. */
export async function samplesUntilSwitch(k: Kube, namespace: string, name: string, colors: { oldColor: string; newColor: string }, watch: SwitchWatch): Promise<SwitchSample[]> {
  const samples: SwitchSample[] = [];
  await waitFor(
    "the switch",
    async () => {
      if (watch.changes.length > 1) return true;
      const [a, i] = await Promise.all(
        [colors.oldColor, colors.newColor].map((c) => k.apps.readNamespacedReplicaSet({ name: `${name}-${c}`, namespace }).catch(() => undefined)),
      );
      samples.push({ active: a?.spec?.replicas ?? 0, idle: i?.spec?.replicas ?? 0, idleAvailable: await readyPods(k, namespace, name, colors.newColor) });
      return false;
    },
    300_000,
  );
  return samples;
}
