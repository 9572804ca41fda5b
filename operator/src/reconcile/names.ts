import { type Color, PREVIEW_SUFFIX, type WaveletModel } from "../api/waveletmodel.js";

/** Names and labels of a WaveletModel's children; one place so every builder agrees. */

export const MANAGED_BY = "wavelet-operator";
export const FIELD_MANAGER = "wavelet-operator";
export const LABELS = {
  app: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  managedBy: "app.kubernetes.io/managed-by",
  model: "wavelet.dev/model",
  color: "wavelet.dev/color",
  role: "wavelet.dev/service-role",
} as const;
export const TEMPLATE_HASH = "wavelet.dev/template-hash";
export const SECRETS_HASH = "wavelet.dev/secrets-hash";
/** On every child: a hash of what the operator last applied (unchanged.ts). */
export const APPLIED_HASH = "wavelet.dev/applied-hash";
export const APP = "wavelet-server";
/** Selects every child of every WaveletModel: the informers' label selector. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY}`;

export const replicaSetName = (wm: WaveletModel, color: Color) => `${wm.metadata.name}-${color}`;
export const activeServiceName = (wm: WaveletModel) => wm.metadata.name;
export const previewServiceName = (wm: WaveletModel) => `${wm.metadata.name}${PREVIEW_SUFFIX}`;
export const hpaName = (wm: WaveletModel) => wm.metadata.name;
export const pdbName = (wm: WaveletModel) => wm.metadata.name;
export const otherColor = (color: Color): Color => (color === "blue" ? "green" : "blue");

export function commonLabels(wm: WaveletModel): Record<string, string> {
  return {
    [LABELS.app]: APP,
    [LABELS.instance]: wm.metadata.name,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.model]: wm.metadata.name,
  };
}

export function ownerReference(wm: WaveletModel) {
  return {
    apiVersion: wm.apiVersion,
    kind: wm.kind,
    name: wm.metadata.name,
    uid: wm.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The WaveletModel a child belongs to, from its labels (namespace/name), if any. */
export function ownerKey(child: { metadata?: { namespace?: string; labels?: Record<string, string> } }): string | undefined {
  const model = child.metadata?.labels?.[LABELS.model];
  return model && child.metadata?.namespace ? `${child.metadata.namespace}/${model}` : undefined;
}
