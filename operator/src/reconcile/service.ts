import type { V1Service } from "@kubernetes/client-node";
import type { Color, WaveletModel } from "../api/waveletmodel.js";
import { LABELS } from "../api/labels.js";
import { activeServiceName, commonLabels, ownerReference, previewServiceName } from "./names.js";

/**
 * The active Service (the model's endpoint, of the type and port the spec asks for) and the
 * preview Service (in-cluster only) that reaches the colour being rolled out. Switching
 * traffic is changing the active Service's colour selector.
 */

function service(wm: WaveletModel, name: string, role: "active" | "preview", color: Color, type: string, port: number): V1Service {
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
      ports: [{ name: "http", port, targetPort: "http", protocol: "TCP" }],
    },
  };
}

export function desiredServices(wm: WaveletModel, active: Color, preview: Color): V1Service[] {
  return [
    service(wm, activeServiceName(wm), "active", active, wm.spec.service.type, wm.spec.service.port),
    service(wm, previewServiceName(wm), "preview", preview, "ClusterIP", wm.spec.service.port),
  ];
}

/** Where clients reach the model: the active Service's cluster DNS name and port. */
export function endpoint(wm: WaveletModel, name: string = activeServiceName(wm)): string {
  return `http://${name}.${wm.metadata.namespace}.svc:${wm.spec.service.port}`;
}
