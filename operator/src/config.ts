import { hostname } from "node:os";
import { z } from "zod";

/**
 * The operator's settings, from the environment, parsed once; bad values stop the start.
 * Some defaults depend on where it runs: in a pod (the service account's namespace is
 * known) it elects a leader in its own namespace; outside a cluster (`npm run start -w
 * operator` against a kubeconfig) leader election is off unless asked for, in `default`.
 */
const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(["true", "false", "1", "0"]))
  .transform((v) => v === "true" || v === "1");

const schema = (podNamespace: string | undefined) =>
  z
    .object({
      SERVER_IMAGE: z.string().min(1).default("wavelet-server:0.1.0"),
      // Comma-separated namespaces to watch; unset means the whole cluster.
      WATCH_NAMESPACE: z
        .string()
        .default("")
        .transform((v) => [...new Set(v.split(",").map((n) => n.trim()).filter(Boolean))])
        .pipe(z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "namespace names are DNS-1123 labels"))),
      OPERATOR_NAMESPACE: z.string().default(podNamespace ?? "default"),
      LEADER_ELECTION: bool.default(podNamespace !== undefined),
      LEASE_NAME: z.string().default("wavelet-operator"),
      POD_NAME: z.string().default(`${hostname()}-${process.pid}`),
      LEASE_DURATION_SECONDS: z.coerce.number().int().min(2).default(15),
      RENEW_DEADLINE_SECONDS: z.coerce.number().int().min(1).default(10),
      RETRY_PERIOD_SECONDS: z.coerce.number().int().min(1).default(2),
      // Reconciles at once (each key by one worker at a time).
      WORKERS: z.coerce.number().int().min(1).max(64).default(4),
      // The API requests the operator may send: a sustained rate and a burst (client-go's
      // QPS and burst; watches are not counted). Leader election has its own, unthrottled client.
      // At 100/200 it held 200 models created at once 5 s back (bench/operator.sh, README); a
      // pass that changes nothing sends no write, so the limit binds only on real work.
      KUBE_API_QPS: z.coerce.number().positive().max(10_000).default(200),
      KUBE_API_BURST: z.coerce.number().int().min(1).max(10_000).default(400),
      // Retire the Deployments an operator from before ReplicaSets made (README, "Upgrading").
      // Off once every model has moved: the operator then needs no rights on Deployments.
      MIGRATE_DEPLOYMENTS: bool.default(true),
      RESYNC_SECONDS: z.coerce.number().int().min(10).default(300),
      PORT: z.coerce.number().int().min(1).max(65535).default(8080),
      // The custom metrics API (custom.metrics.k8s.io/v1beta2) an HPA scales models on request
      // rate with (README, "Scaling on request rate"); the chart turns it on and registers it.
      METRICS_API: bool.default(false),
      METRICS_API_PORT: z.coerce.number().int().min(1).max(65535).default(6443),
      // tls.crt and tls.key of the serving certificate, re-read when they change (a renewed Secret).
      METRICS_API_CERT_DIR: z.string().min(1).default("/var/run/wavelet/metrics-api"),
      // How often every replica scrapes the pods of the models that scale on their metrics, and
      // the window requests_per_second is a rate over (at least two scrapes fit in it).
      METRICS_SCRAPE_INTERVAL_SECONDS: z.coerce.number().min(1).max(300).default(5),
      METRICS_WINDOW_SECONDS: z.coerce.number().int().min(2).max(3600).default(30),
      METRICS_SCRAPE_TIMEOUT_SECONDS: z.coerce.number().positive().max(60).default(2),
      METRICS_SCRAPE_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
      LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
    })
    // client-go's rule: a leader gives up (renew deadline) before others may take over
    // (lease duration), and has time to retry within its deadline.
    .refine((c) => c.LEASE_DURATION_SECONDS > c.RENEW_DEADLINE_SECONDS, {
      path: ["LEASE_DURATION_SECONDS"],
      message: "must be greater than RENEW_DEADLINE_SECONDS",
    })
    .refine((c) => c.METRICS_WINDOW_SECONDS >= 2 * c.METRICS_SCRAPE_INTERVAL_SECONDS, {
      path: ["METRICS_WINDOW_SECONDS"],
      message: "must hold at least two scrapes (2 × METRICS_SCRAPE_INTERVAL_SECONDS): a rate needs two samples",
    })
    .refine((c) => c.METRICS_SCRAPE_TIMEOUT_SECONDS < c.METRICS_SCRAPE_INTERVAL_SECONDS, {
      path: ["METRICS_SCRAPE_TIMEOUT_SECONDS"],
      message: "must be shorter than METRICS_SCRAPE_INTERVAL_SECONDS",
    })
    .refine((c) => c.METRICS_API_PORT !== c.PORT, { path: ["METRICS_API_PORT"], message: "must differ from PORT" })
    .refine((c) => c.RENEW_DEADLINE_SECONDS > c.RETRY_PERIOD_SECONDS, {
      path: ["RENEW_DEADLINE_SECONDS"],
      message: "must be greater than RETRY_PERIOD_SECONDS",
    });

export type OperatorConfig = z.infer<ReturnType<typeof schema>>;

/** `podNamespace`: the namespace of the pod this runs in, undefined outside a cluster. */
export function parseConfig(env: Record<string, string | undefined>, podNamespace?: string): OperatorConfig {
  const configSchema = schema(podNamespace);
  const present = Object.fromEntries(Object.keys(configSchema.shape).flatMap((k) => (env[k] ? [[k, env[k]]] : [])));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    throw new Error(`invalid configuration:\n${parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`).join("\n")}`);
  }
  return parsed.data;
}
