import { z } from "zod";
import { GATEWAY_API_GROUP } from "./gatewayapi.js";

/**
 * The WaveletModel resource. These zod schemas are the single source of the CRD's OpenAPI
 * schema (api/crd.ts generates crds/waveletmodel.yaml from them, CEL rules included) and
 * of the operator's types. The API server enforces the rules; the operator parses objects
 * from its caches with the same schemas and reports anything it cannot serve.
 */

export const GROUP = "wavelet.dev";
export const VERSION = "v1alpha1";
export const KIND = "WaveletModel";
export const PLURAL = "waveletmodels";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A model's name in a bundle: the guide's four, or an imported bundle's own (the server's MODELS rule). */
const modelName = z.string().max(32).regex(/^[a-z][a-z0-9_]{0,31}$/);
export const COLORS = ["blue", "green"] as const;
export const PHASES = ["Pending", "Ready", "Progressing", "Degraded"] as const;
export type Color = (typeof COLORS)[number];

const cel = (rule: string, message: string) => ({ rule, message });

/** The preview Service is the model's name plus this (reconcile/names.ts). */
export const PREVIEW_SUFFIX = "-preview";

/**
 * Names the children can be made from without colliding: a Service name (DNS-1035 label, at
 * most 63 characters) with room for the preview suffix, and not itself ending in it, or
 * `foo-preview`'s active Service would be `foo`'s preview. The CRD enforces this.
 */
export const MAX_MODEL_NAME = 63 - PREVIEW_SUFFIX.length;
export const MODEL_NAME_RULES = [
  cel(
    `self.metadata.name.size() <= ${MAX_MODEL_NAME} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')`,
    `metadata.name must be a DNS-1035 label (a-z, 0-9, '-'; starting with a letter) of at most ${MAX_MODEL_NAME} characters: it names the model's Services`,
  ),
  cel(`!self.metadata.name.endsWith('${PREVIEW_SUFFIX}')`, `metadata.name must not end in ${PREVIEW_SUFFIX}: that is another model's preview Service`),
];

const quantity = z.union([z.number().int(), z.string()]).meta({ "x-kubernetes-int-or-string": true });

export const bundleSpec = z
  .object({
    image: z
      .string()
      .optional()
      .meta({
        description: "an image holding the bundle directory at `path`, pinned by digest (name@sha256:…)",
        "x-kubernetes-validations": [
          cel("self.matches('^[^@\\\\s]+@sha256:[0-9a-f]{64}$')", "bundle.image must be pinned by digest: name@sha256:<64 hex digits>"),
        ],
      }),
    path: z.string().default("/bundle").meta({ description: "the bundle directory inside `image`" }),
    builtin: z
      .string()
      .optional()
      .meta({
        description: "the name of a bundle built into the server image (models/bundles/<name>)",
        "x-kubernetes-validations": [cel("self.matches('^[a-z0-9][a-z0-9.-]*$')", "bundle.builtin must be a bundle name like spx-return-1d")],
      }),
    digest: z.string().meta({
      description: "the sha256 of the bundle's manifest.json (sha256:…); pods serving any other bundle never become ready",
      "x-kubernetes-validations": [cel("self.matches('^sha256:[0-9a-f]{64}$')", "bundle.digest must be sha256:<64 hex digits>")],
    }),
    version: z.string().optional().meta({ description: "the bundle version, shown by kubectl get wm" }),
  })
  .meta({
    description: "which model bundle to serve",
    "x-kubernetes-validations": [cel("has(self.image) != has(self.builtin)", "bundle needs exactly one of image or builtin")],
  });

/**
 * The server settings the operator derives from the spec. server.env may not set them
 * (the API server says so): one value per name, and the spec field to use instead.
 */
export const OPERATOR_ENV = [
  "MODEL_DIR",
  "EXPECTED_BUNDLE_DIGEST",
  "MODEL_LOADING",
  "QUANTIZED",
  "PORT",
  "METRICS_PORT",
  "MODELS",
  "DEFAULT_MODEL",
  "API_KEY",
  "ADMIN_API_KEY",
  "METRICS_API_KEY",
  "TLS_CERT_FILE",
  "TLS_KEY_FILE",
] as const;

/** Without requests a CPU HPA cannot compute utilization, and the scheduler packs blindly. */
export const DEFAULT_RESOURCES = { requests: { cpu: "250m", memory: "256Mi" } };

export const serverSpec = z
  .object({
    image: z.string().optional().meta({ description: "the inference server image (default: the operator's --server-image)" }),
    imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional(),
    resources: z
      .object({
        requests: z.record(z.string(), quantity).optional(),
        limits: z.record(z.string(), quantity).optional(),
      })
      .default(DEFAULT_RESOURCES)
      .meta({ description: "the server container's resources (default: requests cpu 250m, memory 256Mi)" }),
    env: z
      .array(
        z.object({
          name: z.string().max(253),
          value: z.string().optional(),
          valueFrom: z.record(z.string(), z.unknown()).optional().meta({ "x-kubernetes-preserve-unknown-fields": true }),
        }),
      )
      .max(100)
      .optional()
      .meta({
        description: "extra environment variables of the server (its settings, see the README)",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "x-kubernetes-validations": [
          cel(
            `self.all(e, !(e.name in [${OPERATOR_ENV.map((n) => `'${n}'`).join(", ")}]))`,
            `server.env must not set ${OPERATOR_ENV.join(", ")}: the operator sets them from bundle, models, defaultModel and server.loading, server.quantized, server.apiKeySecretRef, server.adminApiKeySecretRef, server.metricsApiKeySecretRef, tls.secretName (METRICS_PORT: the pods serve /metrics on 9090, never through the Services)`,
          ),
        ],
      }),
    apiKeySecretRef: z
      .object({ name: z.string(), key: z.string().default("api-key") })
      .optional()
      .meta({ description: "a Secret key holding the API key(s) the server requires (API_KEY); a change of its value rolls out blue-green" }),
    adminApiKeySecretRef: z
      .object({ name: z.string(), key: z.string().default("admin-api-key") })
      .optional()
      .meta({ description: "a Secret key holding the key(s) for /admin routes (ADMIN_API_KEY; without it /admin answers only loopback clients inside the pod, and SIGHUP still reloads)" }),
    metricsApiKeySecretRef: z
      .object({ name: z.string(), key: z.string().default("metrics-api-key") })
      .optional()
      .meta({
        description:
          "a Secret key holding the key(s) that guard the pods' /metrics (METRICS_API_KEY); the operator reads it to scrape them (rollout analysis, autoscaling on request rate)",
      }),
    loading: z.enum(["eager", "lazy"]).default("eager"),
    quantized: z.boolean().default(false),
  })
  .default({ loading: "eager", quantized: false, resources: DEFAULT_RESOURCES });

const k8sObjects = (description: string) =>
  z
    .array(z.record(z.string(), z.unknown()).meta({ "x-kubernetes-preserve-unknown-fields": true }))
    .optional()
    .meta({ description });

/** Where and as whom the server pods run: passed to the pod spec as given. */
export const podSpec = z
  .object({
    serviceAccountName: z.string().optional().meta({ description: "the pods' ServiceAccount (its token is not mounted: the server needs no API access)" }),
    imagePullSecrets: z.array(z.object({ name: z.string() })).optional(),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    tolerations: k8sObjects("core/v1 Tolerations"),
    affinity: z.record(z.string(), z.unknown()).optional().meta({ description: "a core/v1 Affinity", "x-kubernetes-preserve-unknown-fields": true }),
    topologySpreadConstraints: k8sObjects("core/v1 TopologySpreadConstraints; the colour's pod labels are a good labelSelector"),
    priorityClassName: z.string().optional(),
  })
  .optional();

/** How fast the HPA may scale in one direction: autoscaling/v2 HPAScalingRules. */
const scalingRules = (direction: "up" | "down", defaults: string) =>
  z
    .object({
      stabilizationWindowSeconds: z
        .number()
        .int()
        .min(0)
        .max(3600)
        .optional()
        .meta({
          description: `seconds of past recommendations the HPA considers before scaling ${direction}: it scales ${direction} only as far as the ${direction === "up" ? "lowest" : "highest"} of them allows (default ${direction === "up" ? "0" : "300"})`,
        }),
      selectPolicy: z
        .enum(["Max", "Min", "Disabled"])
        .optional()
        .meta({ description: `which policy applies when several do: Max (the one allowing the largest change, the default), Min (the smallest), Disabled (never scale ${direction})` }),
      policies: z
        .array(
          z.object({
            type: z.enum(["Pods", "Percent"]).meta({ description: "Pods: a number of pods; Percent: a percentage of the current replicas" }),
            value: z.number().int().min(1).max(100000).meta({ description: "how many pods, or what percentage, may change within periodSeconds" }),
            periodSeconds: z.number().int().min(1).max(1800).meta({ description: "the window the value applies to" }),
          }),
        )
        .min(1)
        .max(10)
        .optional()
        .meta({ description: `how many replicas may be ${direction === "up" ? "added" : "removed"} per period (default: ${defaults})` }),
    })
    .optional()
    .meta({ description: `scaling ${direction}: autoscaling/v2 HPAScalingRules (fields left out take Kubernetes' defaults)` });

export const autoscalingSpec = z
  .object({
    minReplicas: z.number().int().min(1).max(1000),
    maxReplicas: z.number().int().min(1).max(1000),
    targetCPUUtilizationPercentage: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .meta({ description: "the average CPU use of the pods, as a percentage of their CPU request, the HPA keeps them at" }),
    targetMemoryUtilizationPercentage: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .meta({ description: "the average memory use of the pods, as a percentage of their memory request, the HPA keeps them at" }),
    targetRequestsPerSecond: z
      .number()
      .min(0.001)
      .max(1_000_000)
      .optional()
      .meta({
        description:
          "prediction requests per second per pod (POST /predict, /predict/batch, /predict/stream) the HPA keeps the average at (may be fractional, e.g. 2.5; thousandths at most); served by the operator's custom metrics API (chart metricsApi.enabled) as the pods metric requests_per_second",
      }),
    targetQueuedRows: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .optional()
      .meta({
        description:
          "rows waiting in a pod's run queue the HPA keeps the average at; served by the operator's custom metrics API (chart metricsApi.enabled) as the pods metric queued_rows",
      }),
    behavior: z
      .object({
        scaleUp: scalingRules("up", "the larger of 4 pods or 100 % per 15 s"),
        scaleDown: scalingRules("down", "100 % per 15 s"),
      })
      .optional()
      .meta({
        description:
          "the HPA's spec.behavior, passed as given; unset, Kubernetes' defaults apply: scale up at once (no stabilization window; at most 4 pods or 100 % per 15 s, whichever is more), scale down after a 300 s stabilization window (at most 100 % per 15 s)",
      }),
  })
  .meta({
    description:
      "a HorizontalPodAutoscaler on the active colour's ReplicaSet; with several targets it scales to the largest replica count any of them asks for",
    "x-kubernetes-validations": [
      cel("self.minReplicas <= self.maxReplicas", "autoscaling.minReplicas must not exceed maxReplicas"),
      cel(
        "has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage) || has(self.targetRequestsPerSecond) || has(self.targetQueuedRows)",
        "autoscaling needs a CPU or memory target, targetRequestsPerSecond or targetQueuedRows",
      ),
    ],
  });

export const analysisSpec = z
  .object({
    enabled: z.boolean().default(false),
    requests: z.number().int().min(1).max(10000).default(20).meta({ description: "golden requests sent to both colours" }),
    maxErrorRate: z.number().min(0).max(1).default(0),
    maxP99LatencyMs: z.number().min(1).max(60000).default(250),
    failureLimit: z.number().int().min(0).max(10).default(1).meta({ description: "failed analysis runs tolerated before the rollout fails" }),
  })
  .default({ enabled: false, requests: 20, maxErrorRate: 0, maxP99LatencyMs: 250, failureLimit: 1 });

export const rolloutSpec = z
  .object({
    autoPromote: z.boolean().default(true),
    scaleDownDelaySeconds: z.number().int().min(0).max(86400).default(30),
    progressDeadlineSeconds: z.number().int().min(10).max(86400).default(600),
    analysis: analysisSpec,
  })
  .default({ autoPromote: true, scaleDownDelaySeconds: 30, progressDeadlineSeconds: 600, analysis: analysisSpec.parse(undefined) });

export const tlsSpec = z
  .object({
    secretName: z
      .string()
      .min(1)
      .max(253)
      .meta({
        description:
          "a kubernetes.io/tls Secret (tls.crt, tls.key, optionally ca.crt) in the model's namespace: the pods serve HTTPS with it, mounted as a volume, so a renewed certificate reaches them without a rollout; the operator verifies them with its ca.crt, else with tls.crt itself",
      }),
  })
  .meta({ description: "HTTPS on the API port; /metrics (port 9090) stays plain HTTP" });

/**
 * A hostname as the Gateway API defines one (and an Ingress host): a DNS name, lower case,
 * optionally a wildcard `*.` prefix.
 */
const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
const hostnames = (description: string) => z.array(hostname).min(1).max(16).meta({ description });
/** CEL: no name of list `preview` is one of list `main` (the preview must never take the model's traffic). */
const disjoint = (main: string, preview: string, what: string) =>
  cel(`!has(self.${preview}) || !self.${preview}.exists(h, h in self.${main})`, `${what}.${preview} must not repeat any of ${what}.${main}: those reach the active colour`);

export const routeSpec = z
  .object({
    parentRefs: z
      .array(
        z.object({
          name: z.string().min(1).max(253),
          namespace: z.string().min(1).max(63).optional().meta({ description: "the Gateway's namespace (default: the model's)" }),
          sectionName: z.string().min(1).max(253).optional().meta({ description: "a listener of the Gateway" }),
          group: z.string().max(253).default(GATEWAY_API_GROUP),
          kind: z.string().min(1).max(63).default("Gateway"),
          port: z.number().int().min(1).max(65535).optional(),
        }),
      )
      .min(1)
      .max(32)
      .meta({ description: "the Gateways (or their listeners) the routes attach to, as HTTPRoute parentRefs" }),
    hostnames: hostnames("the hostnames routed to the active Service"),
    previewHostnames: hostnames("hostnames routed to the preview Service (a second HTTPRoute, named like it)").optional(),
  })
  .meta({
    description:
      "a Gateway API HTTPRoute (gateway.networking.k8s.io/v1, named like the active Service) to the active Service; the Services, not the colours, are its backends, so a switch rewrites no route",
    "x-kubernetes-validations": [disjoint("hostnames", "previewHostnames", "route")],
  });

export const ingressSpec = z
  .object({
    className: z.string().min(1).max(253).meta({ description: "the Ingress's ingressClassName" }),
    hosts: hostnames("the hosts routed to the active Service"),
    previewHosts: hostnames("hosts routed to the preview Service").optional(),
  })
  .meta({
    description: "a networking.k8s.io/v1 Ingress (named like the active Service); with tls, its tls block names tls.secretName for every host",
    "x-kubernetes-validations": [disjoint("hosts", "previewHosts", "ingress")],
  });

export const serviceSpec = z
  .object({
    type: z.enum(["ClusterIP", "NodePort", "LoadBalancer"]).default("ClusterIP"),
    port: z.number().int().min(1).max(65535).default(80),
  })
  .default({ type: "ClusterIP", port: 80 });

export const waveletModelSpec = z
  .object({
    bundle: bundleSpec,
    models: z
      .array(modelName)
      .min(1)
      .max(16)
      .optional()
      .meta({ description: "models to load (default: every model the bundle holds)", "x-kubernetes-list-type": "set" }),
    defaultModel: modelName.optional().meta({ description: "the model that answers when a request names none (default: the bundle's)" }),
    server: serverSpec,
    pod: podSpec,
    replicas: z.number().int().min(0).max(1000).optional().meta({ description: "fixed replica count (or autoscaling)" }),
    autoscaling: autoscalingSpec.optional(),
    service: serviceSpec,
    tls: tlsSpec.optional(),
    route: routeSpec.optional(),
    ingress: ingressSpec.optional(),
    rollout: rolloutSpec,
  })
  .meta({
    "x-kubernetes-validations": [
      cel("!(has(self.replicas) && has(self.autoscaling))", "set replicas or autoscaling, not both"),
      cel(
        "!has(self.defaultModel) || !has(self.models) || self.defaultModel in self.models",
        "defaultModel must be one of models",
      ),
      cel("!has(self.models) || self.models.all(m, !m.endsWith('_int8'))", "models names no *_int8 variant: server.quantized serves those"),
    ],
  });

export type WaveletModelSpec = z.output<typeof waveletModelSpec>;

export const condition = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});
export type Condition = z.infer<typeof condition>;

const bundleRef = z.object({ digest: z.string(), version: z.string().optional(), source: z.string() });

export const rolloutStatus = z.object({
  phase: z.enum(["Deploying", "Analyzing", "AwaitingPromotion", "Promoting", "ScalingDown", "Failed"]),
  color: z.enum(COLORS).meta({ description: "the colour being rolled out (Deploying…) or scaled down (ScalingDown)" }),
  templateHash: z.string(),
  startedAt: z.string().meta({ description: "when this rollout began (RFC 3339)" }),
  since: z.string().meta({ description: "when this phase began (RFC 3339)" }),
  message: z.string().optional(),
  previousSpec: z
    .record(z.string(), z.unknown())
    .optional()
    .meta({ description: "while scaling down: the spec the old colour serves (abort or rollback go back to it)", "x-kubernetes-preserve-unknown-fields": true }),
  analysis: z
    .object({ runs: z.number().int(), failures: z.number().int(), message: z.string().optional() })
    .optional()
    .meta({ description: "analysis runs finished so far, how many failed, and the last one's verdict" }),
});

export const waveletModelStatus = z.object({
  observedGeneration: z.number().int().optional(),
  phase: z.enum(PHASES).optional(),
  conditions: z.array(condition).optional().meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] }),
  activeColor: z.enum(COLORS).optional(),
  previewColor: z.enum(COLORS).optional(),
  activeTemplateHash: z.string().optional(),
  activeBundle: bundleRef.optional(),
  previewBundle: bundleRef.optional(),
  replicas: z.number().int().optional(),
  readyReplicas: z.number().int().optional(),
  endpoint: z.string().optional(),
  previewEndpoint: z.string().optional(),
  nodePort: z.number().int().optional().meta({ description: "service.type NodePort: the port on every node" }),
  externalEndpoint: z.string().optional().meta({ description: "service.type LoadBalancer: the load balancer's address, once it has one" }),
  rollout: rolloutStatus.optional(),
  failedTemplateHash: z.string().optional().meta({ description: "a template that failed; not retried until the spec changes" }),
  lastGoodSpec: z
    .record(z.string(), z.unknown())
    .optional()
    .meta({ description: "the spec the active colour serves; annotate wavelet.dev/rollback=true to return to it", "x-kubernetes-preserve-unknown-fields": true }),
});

export type WaveletModelStatus = z.infer<typeof waveletModelStatus>;
export type RolloutStatus = z.infer<typeof rolloutStatus>;

/** A WaveletModel as the operator reads it from its cache (spec defaults applied). */
export const waveletModel = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string(),
    uid: z.string(),
    generation: z.number().int().optional(),
    resourceVersion: z.string().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    deletionTimestamp: z.string().optional(),
  }),
  spec: waveletModelSpec,
  status: waveletModelStatus.optional(),
});

export type WaveletModel = z.output<typeof waveletModel>;

/** Annotations a person sets with kubectl annotate; the operator removes them once handled. */
export const ANNOTATIONS = {
  promote: "wavelet.dev/promote",
  abort: "wavelet.dev/abort",
  rollback: "wavelet.dev/rollback",
  retry: "wavelet.dev/retry",
} as const;

/**
 * The Secrets a spec's pods read as environment variables (name and key): their versions go
 * into the pod template's hash, so a rotated key rolls out blue-green (env is read at container
 * start only). Not the TLS Secret: a volume, which kubelet updates in running pods.
 */
export function secretRefs(spec: Pick<WaveletModelSpec, "server">): { name: string; key: string }[] {
  return [spec.server.apiKeySecretRef, spec.server.adminApiKeySecretRef, spec.server.metricsApiKeySecretRef].filter((r) => r !== undefined);
}

/** Every Secret a spec names: a change of one queues the model (a new key rolls out, a TLS Secret is checked again). */
export function namedSecrets(spec: Pick<WaveletModelSpec, "server" | "tls">): string[] {
  return [...secretRefs(spec).map((r) => r.name), ...(spec.tls ? [spec.tls.secretName] : [])];
}
