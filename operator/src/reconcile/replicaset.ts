import { createHash } from "node:crypto";
import type { V1Container, V1EnvVar, V1PodSpec, V1Pod, V1PodTemplateSpec, V1ReplicaSet } from "@kubernetes/client-node";
import { type Color, OPERATOR_ENV, type WaveletModel, type WaveletModelSpec } from "../api/waveletmodel.js";
import { canonical } from "./canonical.js";
import { LABELS, SECRETS_HASH, TEMPLATE_HASH } from "../api/labels.js";
import { METRICS_PORT } from "../api/metrics.js";
import { commonLabels, ownerReference, replicaSetName } from "./names.js";

/**
 * The ReplicaSet of one colour, a pure function of the spec it serves. The template hash
 * covers everything that changes what a pod serves (bundle, server image and settings),
 * not the replica count, so scaling never starts a rollout.
 *
 * A ReplicaSet, not a Deployment: the blue-green decision already is the rollout strategy
 * (a colour is re-templated only while idle), and a Deployment puts a second
 * controller-manager controller, with its own 20 QPS client and about five writes per
 * rollout, between the operator and the pods (README, "Operator throughput"). A ReplicaSet
 * does not replace pods when its template changes: the operator deletes the idle colour's
 * pods of an older template (stalePods) and the ReplicaSet creates them anew.
 */

export interface PodSettings {
  /** The server image when the spec names none (the operator's --server-image). */
  defaultServerImage: string;
}

/**
 * What the pods get from outside the spec, hashed into the template so a change rolls out
 * blue-green: the API key Secrets' values (env from a Secret is read at container start
 * only, so a rotated key reaches pods only through new ones). Never the values themselves,
 * nor the TLS Secret's version: a mounted Secret reaches running pods by itself.
 */
export interface TemplateInputs {
  secretsHash?: string;
}

export const SERVER_PORT = 8000;
export const PRE_STOP_SECONDS = 5;
const BUNDLE_MOUNT = "/models/bundle";
/** spec.tls: the Secret as a volume, never by subPath, so kubelet brings a renewed certificate to running pods (the server re-reads it). */
export const TLS_MOUNT = "/etc/wavelet/tls";
/** Where the server image keeps its built-in bundles (Dockerfile.server). */
export const BUILTIN_BUNDLES = "/app/models/bundles";

function serverEnv(spec: WaveletModelSpec): V1EnvVar[] {
  const env: V1EnvVar[] = [
    { name: "MODEL_DIR", value: spec.bundle.builtin ? `${BUILTIN_BUNDLES}/${spec.bundle.builtin}` : BUNDLE_MOUNT },
    { name: "EXPECTED_BUNDLE_DIGEST", value: spec.bundle.digest },
    { name: "MODEL_LOADING", value: spec.server.loading },
    { name: "QUANTIZED", value: String(spec.server.quantized) },
    { name: "PORT", value: String(SERVER_PORT) },
    { name: "METRICS_PORT", value: String(METRICS_PORT) },
  ];
  if (spec.tls) env.push({ name: "TLS_CERT_FILE", value: `${TLS_MOUNT}/tls.crt` }, { name: "TLS_KEY_FILE", value: `${TLS_MOUNT}/tls.key` });
  if (spec.models) env.push({ name: "MODELS", value: spec.models.join(",") });
  if (spec.defaultModel) env.push({ name: "DEFAULT_MODEL", value: spec.defaultModel });
  for (const [variable, ref] of [
    ["API_KEY", spec.server.apiKeySecretRef],
    ["ADMIN_API_KEY", spec.server.adminApiKeySecretRef],
    ["METRICS_API_KEY", spec.server.metricsApiKeySecretRef],
  ] as const) {
    if (ref) env.push({ name: variable, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } } });
  }
  // The CRD refuses user env that sets these; an object stored before that rule has them ignored.
  const reserved = new Set<string>(OPERATOR_ENV);
  for (const e of spec.server.env ?? []) if (!reserved.has(e.name)) env.push(e as V1EnvVar);
  return env;
}

/** The pod template without the colour label: identical for both colours of one spec. */
function podTemplate(wm: WaveletModel, spec: WaveletModelSpec, settings: PodSettings, inputs: TemplateInputs): V1PodTemplateSpec {
  // With spec.tls the API port speaks only HTTPS (kubelet's HTTPS probes do not verify the certificate).
  const probe = (path: string) => ({ httpGet: { path, port: "http", ...(spec.tls ? { scheme: "HTTPS" } : {}) } });
  const server: V1Container = {
    name: "server",
    image: spec.server.image ?? settings.defaultServerImage,
    ...(spec.server.imagePullPolicy ? { imagePullPolicy: spec.server.imagePullPolicy } : {}),
    ports: [
      { name: "http", containerPort: SERVER_PORT, protocol: "TCP" },
      { name: "metrics", containerPort: METRICS_PORT, protocol: "TCP" },
    ],
    env: serverEnv(spec),
    // Loading, verifying and warming the models takes seconds to a minute: liveness waits for it.
    startupProbe: { ...probe("/livez"), periodSeconds: 2, failureThreshold: 90, timeoutSeconds: 2 },
    readinessProbe: { ...probe("/health"), periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 2 },
    // A deleted pod leaves the Service's endpoints at once, but kube-proxies apply that a
    // moment later: serve normally meanwhile, then SIGTERM starts the server's drain.
    lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
    livenessProbe: { ...probe("/livez"), periodSeconds: 10, timeoutSeconds: 2 },
    resources: spec.server.resources as V1Container["resources"],
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } },
    volumeMounts: [
      { name: "tmp", mountPath: "/tmp" },
      ...(spec.bundle.image ? [{ name: "bundle", mountPath: BUNDLE_MOUNT, readOnly: true }] : []),
      ...(spec.tls ? [{ name: "tls", mountPath: TLS_MOUNT, readOnly: true }] : []),
    ],
  };
  // A bundle image is copied into a volume the server reads: the image only needs `cp`.
  const initContainers: V1Container[] = spec.bundle.image
    ? [
        {
          name: "bundle",
          image: spec.bundle.image,
          command: ["cp", "-R", `${spec.bundle.path.replace(/\/$/, "")}/.`, BUNDLE_MOUNT],
          volumeMounts: [{ name: "bundle", mountPath: BUNDLE_MOUNT }],
          securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ["ALL"] } },
        },
      ]
    : [];
  const pod = spec.pod ?? {};
  return {
    metadata: {
      labels: commonLabels(wm),
      annotations: {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": String(METRICS_PORT),
        "prometheus.io/path": "/metrics",
        ...(inputs.secretsHash ? { [SECRETS_HASH]: inputs.secretsHash } : {}),
      },
    },
    spec: {
      // The server never calls the Kubernetes API.
      automountServiceAccountToken: false,
      ...(pod.serviceAccountName ? { serviceAccountName: pod.serviceAccountName } : {}),
      ...(pod.imagePullSecrets ? { imagePullSecrets: pod.imagePullSecrets } : {}),
      ...(pod.nodeSelector ? { nodeSelector: pod.nodeSelector } : {}),
      ...(pod.tolerations ? { tolerations: pod.tolerations as unknown as V1PodSpec["tolerations"] } : {}),
      ...(pod.affinity ? { affinity: pod.affinity as V1PodSpec["affinity"] } : {}),
      ...(pod.topologySpreadConstraints ? { topologySpreadConstraints: pod.topologySpreadConstraints as unknown as V1PodSpec["topologySpreadConstraints"] } : {}),
      ...(pod.priorityClassName ? { priorityClassName: pod.priorityClassName } : {}),
      ...(initContainers.length ? { initContainers } : {}),
      containers: [server],
      volumes: [
        { name: "tmp", emptyDir: {} },
        ...(spec.bundle.image ? [{ name: "bundle", emptyDir: {} }] : []),
        // Its name is in the template (another Secret rolls out); its version is not (TemplateInputs).
        ...(spec.tls ? [{ name: "tls", secret: { secretName: spec.tls.secretName } }] : []),
      ],
      // preStop, then the server's drain: SHUTDOWN_DELAY_MS (5 s) of `Connection: close`
      // answers and up to SHUTDOWN_GRACE_MS (20 s) for in-flight requests and streams.
      terminationGracePeriodSeconds: PRE_STOP_SECONDS + 5 + 20 + 5,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
    },
  };
}

export function templateHash(wm: WaveletModel, spec: WaveletModelSpec, settings: PodSettings, inputs: TemplateInputs = {}): string {
  return createHash("sha256").update(canonical(podTemplate(wm, spec, settings, inputs))).digest("hex").slice(0, 16);
}

/** `replicas` undefined leaves the count to whoever else sets it (the HPA). */
export function desiredReplicaSet(
  wm: WaveletModel,
  spec: WaveletModelSpec,
  color: Color,
  replicas: number | undefined,
  settings: PodSettings,
  inputs: TemplateInputs = {},
): V1ReplicaSet {
  const template = podTemplate(wm, spec, settings, inputs);
  const hash = templateHash(wm, spec, settings, inputs);
  const selector = { [LABELS.instance]: wm.metadata.name, [LABELS.model]: wm.metadata.name, [LABELS.color]: color };
  template.metadata!.labels = { ...template.metadata!.labels, [LABELS.color]: color };
  template.metadata!.annotations = { ...template.metadata!.annotations, [TEMPLATE_HASH]: hash };
  return {
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    metadata: {
      name: replicaSetName(wm, color),
      namespace: wm.metadata.namespace,
      labels: { ...commonLabels(wm), [LABELS.color]: color },
      annotations: { [TEMPLATE_HASH]: hash },
      ownerReferences: [ownerReference(wm)],
    },
    spec: {
      ...(replicas === undefined ? {} : { replicas }),
      selector: { matchLabels: selector },
      template,
    },
  };
}

/**
 * The pods of an idle colour that run another template than its ReplicaSet now has: deleted,
 * the ReplicaSet replaces them with pods of the new template. Never those of the colour that
 * serves (the decision never re-templates it; this is the guard).
 */
export function stalePods(replicaSet: V1ReplicaSet, pods: V1Pod[]): V1Pod[] {
  const hash = replicaSet.metadata?.annotations?.[TEMPLATE_HASH];
  return pods.filter((p) => !p.metadata?.deletionTimestamp && p.metadata?.annotations?.[TEMPLATE_HASH] !== hash);
}
