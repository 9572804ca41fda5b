import type { V1Service } from "@kubernetes/client-node";
import type { Color, WaveletModel, WaveletModelSpec } from "../api/waveletmodel.js";
import { LABELS } from "../api/labels.js";
import { activeServiceName, commonLabels, ownerReference, previewServiceName } from "./names.js";

/**
 * The active Service (the model's endpoint, of the type and port the spec asks for) and the
 * preview Service (in-cluster only) that reaches the colour being rolled out. Switching
 * traffic is changing the active Service's colour selector. Each says in appProtocol whether
 * the colour it selects speaks HTTPS (spec.tls), for meshes and gateways that read it.
 */

export const scheme = (spec: WaveletModelSpec) => (spec.tls ? "https" : "http");

function service(wm: WaveletModel, name: string, role: "active" | "preview", color: Color, served: WaveletModelSpec, type: string, port: number): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: wm.metadata.namespace,
      labels: { ...commonLabels(wm), [LABELS.role]: role },
      ownerReferences: [ownerReference(wm)],
    },
    spec: {
      type,
      selector: { [LABELS.instance]: wm.metadata.name, [LABELS.model]: wm.metadata.name, [LABELS.color]: color },
      ports: [{ name: "http", port, targetPort: "http", protocol: "TCP", ...(served.tls ? { appProtocol: "https" } : {}) }],
    },
  };
}

/** `served`: the spec the pods of a colour serve (bluegreen.ts servedSpec). */
export function desiredServices(wm: WaveletModel, active: Color, preview: Color, served: (color: Color) => WaveletModelSpec = () => wm.spec): V1Service[] {
  return [
    service(wm, activeServiceName(wm), "active", active, served(active), wm.spec.service.type, wm.spec.service.port),
    service(wm, previewServiceName(wm), "preview", preview, served(preview), "ClusterIP", wm.spec.service.port),
  ];
}

/** Where clients reach the model: a Service's cluster DNS name and port, by the scheme of the spec its colour serves. */
export function endpoint(wm: WaveletModel, name: string = activeServiceName(wm), served: WaveletModelSpec = wm.spec): string {
  return `${scheme(served)}://${name}.${wm.metadata.namespace}.svc:${wm.spec.service.port}`;
}
