import type { KubernetesObject, V1PolicyRule } from "@kubernetes/client-node";
import { GROUP, PLURAL } from "./api/waveletmodel.js";

/**
 * Everything the operator needs to run in a cluster, in one place: its RBAC (as small as
 * the work needs), ServiceAccount, and Deployment with args, probes and security context.
 * The integration tests install the ServiceAccount and RBAC from here, and the Helm chart
 * renders the same objects (`node dist/main.js manifests`).
 */

export const CLUSTER_RULES: V1PolicyRule[] = [
  // update: handled annotations are removed, and a rollback restores the spec, by a conditional replace.
  { apiGroups: [GROUP], resources: [PLURAL], verbs: ["get", "list", "watch", "update"] },
  { apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ["patch"] },
  // Owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on.
  { apiGroups: [GROUP], resources: [`${PLURAL}/finalizers`], verbs: ["update"] },
  { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "create", "patch"] },
  { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch", "create", "patch"] },
  { apiGroups: ["autoscaling"], resources: ["horizontalpodautoscalers"], verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create"] },
];

/** Leader election, in the operator's own namespace only. */
export const LEASE_RULES: V1PolicyRule[] = [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] }];

export interface InstallOptions {
  namespace: string;
  image: string;
  serverImage: string;
  replicas: number;
  watchNamespace?: string;
}

export const OPERATOR_NAME = "wavelet-operator";
/**
 * V8 grows its heap lazily far beyond what the operator keeps alive (about 50 MiB of caches
 * for 200 models, but over 300 MiB resident without these); bounded young and old
 * generations keep it near 140 MiB (bench/operator.sh).
 */
export const OPERATOR_NODE_OPTIONS = "--max-semi-space-size=2 --max-old-space-size=128";

/** ServiceAccount and RBAC; `name` and `rules` are for tests that run several operators or withhold a permission. */
export function rbac(namespace: string, name = OPERATOR_NAME, rules: V1PolicyRule[] = CLUSTER_RULES): KubernetesObject[] {
  const subjects = [{ kind: "ServiceAccount", name, namespace }];
  const role = (kind: string, roleName: string) => ({ apiGroup: "rbac.authorization.k8s.io", kind, name: roleName });
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name }, rules } as KubernetesObject,
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name }, roleRef: role("ClusterRole", name), subjects } as KubernetesObject,
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: `${name}-leader-election`, namespace }, rules: LEASE_RULES } as KubernetesObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: `${name}-leader-election`, namespace },
      roleRef: role("Role", `${name}-leader-election`),
      subjects,
    } as KubernetesObject,
  ];
}

export function operatorManifests(o: InstallOptions): KubernetesObject[] {
  const labels = { "app.kubernetes.io/name": OPERATOR_NAME };
  const env = [
    { name: "NODE_OPTIONS", value: OPERATOR_NODE_OPTIONS },
    { name: "SERVER_IMAGE", value: o.serverImage },
    { name: "OPERATOR_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    ...(o.watchNamespace ? [{ name: "WATCH_NAMESPACE", value: o.watchNamespace }] : []),
  ];
  return [
    ...rbac(o.namespace),
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: OPERATOR_NAME, namespace: o.namespace, labels },
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels, annotations: { "prometheus.io/scrape": "true", "prometheus.io/port": "8080" } },
          spec: {
            serviceAccountName: OPERATOR_NAME,
            securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                name: "operator",
                image: o.image,
                env,
                ports: [{ name: "http", containerPort: 8080 }],
                readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5 },
                livenessProbe: { httpGet: { path: "/healthz", port: "http" }, initialDelaySeconds: 10, periodSeconds: 10 },
                resources: { requests: { cpu: "50m", memory: "96Mi" }, limits: { memory: "256Mi" } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              },
            ],
          },
        },
      },
    } as KubernetesObject,
  ];
}
