/**
 * The Gateway API (gateway.networking.k8s.io), which is not part of Kubernetes: a cluster has
 * it once its CRDs are installed. spec.route's HTTPRoutes are built from this (reconcile/routes.ts),
 * and watched only when the cluster serves them (main.ts asks at start; controller/informers.ts).
 */
export const GATEWAY_API_GROUP = "gateway.networking.k8s.io";
export const HTTPROUTE = { group: GATEWAY_API_GROUP, version: "v1", plural: "httproutes", kind: "HTTPRoute" } as const;
export const HTTPROUTE_API_VERSION = `${HTTPROUTE.group}/${HTTPROUTE.version}`;
