import type { KubernetesObject, V1HTTPIngressPath, V1Ingress, V1IngressRule } from "@kubernetes/client-node";
import { HTTPROUTE, HTTPROUTE_API_VERSION } from "../api/gatewayapi.js";
import { LABELS } from "../api/labels.js";
import type { WaveletModel } from "../api/waveletmodel.js";
import { activeServiceName, commonLabels, ownerReference, previewServiceName } from "./names.js";

/**
 * How traffic from outside the cluster reaches the model: Gateway API HTTPRoutes (spec.route)
 * and an Ingress (spec.ingress). Each names the active or the preview Service, never a colour:
 * a switch changes the Service's selector and no route.
 */

type Role = "active" | "preview";
const serviceOf = (wm: WaveletModel, role: Role) => (role === "active" ? activeServiceName(wm) : previewServiceName(wm));

function metadata(wm: WaveletModel, name: string, role?: Role) {
  return {
    name,
    namespace: wm.metadata.namespace,
    labels: { ...commonLabels(wm), ...(role ? { [LABELS.role]: role } : {}) },
    ownerReferences: [ownerReference(wm)],
  };
}

/** An HTTPRoute to the active Service, and with previewHostnames one to the preview Service, each named like its Service. */
export function desiredHttpRoutes(wm: WaveletModel): KubernetesObject[] {
  const route = wm.spec.route;
  if (!route) return [];
  const to = (role: Role, hostnames: string[]) => ({
    apiVersion: HTTPROUTE_API_VERSION,
    kind: HTTPROUTE.kind,
    metadata: metadata(wm, serviceOf(wm, role), role),
    spec: {
      parentRefs: structuredClone(route.parentRefs),
      hostnames: [...hostnames],
      rules: [{ backendRefs: [{ name: serviceOf(wm, role), port: wm.spec.service.port }] }],
    },
  });
  return [to("active", route.hostnames), ...(route.previewHostnames ? [to("preview", route.previewHostnames)] : [])];
}

/** One Ingress (named like the active Service): hosts to the active Service, previewHosts to the preview one, TLS with spec.tls's Secret. */
export function desiredIngress(wm: WaveletModel): V1Ingress | undefined {
  const ingress = wm.spec.ingress;
  if (!ingress) return undefined;
  const previewHosts = ingress.previewHosts ?? [];
  const rule = (role: Role) => (host: string): V1IngressRule => {
    const path: V1HTTPIngressPath = { path: "/", pathType: "Prefix", backend: { service: { name: serviceOf(wm, role), port: { number: wm.spec.service.port } } } };
    return { host, http: { paths: [path] } };
  };
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: metadata(wm, activeServiceName(wm)),
    spec: {
      ingressClassName: ingress.className,
      ...(wm.spec.tls ? { tls: [{ hosts: [...ingress.hosts, ...previewHosts], secretName: wm.spec.tls.secretName }] } : {}),
      rules: [...ingress.hosts.map(rule("active")), ...previewHosts.map(rule("preview"))],
    },
  };
}
